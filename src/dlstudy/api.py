"""The Python API: `run_study` does what `dlstudy <study>` does; `predict` what `dlstudy predict` does."""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path

from dlstudy import budget as budgets
from dlstudy.config import SHARED_FLAGS, Schema, defaults, flags_named, given, merge, resolve, validate
from dlstudy.errors import DiskError, InputError, Pruned, readable
from dlstudy.runs import (
    Run,
    apart_from_inputs,
    fingerprint,
    is_complete,
    load_finished_run,
    output_file,
    read_json,
    read_status,
)
from dlstudy.studies import STUDIES
from dlstudy.studies.protocol import execute
from dlstudy.train import seed_everything

log = logging.getLogger("dlstudy")

DATA_KEYS = ("path", "labels", "val_path", "val_labels")  # the data.* keys that name files a run reads


def study_module(name: str):
    if name not in STUDIES:
        raise InputError(f"unknown study '{name}' (available: {', '.join(STUDIES)})")
    return STUDIES[name]


def resolve_config(
    name: str, *, config: str | Path | None = None, sets=(), flags: dict | None = None, quick: bool = False
) -> Schema:
    """The study's typed config: its defaults, --quick, the file, --set items and flags, in that order."""
    module = study_module(name)
    return resolve(module.Config, quick=module.QUICK if quick else None, file=config, sets=sets, flags=flags)


def check(name: str, cfg: Schema | dict) -> Schema:
    """The typed config (a dict is validated first) after the study's own checks of keys that must agree
    with each other or with this machine: all before any folder is made."""
    module = study_module(name)
    if isinstance(cfg, dict):
        cfg = validate(module.Config, cfg)
    module.check_config(cfg)
    return cfg


def exists(path: Path, flag: str) -> bool:
    try:
        return path.exists()
    except OSError as exc:  # a name too long for the file system
        raise InputError(f"{flag} {path}: {exc.strerror}; choose a shorter {flag}") from None


def input_paths(cfg: Schema) -> dict[str, Path]:
    """The files and folders a run reads (its data and labels), by config key."""
    data = getattr(cfg, "data", None)
    return {f"data.{k}": Path(getattr(data, k)) for k in DATA_KEYS if getattr(data, k, None)}


def inputs(cfg: Schema) -> dict:
    """The fingerprints of the files a run reads (its data and labels), by config key; a missing one is
    left to the study's loader, which says so."""
    given = input_paths(cfg)
    for key, path in given.items():  # a pipe or device would block the hashing: refused before it
        if exists(path, key):
            readable(path, key, folder=True)
    try:
        return {key: fingerprint(path) for key, path in given.items() if exists(path, key)}
    except OSError as exc:
        raise InputError(f"{exc.filename}: cannot be read ({exc.strerror})") from None


def default_out(name: str, *, resume: bool, base: Path = Path("runs")) -> Path:
    folder = base / name
    if resume:  # the newest unfinished run of this study
        candidates = sorted(p for p in folder.glob("*") if p.is_dir() and read_status(p) and not is_complete(p))
        if not candidates:
            raise InputError(f"--resume: no unfinished '{name}' run under {folder}; pass --out RUN_DIR")
        return candidates[-1]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, n = folder / stamp, 1
    while out.exists():
        n += 1
        out = folder / f"{stamp}-{n}"
    return out


def run_study(
    name: str,
    *,
    data: str | Path | None = None,
    out: str | Path | None = None,
    config: str | Path | None = None,
    sets=(),
    flags: dict | None = None,
    seed: int | None = None,
    device: str | None = None,
    quick: bool = False,
    resume: bool = False,
    tensorboard: bool = False,
    budget: str | float | None = None,
    sweep: str | None = None,
) -> tuple[Path, dict]:
    """Run one study end to end; returns (run folder, metrics). `budget`: its wall time (seconds, or '20m'; default
    the study's own); `sweep`: the sweep folder that owns the run."""
    module = study_module(name)
    top: dict = dict(flags or {})
    if data is not None:
        top.setdefault("data", {})["path"] = str(data)
    if seed is not None:
        top["seed"] = seed
    # `run all` passes these to every study; a study without the key (derive trains nothing) ignores them
    for key, value in (("device", device), ("tensorboard", tensorboard or None), ("budget", budget)):
        if value is not None and key in module.Config.model_fields:
            top[key] = value
    defaulted = out is None  # runs/<study>/<time>: the folders above it are this call's too when it made them
    with flags_named(top, {**SHARED_FLAGS, **module.FLAGS}):  # all checked before any folder is made
        cfg = check(name, resolve_config(name, config=config, sets=sets, flags=top, quick=quick))
        out = Path(out) if out is not None else default_out(name, resume=resume)
        apart_from_inputs(out, "--out", input_paths(cfg))
        created = not exists(out, "--out")
        if resume and not created:
            cfg = budgets.resumed_config(cfg, out)  # the net its first start chose
        run = Run.open(out, cfg.model_dump(), resume=resume, study=name, inputs=inputs(cfg), sweep=sweep)
    discard = False  # a folder this call made for input that failed before any training is removed
    try:
        with logging_to(run.file("log.txt")):  # the failure's own lines (a traceback) go there too
            try:
                metrics = execute_run(module, run, cfg, given=given(file=config, sets=sets, flags=top))
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: resumable, and said so in status.json
                run.interrupt()
                raise
            except Exception as exc:
                discard = mark_stopped(run, exc, study=name, created=created)
                raise
    finally:
        run.close()
        if discard:  # a run folder exists only for a run that started; the same --out works after the fix
            shutil.rmtree(run.root, ignore_errors=True)
            for parent in (run.root.parent, run.root.parent.parent) if defaulted else ():
                with contextlib.suppress(OSError):  # only when empty: runs/ may hold the user's other runs
                    parent.rmdir()
    return run.root, metrics


