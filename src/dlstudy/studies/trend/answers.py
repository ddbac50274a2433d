"""Answers to the trend questions (7-12) from the rows of a trend run's variant grid."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from dlstudy.models.recurrent import CELLS

NOISE = 0.02  # balanced-accuracy differences below this are within the seed-to-seed spread we measured


def honest(rows: list[dict], *, cells_only: bool = True) -> list[dict]:
    return [r for r in rows if r["split"] == "time" and (r["model"] in CELLS or not cells_only)]


def preprocessing(
    *,
    n_series: int,
    n_days: int,
    corrections: int,
    n_kept: int,
    threshold: float,
    rule: str,
    lengths: list[int],
    rows: list[dict],
) -> str:
    share = np.mean([r["train_rise_share"] for r in honest(rows)])
    which = "with at least one other country" if rule == "any" else "on average with all the others"
    return (
        f"{n_series} series of cumulative or daily counts became {n_days} days of new cases "
        f"({corrections} negative corrections removed); {n_kept} of {n_series} correlate at >= {threshold:g} "
        f"{which} and are kept. Windows of L = {', '.join(map(str, lengths))} days are labelled 'rise' when the "
        f"next day's count exceeds the window's last day: {share:.0%} of the training windows are rises."
    )


def epoch_curve(history: list[dict], name: str) -> str:
    """How one model's accuracy moved over the epochs: where test accuracy peaked, and whether it
    fell back from that peak (by more than NOISE) while training accuracy still rose: overfitting."""
    train = [h["accuracy"] for h in history]
    test = [h["test_accuracy"] for h in history]
    peak = int(np.argmax(test))
    drop = test[peak] - test[-1]
    if drop <= NOISE:
        shape = "test accuracy levels off rather than falling: no sign of overfitting"
    elif train[-1] > train[peak]:
        shape = (
            f"test accuracy falls back {drop:.3f} from its peak while training accuracy keeps rising: the model "
            "overfits these windows"
        )
    else:
        shape = (
            f"test accuracy falls back {drop:.3f} from its peak although training accuracy does not rise: the "
            "later epochs wander around the peak rather than overfit"
        )
    return (
        f"{name}: training accuracy goes from {train[0]:.3f} to {train[-1]:.3f} over {len(history)} epochs; "
        f"test accuracy peaks at {test[peak]:.3f} in epoch {peak + 1} and ends at {test[-1]:.3f}, so {shape}."
    )


def cells_compared(rows: list[dict]) -> str:
    """The recurrent cells ranked by mean test balanced accuracy over the window lengths (time split)."""
    mean = {
        c: float(np.mean([r["test_balanced_accuracy"] for r in honest(rows) if r["model"] == c]))
        for c in CELLS
        if any(r["model"] == c for r in honest(rows))
    }
    ranked = sorted(mean, key=mean.get, reverse=True)
    listed = ", ".join(f"{c.upper()} {mean[c]:.3f}" for c in ranked)
    gap = mean[ranked[0]] - mean[ranked[-1]]
    verdict = (
        f"{ranked[0].upper()} leads by {gap:.3f}, more than the {NOISE} seed-to-seed spread"
        if gap > NOISE
        else f"a spread of {gap:.3f}, within the {NOISE} seed-to-seed spread: the cells are about equal here"
    )
    return f"Mean test balanced accuracy over the windows, time split: {listed}; {verdict}."


def window_length(rows: list[dict]) -> str:
    """Best L per model, the spread across L, and whether longer windows help (rank correlation of L
    with test balanced accuracy over every model and window, time split)."""
    rows = honest(rows)
    lengths = sorted({r["window"] for r in rows})
    best = {
        c: max((r for r in rows if r["model"] == c), key=lambda r: r["test_balanced_accuracy"])
        for c in CELLS
        if any(r["model"] == c for r in rows)
    }
    overall = max(rows, key=lambda r: r["test_balanced_accuracy"])
    values = [r["test_balanced_accuracy"] for r in rows]
    spread = max(values) - min(values)
    rho = spearmanr([r["window"] for r in rows], values).statistic if len(lengths) > 1 else 0.0
    rho = 0.0 if not np.isfinite(rho) else float(rho)
    if spread <= NOISE or abs(rho) < 0.5:
        trend = f"the window length barely matters (rank correlation of L with balanced accuracy {rho:+.2f})"
    else:
        trend = (
            f"longer windows {'help' if rho > 0 else 'hurt'} (rank correlation of L with balanced accuracy {rho:+.2f})"
        )
    per_model = "; ".join(f"{c.upper()} L = {r['window']}" for c, r in best.items())
    return (
        f"On the honest time split the best window is L = {overall['window']} ({overall['model'].upper()}, "
        f"balanced accuracy {overall['test_balanced_accuracy']:.3f}); best per model: {per_model}. Across "
        f"L = {lengths[0]}..{lengths[-1]} balanced accuracy spans {spread:.3f}, and {trend}."
    )


def imbalance(rows: list[dict], best: dict, *, random_accuracy: float, majority_accuracy: float) -> str:
    """The discussion: the real class shares, accuracy against balanced accuracy and the majority
    baseline, and how much the random split inflates the score."""
    train, test = best["train_rise_share"], best["test_rise_share"]
    shift = (
        "the share shifts from training to test days, which is why the loss weighs the rarer class up"
        if abs(train - test) > 0.05
        else "about the same share in both"
    )
    baseline = (
        f"always answering the majority class already scores accuracy {majority_accuracy:.3f}, so accuracy "
        "must be read against it, or as balanced accuracy (0.5 for that baseline)"
        if majority_accuracy > 0.5 + NOISE
        else f"the majority class scores accuracy {majority_accuracy:.3f}, close to chance"
    )
    inflated = random_accuracy - best["test_accuracy"]
    inflation = (
        f"the random split scores the same variant {random_accuracy:.3f}, {inflated:+.3f} higher, because "
        "overlapping windows put test days into training"
        if inflated > NOISE
        else f"the random split scores the same variant {random_accuracy:.3f}, no clear inflation here"
    )
    return (
        f"Rises are {train:.0%} of the training windows and {test:.0%} of the test windows ({shift}); {baseline}. "
        f"The selected {best['model'].upper()} (L = {best['window']}) has accuracy {best['test_accuracy']:.3f} and "
        f"balanced accuracy {best['test_balanced_accuracy']:.3f}; {inflation}."
    )


def world_map(n_trained: int, n_scored: int, top: list[tuple[str, float]], n_rising: int) -> str:
    named = ", ".join(f"{c} {p:.2f}" for c, p in top)
    return (
        f"The model was trained on windows of {n_trained} countries and scores all {n_scored}; "
        f"{n_rising} of them are more likely than not to rise after the latest day. Highest: {named}."
    )


def window_sentences(rows: list[dict], *, class_weights: bool, margin: float = 0.02) -> list[str]:
    """Per window length L on the time split: did any recurrent model beat the majority class in
    balanced accuracy (by more than `margin`), and if not, why: no signal (ROC AUC near 0.5), or a
    signal that the 0.5 threshold hides because rises are rarer in the training days than in the test
    days (AUC clearly above 0.5)."""
    out = []
    for length in sorted({r["window"] for r in rows}):
        cells = [r for r in rows if r["split"] == "time" and r["window"] == length and r["model"] in CELLS]
        if not cells:
            continue
        best = max(cells, key=lambda r: r["test_balanced_accuracy"])
        auc = (
            max(r["test_roc_auc"] for r in cells if r["test_roc_auc"] is not None)
            if any(r["test_roc_auc"] is not None for r in cells)
            else None
        )
        shares = (
            f"rises are {best['train_rise_share']:.0%} of the training days and {best['test_rise_share']:.0%} "
            "of the test days"
        )
        if best["test_balanced_accuracy"] > 0.5 + margin:
            out.append(
                f"L = {length}: yes. {best['model'].upper()} reaches balanced accuracy "
                f"{best['test_balanced_accuracy']:.3f} (ROC AUC {best['test_roc_auc']:.3f}) against 0.5 for "
                f"the majority class; {shares}."
            )
        elif auc is not None and auc > 0.5 + 2 * margin:
            fix = (
                "even with class weights, so the ranking does not turn into a better decision at 0.5"
                if class_weights
                else "set model.class_weights: true to weigh rises up in the loss"
            )
            out.append(
                f"L = {length}: no, but not for lack of signal. Every model's balanced accuracy is at most "
                f"{best['test_balanced_accuracy']:.3f}: at the 0.5 threshold it answers (nearly) one class, while "
                f"its ROC AUC of up to {auc:.3f} shows it ranks rises above chance; {shares}: {fix}."
            )
        else:
            out.append(
                f"L = {length}: no. Balanced accuracy at most {best['test_balanced_accuracy']:.3f} and ROC AUC "
                f"at most {auc if auc is None else round(auc, 3)}: these windows carry no usable signal about "
                f"the next day; {shares}."
            )
    return out
