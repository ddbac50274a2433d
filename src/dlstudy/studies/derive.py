"""The derive study: the courses' hand derivations, computed step by step and checked against autograd."""
from __future__ import annotations

import argparse
import json

from dlstudy.derivations import batchnorm, conv_shape, lstm, pca, softmax_ce, word2vec
from dlstudy.errors import InputError
from dlstudy.report import Report

NAME = "derive"
TITLE = "Hand derivations, step by step, checked against autograd"
DERIVATIONS = {"lstm": lstm, "conv-shape": conv_shape, "batchnorm": batchnorm, "softmax-ce": softmax_ce,
               "word2vec": word2vec, "pca": pca}


def section(name: str) -> str:
    return name.replace("-", "_")  # config keys: conv_shape, softmax_ce


DEFAULTS = {
    "seed": 0,
    "quick": False,
    "which": "all",
    "json": False,
    **{section(name): dict(module.DEFAULTS) for name, module in DERIVATIONS.items()},
}
QUICK = {"quick": True, "conv_shape": {"random_checks": 50}, "pca": {"random_projections": 50}}
OBJECTIVE = None  # nothing is trained, so there is nothing to sweep


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=["all", *DERIVATIONS], help="which derivation ('all': every one)")
    parser.add_argument("--json", action="store_true", help="print machine-readable results instead of the steps")


def flag_overrides(args: argparse.Namespace) -> dict:
    return {"which": args.which, "json": bool(args.json)}


def check_config(cfg: dict) -> None:
    if cfg["which"] not in ("all", *DERIVATIONS):
        raise InputError(f"derive: unknown derivation '{cfg['which']}' (use all, {', '.join(DERIVATIONS)})")


def run(run, cfg: dict) -> dict:
    names = list(DERIVATIONS) if cfg["which"] == "all" else [cfg["which"]]
    done = [DERIVATIONS[name].derive(cfg[section(name)], seed=cfg["seed"]) for name in names]
    report = Report(TITLE, run=run)
    results = {}
    for d in done:
        if not cfg["json"]:
            print(f"== {d.title}")
            print("\n".join(d.steps))
            print(d.verdict() + "\n")
        report.heading(d.title)
        report.preformatted("\n".join(d.steps))
        for caption, rows in d.tables:
            report.table(rows, caption=caption)
        report.table([c.row() for c in d.checks], caption="Checks (relative error in float64)")
        report.paragraph(d.verdict())
        results[d.name] = {"passed": d.passed, "checks": [c.row() for c in d.checks], **d.results}
    run.write_json("results.json", results)
    if cfg["json"]:
        from dlstudy.runs import to_jsonable

        print(json.dumps(to_jsonable(results), indent=2))
    failed = [c for d in done for c in d.checks if not c.passed]
    metrics = {"derivations": names, "checks": sum(len(d.checks) for d in done), "checks_failed": len(failed),
               "passed": not failed}
    report.write(config=cfg, metrics=metrics, seconds=run.elapsed())
    return metrics


def predict(*args, **kwargs):
    raise InputError("derive runs have nothing to predict; predict takes a cluster run")


def summary(metrics: dict) -> str:
    state = "all pass" if metrics["passed"] else f"{metrics['checks_failed']} FAILED"
    return f"{len(metrics['derivations'])} derivations, {metrics['checks']} checks: {state}"
