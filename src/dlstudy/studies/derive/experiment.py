"""The derive study's run: each derivation computed, printed and checked."""

from __future__ import annotations

import json
from dataclasses import dataclass

from dlstudy.runs import to_jsonable
from dlstudy.studies.derive.config import DERIVATIONS, Config
from dlstudy.studies.protocol import Results


@dataclass(kw_only=True)
class DeriveResults(Results):
    done: dict  # name -> Derivation


def fit(run, cfg: Config) -> DeriveResults:
    names = list(DERIVATIONS) if cfg.which == "all" else [cfg.which]
    done = {name: DERIVATIONS[name].derive(cfg.params(name), seed=cfg.seed) for name in names}
    results = {d.name: {"passed": d.passed, "checks": [c.row() for c in d.checks], **d.results} for d in done.values()}
    run.write_json("results.json", results)
    if cfg.as_json:
        print(json.dumps(to_jsonable(results), indent=2))
    else:
        for d in done.values():
            print(f"== {d.title}\n" + "\n".join(d.steps) + f"\n{d.verdict()}\n")
    failed = [c for d in done.values() for c in d.checks if not c.passed]
    metrics = {
        "derivations": names,
        "n_derivations": len(names),
        "checks": sum(len(d.checks) for d in done.values()),
        "checks_failed": len(failed),
        "passed": not failed,
    }
    return DeriveResults(metrics=metrics, done=done)