def mark_stopped(run: Run, exc: Exception, *, study: str, created: bool) -> bool:
    """Record why a run stopped, so that none is left marked 'running'; True when the folder should go: bad
    input in a folder this call made, before anything worth resuming was written."""
    if isinstance(exc, Pruned):
        run.prune(str(exc))
    elif isinstance(exc, InputError):
        if created and not started_training(run.root):  # bad data: leave nothing behind
            return True
        run.fail(str(exc))
    elif isinstance(exc, DiskError):  # full disk, quota, permissions: the message says which file and what to do
        log.error("%s: stopped: %s", study, exc.strerror, extra={"file_only": True})
        run.fail(exc.strerror)
    else:  # the traceback goes to log.txt, and the one-line message says where
        log.exception("%s: stopped by an unexpected error", study, extra={"file_only": True})
        run.fail(f"{type(exc).__name__}: {str(exc)[:200]}")
        exc.dlstudy_log = str(run.file("log.txt"))
    return False


def execute_run(module, run: Run, cfg: Schema, *, given: set[str] = frozenset()) -> dict:
    """Fit and report into an open run folder, within the config's time budget, then mark it complete; returns
    the metrics. `given`: the config keys the user set (explicit epochs win over the budget)."""
    log.info("%s: run folder %s", module.NAME, run.root, extra={"file_only": True})
    seed_everything(cfg.seed)
    seconds = getattr(cfg, "budget", None)
    budget = None
    if seconds:  # what follows training: the study's own share and epochs, else the library's
        share, epochs = (getattr(module, k, getattr(budgets, k)) for k in ("AFTER_TRAINING", "AFTER_TRAINING_EPOCHS"))
        budget = budgets.Budget(seconds, tail_share=share, tail_epochs=epochs, given=frozenset(given))
    with budgets.running(budget):
        metrics = execute(module, run, cfg)
    metrics["seconds"] = round(run.elapsed(), 1)
    run.complete(metrics)
    log.info("%s: finished in %.1f s; report %s", module.NAME, run.elapsed(), run.file("report.html"))
    return metrics


@contextlib.contextmanager
def logging_to(path: Path):
    """Within the block the log also goes to `path`, its INFO lines (each epoch) included: for Python callers
    too, not only the CLI's."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    level = log.level
    log.setLevel(min(log.getEffectiveLevel(), logging.INFO))
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        handler.close()


def started_training(root: Path) -> bool:
    """Whether a run wrote anything worth resuming (a checkpoint, weights, cached features)."""
    return any(any((root / d).iterdir()) for d in ("checkpoints", "models", "grid") if (root / d).is_dir())


def predict(
    run_dir: str | Path,
    *,
    data: str | Path,
    labels: str | Path | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    force: bool = False,
) -> dict:
    """Apply a finished run to new data; writes a CSV and returns a dict of what it measured. Writes
    only `out` (default RUN_DIR/predict/<data>.csv), never over a file unless force, never over the
    run's own files."""

    root, cfg, status = load_finished_run(run_dir)
    name = status.get("study", "")
    module = study_module(name)
    if getattr(module, "OBJECTIVE", None) is None:
        raise InputError(f"{root} is a '{name}' run, which predicts nothing")
    try:  # an edited config.yaml must still be one this study understands
        cfg = check(name, merge(defaults(module.Config), cfg))
    except InputError as exc:
        raise InputError(f"{root / 'config.yaml'}: {exc}") from None
    metrics = read_json(root / "metrics.json")
    readable(data, "--data", folder=True)
    if labels is not None:
        readable(labels, "--labels", limit=2**28)
    out = Path(out) if out else root / "predict" / f"{Path(data).stem or 'data'}.csv"
    apart_from_inputs(out, "--out", {"--data": data, **({"--labels": labels} if labels is not None else {})})
    target = output_file(out, suffix=".csv", force=force, allowed=root / "predict")
    return module.predict(
        root,
        cfg,
        metrics,
        data_path=str(data),
        labels=None if labels is None else str(labels),
        out=target,
        device=device,
    )
