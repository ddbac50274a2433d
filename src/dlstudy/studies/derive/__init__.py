"""The derive study: the courses' hand derivations, computed step by step and checked against autograd.

config.py holds the schema (each derivation's numbers), experiment.py the run, sections.py the report."""

from __future__ import annotations

import argparse

from dlstudy.errors import InputError
from dlstudy.studies.derive.config import DERIVATIONS, QUICK, Config
from dlstudy.studies.derive.experiment import fit
from dlstudy.studies.derive.sections import CARD, SECTIONS

__all__ = ["CARD", "QUICK", "SECTIONS", "Config", "fit"]

NAME = "derive"
TITLE = "Hand derivations, step by step, checked against autograd"
FULL_STUDY = "dlstudy derive all"
OBJECTIVE = None  # nothing is trained, so there is nothing to sweep
PRUNE_ON = None
METRICS = ()  # nothing to sweep on


FLAGS = {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", nargs="?", choices=["all", *DERIVATIONS], help="which derivation (default 'all')")
    parser.add_argument("--json", action="store_true", help="print machine-readable results instead of the steps")


def flag_overrides(args: argparse.Namespace) -> dict:
    return {"which": args.which or "all", "as_json": bool(args.json)}


def check_config(cfg: Config) -> None:
    """The schema checks everything a derivation is given; each derivation checks its numbers agree."""


def predict(*args, **kwargs):
    raise InputError("derive runs have nothing to predict; predict takes a cluster, trend, classify or generate run")


def summary(metrics: dict) -> str:
    state = "all pass" if metrics["passed"] else f"{metrics['checks_failed']} FAILED"
    return f"{len(metrics['derivations'])} derivations, {metrics['checks']} checks: {state}"
