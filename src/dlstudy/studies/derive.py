"""The derive study: the courses' hand derivations, computed step by step and checked against autograd."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from dlstudy.derivations import batchnorm, conv_shape, lstm, pca, softmax_ce, word2vec
from dlstudy.errors import InputError
from dlstudy.report import Report
from dlstudy.runs import to_jsonable
from dlstudy.studies.protocol import Results, section

NAME = "derive"
TITLE = "Hand derivations, step by step, checked against autograd"
DERIVATIONS = {"lstm": lstm, "conv-shape": conv_shape, "batchnorm": batchnorm, "softmax-ce": softmax_ce,
               "word2vec": word2vec, "pca": pca}


def config_key(name: str) -> str:
    return name.replace("-", "_")  # config keys: conv_shape, softmax_ce


DEFAULTS = {
    "seed": 0,
    "quick": False,
    "which": "all",
    "json": False,
    **{config_key(name): dict(module.DEFAULTS) for name, module in DERIVATIONS.items()},
}
QUICK = {"quick": True, "conv_shape": {"random_checks": 50}, "pca": {"random_projections": 50}}
OBJECTIVE = None  # nothing is trained, so there is nothing to sweep
PRUNE_ON = None
METRICS = ()  # nothing to sweep on


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=["all", *DERIVATIONS], help="which derivation ('all': every one)")
    parser.add_argument("--json", action="store_true", help="print machine-readable results instead of the steps")


def flag_overrides(args: argparse.Namespace) -> dict:
    return {"which": args.which, "json": bool(args.json)}


def check_config(cfg: dict) -> None:
    if cfg["which"] not in ("all", *DERIVATIONS):
        raise InputError(f"derive: unknown derivation '{cfg['which']}' (use all, {', '.join(DERIVATIONS)})")


def show(report: Report, d) -> None:
    report.heading(d.title)
    report.preformatted("\n".join(d.steps))
    for caption, rows in d.tables:
        report.table(rows, caption=caption)
    report.table([c.row() for c in d.checks], caption="Checks against PyTorch (relative error in float64)")
    report.paragraph(d.verdict(), note=True)


def question(title: str, number: int, names: list[str]):
    """The section for homework question `number`, made of the derivations `names` (absent ones are skipped)."""

    @section(title, question=number)
    def answer(report: Report, r: DeriveResults, cfg: dict) -> None:
        done = [r.done[n] for n in names if n in r.done]
        for d in done:
            show(report, d)
        if done:
            report.answer(" ".join(d.answer for d in done))

    answer.__name__ = names[0].replace("-", "_")
    return answer


SECTIONS = [question("An LSTM cell traced by hand", 24, ["lstm"]),
            question("The gradient of the word2vec skip-gram loss", 25, ["word2vec"]),
            question("PCA as variance maximisation", 26, ["pca"]),
            question("The output shape of a convolution", 27, ["conv-shape"]),
            question("Batch-norm gradients, and softmax with cross-entropy", 28, ["batchnorm", "softmax-ce"])]
CARD = [("derivations", "n_derivations", None), ("checks against autograd", "checks", None),
        ("checks failed", "checks_failed", None)]


@dataclass(kw_only=True)
class DeriveResults(Results):
    done: dict  # name -> Derivation


def fit(run, cfg: dict) -> DeriveResults:
    names = list(DERIVATIONS) if cfg["which"] == "all" else [cfg["which"]]
    done = {name: DERIVATIONS[name].derive(cfg[config_key(name)], seed=cfg["seed"]) for name in names}
    results = {d.name: {"passed": d.passed, "checks": [c.row() for c in d.checks], **d.results} for d in done.values()}
    run.write_json("results.json", results)
    if cfg["json"]:
        print(json.dumps(to_jsonable(results), indent=2))
    else:
        for d in done.values():
            print(f"== {d.title}\n" + "\n".join(d.steps) + f"\n{d.verdict()}\n")
    failed = [c for d in done.values() for c in d.checks if not c.passed]
    metrics = {"derivations": names, "n_derivations": len(names), "checks": sum(len(d.checks) for d in done.values()),
               "checks_failed": len(failed), "passed": not failed}
    return DeriveResults(metrics=metrics, done=done)


def predict(*args, **kwargs):
    raise InputError("derive runs have nothing to predict; predict takes a cluster, trend, classify or generate run")


def summary(metrics: dict) -> str:
    state = "all pass" if metrics["passed"] else f"{metrics['checks_failed']} FAILED"
    return f"{len(metrics['derivations'])} derivations, {metrics['checks']} checks: {state}"
