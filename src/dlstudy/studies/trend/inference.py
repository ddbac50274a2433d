"""How sure the trend study's words are. A test item is a country's window, and the windows are not independent:
every country's window on one day shares that day (reporting days, holidays, news), and each day resembles the
days before it. So the resampling unit is the day, drawn whole with every country's window on it, in blocks of
consecutive days (a stationary block bootstrap); every interval and paired test of the study draws them so.

Every comparative sentence of the report is one test here, in the run's family (corrected together by Holm):
the selected cell against each other model at its window, each window's chosen cell against the majority class
(and its ranking against chance), the shift of the rise share from training to test days, and whether each cell
shown overfits (analysis.uncertainty.overfitting)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from dlstudy.analysis.uncertainty import (
    RECOMPUTED,
    Comparison,
    Items,
    balanced_accuracy_of,
    bootstrap_ci,
    clustered,
    compare,
    constant,
    mean_of,
    per_resample,
    unpaired,
)
from dlstudy.models.recurrent import CELLS

MODEL_NAMES = {"majority": "the majority class", "logistic": "logistic regression"}


def day_items(y: np.ndarray, days: np.ndarray, *, name: str = "test windows") -> Items:
    """Windows resampled by whole days (`y`: their labels, for the count); each statistic's block length follows
    how its value on a day depends on the days before (Politis and White's choice)."""
    assert len(y) == len(days), "a day per window"
    return clustered(days, name=name, unit="day")


def auc_of(y: np.ndarray, p: np.ndarray):
    """ROC AUC on each resample (undefined, NaN, on a resample with one class)."""

    def auc(rows: np.ndarray) -> float:
        return float(roc_auc_score(y[rows], p[rows])) if len(np.unique(y[rows])) == 2 else float("nan")

    return per_resample(auc)


def headline_intervals(y: np.ndarray, p: np.ndarray, days: np.ndarray, *, seed: int) -> dict:
    """metrics.json's intervals for the selected variant's test scores, by whole days."""
    items, pred = day_items(y, days), (p >= 0.5).astype(int)
    two = len(np.unique(y)) == 2
    return {
        "test_balanced_accuracy_ci95": list(bootstrap_ci(balanced_accuracy_of(y, pred), items, seed=seed)),
        "test_accuracy_ci95": list(bootstrap_ci(mean_of(pred == y), items, seed=seed)),
        "test_roc_auc_ci95": list(bootstrap_ci(auc_of(y, p), items, seed=seed, resamples=RECOMPUTED)) if two else None,
        "resampling": items.described,
    }


def paired(tests: dict, best: dict, *, seed: int) -> dict[str, Comparison]:
    """The selected variant against every other model at its window on the same test days (time split): balanced
    accuracy, and plain accuracy against the majority class (whose balanced accuracy is 0.5 by construction)."""
    y, p, days = tests[f"time-{best['model']}-L{best['window']}"]
    items, ours = day_items(y, days), (p >= 0.5).astype(int)
    out = {}
    for name, (_, p_other, _) in tests.items():
        split, model, length = name.split("-", 2)
        if split != "time" or length != f"L{best['window']}" or model == best["model"]:
            continue
        theirs = (p_other >= 0.5).astype(int)
        accuracy = model == "majority"
        a, b = (
            (mean_of(ours == y), mean_of(theirs == y))
            if accuracy
            else (balanced_accuracy_of(y, ours), balanced_accuracy_of(y, theirs))
        )
        what = "accuracy" if accuracy else "balanced accuracy"
        name_b = MODEL_NAMES.get(model, model.upper())
        out[f"vs:{model}"] = compare(best["model"].upper(), name_b, a, b, items, what=what, seed=seed)
    return out


def chosen_per_window(rows: list[dict]) -> dict[int, dict]:
    """The recurrent cell each window length would choose on its validation days (the first best, as max picks)."""
    honest = [r for r in rows if r["split"] == "time" and r["model"] in CELLS]
    return {
        length: max((r for r in honest if r["window"] == length), key=lambda r: r["val_balanced_accuracy"])
        for length in sorted({r["window"] for r in honest})
    }


def signals(tests: dict, rows: list[dict], *, seed: int) -> dict[str, Comparison]:
    """Per window length, its cell chosen on validation days, on the test days: balanced accuracy against the
    majority class's 0.5, and ROC AUC against chance's 0.5 (does it rank rises first, whatever the threshold)."""
    out = {}
    for length, r in chosen_per_window(rows).items():
        y, p, days = tests[f"time-{r['model']}-L{length}"]
        items, name = day_items(y, days), r["model"].upper()
        bal = balanced_accuracy_of(y, (p >= 0.5).astype(int))
        out[f"signal:L{length}"] = compare(
            name, "the majority class", bal, constant(0.5), items, what="balanced accuracy", seed=seed
        )
        if len(np.unique(y)) == 2:
            out[f"ranking:L{length}"] = compare(
                name, "chance", auc_of(y, p), constant(0.5), items, what="ROC AUC", seed=seed, resamples=RECOMPUTED
            )
    return out


def share_shift(fit: tuple, test: tuple, *, seed: int) -> Comparison:
    """The share of rises in the test windows against the training windows, each group drawn by its own days."""
    (y_fit, d_fit), (y_test, d_test) = fit, test
    return unpaired(
        "test windows",
        "training windows",
        y_test,
        y_fit,
        what="share of rises",
        items_a=day_items(y_test, d_test),
        items_b=day_items(y_fit, d_fit, name="training windows"),
        seed=seed,
    )


def family(tests: dict, rows: list[dict], best: dict, *, shift: Comparison, curves: dict, seed: int) -> dict:
    """Every comparative sentence of the report as a test, by name (Holm corrects them together)."""
    at = {c: curves.get(f"time-{c}-L{best['window']}") for c in CELLS}
    shown = {f"overfits:{c}": curve.rise for c, curve in at.items() if curve is not None}
    return {**paired(tests, best, seed=seed), **signals(tests, rows, seed=seed), "shift": shift, **shown}
