"""The studies, by CLI name. Each module has NAME, TITLE, DEFAULTS, QUICK, add_arguments,
flag_overrides, check_config(cfg), run(run, cfg) -> metrics, predict(...) and summary(metrics); the
training studies also OBJECTIVE and PRUNE_ON, (metric, direction) pairs that sweeps use."""
from dlstudy.studies import classify, cluster, derive, generate, trend

STUDIES = {m.NAME: m for m in (cluster, trend, classify, generate, derive)}
