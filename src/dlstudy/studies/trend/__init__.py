"""The trend study (NCTU DL 2020 HW2): from a window of L days of a country's daily new COVID-19
cases, classify whether the count rises the next day, with RNN, LSTM and GRU over a grid of window
lengths, beside majority-class and logistic-regression baselines on the same windows.

config.py holds the schema and defaults, experiment.py the run, sections.py the report (one section per
homework question), answers.py the sentences that answer them."""

from __future__ import annotations

import argparse

from dlstudy import budget as budgets
from dlstudy.studies.trend.config import QUICK, Config
from dlstudy.studies.trend.experiment import fit, predict
from dlstudy.studies.trend.sections import CARD, SECTIONS
from dlstudy.train import resolve_device

__all__ = ["CARD", "QUICK", "SECTIONS", "Config", "fit", "predict"]

NAME, TITLE = "trend", "Will cases rise tomorrow? RNN, LSTM and GRU on COVID-19 case series"

FULL_STUDY = "dlstudy trend --data covid_19.csv"
# what follows training, kept out of a time budget (a share, and epochs of the first training):
# the baselines, the intervals and the world map
AFTER_TRAINING, AFTER_TRAINING_EPOCHS = 0.1, 0
OBJECTIVE = ("test_balanced_accuracy", "maximize")  # a sweep's default: the test days of the honest time split
PRUNE_ON = ("val_loss", "minimize")  # the per-epoch value a sweep's pruner watches
# the numbers metrics.json holds: what a sweep's --metric may name
METRICS = (
    "test_balanced_accuracy",
    "test_accuracy",
    "test_f1",
    "test_roc_auc",
    "random_split_test_accuracy",
    "majority_baseline_accuracy",
    "logistic_baseline_accuracy",
    "logistic_baseline_balanced_accuracy",
    "best_window",
    "n_countries",
    "n_series",
    "n_days",
    "n_windows",
    "negative_corrections",
    "seconds",
    *budgets.METRICS,
)


FLAGS = {"correlation.threshold": "--threshold"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=float, help="correlation threshold for keeping a country (default 0.5)")


def flag_overrides(args: argparse.Namespace) -> dict:
    return {"correlation": {"threshold": args.threshold}} if getattr(args, "threshold", None) is not None else {}


def check_config(cfg: Config) -> None:
    """What the schema cannot see alone: the device."""
    resolve_device(cfg.device)


def summary(metrics: dict) -> str:
    return (
        f"{metrics['best_model'].upper()} L={metrics['best_window']}: test balanced accuracy "
        f"{metrics['test_balanced_accuracy']:.3f} vs 0.5 for the majority class and "
        f"{metrics['logistic_baseline_balanced_accuracy']:.3f} for logistic regression (accuracy "
        f"{metrics['test_accuracy']:.3f}; time split, {metrics['n_countries']} countries)"
    )
