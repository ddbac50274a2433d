"""Answers to the trend questions (7-12) from the rows of a trend run's variant grid."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from dlstudy.analysis.uncertainty import auc_interval
from dlstudy.models.recurrent import CELLS


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


def epoch_curve(history: list[dict], name: str, *, patience: int = 3) -> str:
    """How one model learned over the epochs. 'Overfits' only when, for `patience` epochs or more after its
    lowest point, validation loss rises while training loss keeps falling: what the curves show, not a
    single accuracy drop."""
    train_loss, val_loss = [h["loss"] for h in history], [h["val_loss"] for h in history]
    train, test = [h["accuracy"] for h in history], [h["test_accuracy"] for h in history]
    low = int(np.argmin(val_loss))
    after = len(history) - 1 - low
    if after >= patience and val_loss[-1] > val_loss[low] and train_loss[-1] < train_loss[low]:
        shape = (
            f"validation loss is lowest in epoch {low + 1} ({val_loss[low]:.3f}) and rises to {val_loss[-1]:.3f} over "
            f"the {after} epochs after, while training loss keeps falling ({train_loss[low]:.3f} to "
            f"{train_loss[-1]:.3f}): the model overfits these windows after epoch {low + 1}"
        )
    elif after >= patience and val_loss[-1] > val_loss[low]:
        shape = (
            f"validation loss is lowest in epoch {low + 1} and ends {val_loss[-1] - val_loss[low]:.3f} higher, but "
            "training loss does not fall meanwhile: the later epochs wander, they do not overfit"
        )
    else:
        shape = (
            f"validation loss is at or near its lowest in the last epochs (lowest in epoch {low + 1} of "
            f"{len(history)}): no sign of overfitting"
        )
    return (
        f"{name}: training accuracy goes from {train[0]:.3f} to {train[-1]:.3f} over {len(history)} epochs and "
        f"test accuracy ends at {test[-1]:.3f}; {shape}."
    )


def cells_compared(rows: list[dict], best: dict, comparisons: dict) -> str:
    """The recurrent cells at the selected window, each against the selected one by a paired test on the
    same test days; then the mean over the windows, as a description only."""
    cells = [c for c in CELLS if c in comparisons]
    said = [comparisons[c].sentence() for c in cells]
    mean = {
        c: float(np.mean([r["test_balanced_accuracy"] for r in honest(rows) if r["model"] == c]))
        for c in CELLS
        if any(r["model"] == c for r in honest(rows))
    }
    listed = ", ".join(f"{c.upper()} {v:.3f}" for c, v in sorted(mean.items(), key=lambda kv: -kv[1]))
    head = (
        f"At the selected window L = {best['window']} (time split): " + "; ".join(said)
        if said
        else (f"Only {best['model'].upper()} ran, so no cells are compared")
    )
    return f"{head}. Mean test balanced accuracy over the windows (a description, not a test): {listed}."


def window_length(rows: list[dict], best: dict, *, vs_logistic=None) -> str:
    """L as the study chooses it: on the validation days. The selected L's test score, the L each model
    would choose on validation, whether validation balanced accuracy rises or falls with L (Spearman's test),
    and a baseline that scores above every recurrent model on the test days."""
    cells = honest(rows)
    lengths = sorted({r["window"] for r in cells})
    chosen = {
        c: max((r for r in cells if r["model"] == c), key=lambda r: (r["val_balanced_accuracy"], -r["window"]))
        for c in CELLS
        if any(r["model"] == c for r in cells)
    }
    per_model = "; ".join(f"{c.upper()} L = {r['window']}" for c, r in chosen.items())
    trend = "the validation days show no ordering by L"
    if len(lengths) > 2:
        test = spearmanr([r["window"] for r in cells], [r["val_balanced_accuracy"] for r in cells])
        if np.isfinite(test.statistic) and test.pvalue < 0.05:
            trend = (
                f"longer windows {'help' if test.statistic > 0 else 'hurt'} on the validation days (Spearman "
                f"rho {test.statistic:+.2f}, p = {test.pvalue:.2g})"
            )
        elif np.isfinite(test.statistic):
            trend = (
                f"the validation days show no ordering by L (Spearman rho {test.statistic:+.2f}, p = {test.pvalue:.2g})"
            )
    text = (
        f"Chosen on the validation days, the window is L = {best['window']} ({best['model'].upper()}, validation "
        f"balanced accuracy {best['val_balanced_accuracy']:.3f}); its test balanced accuracy is "
        f"{best['test_balanced_accuracy']:.3f}. Each model's choice on validation: {per_model}. Across "
        f"L = {lengths[0]}..{lengths[-1]}, {trend}."
    )
    logistic = [r for r in honest(rows, cells_only=False) if r["model"] == "logistic"]
    top = max(logistic, key=lambda r: r["test_balanced_accuracy"]) if logistic else None
    best_cell = max(r["test_balanced_accuracy"] for r in cells)
    if top is not None and top["test_balanced_accuracy"] > best_cell:
        text += (
            f" Logistic regression on the same windows scores {top['test_balanced_accuracy']:.3f} on the test days "
            f"at L = {top['window']}, above every recurrent model (best {best_cell:.3f})"
        )
        text += f"; at the selected window, {vs_logistic.sentence()}." if vs_logistic is not None else "."
    return text


def imbalance(rows: list[dict], best: dict, *, random_accuracy: float, vs_majority=None) -> str:
    """The discussion: the real class shares; the selected model against always answering the majority
    class (a paired test on the test days); and what the random split changes, for the model and for
    logistic regression, without claiming a cause the run does not test."""
    train, test = best["train_rise_share"], best["test_rise_share"]
    shift = (
        "the share shifts from training to test days, which is why the loss weighs the rarer class up"
        if shares_differ(train, best.get("n_train"), test, best.get("n_test"))
        else "no shift in the share a test of two proportions can tell"
    )
    against = ""
    if vs_majority is not None:
        if vs_majority.differs and vs_majority.difference < 0:
            against = f" It is below the majority class: {vs_majority.sentence()}."
        else:
            against = f" {vs_majority.sentence()[0].upper()}{vs_majority.sentence()[1:]}."
    same = [r for r in rows if r["model"] == "logistic" and r["window"] == best["window"]]
    by_split = {r["split"]: r["test_accuracy"] for r in same}
    gain = random_accuracy - best["test_accuracy"]
    split = f"The random split scores the same variant {random_accuracy:.3f} ({gain:+.3f} against the time split)"
    if {"time", "random"} <= set(by_split):
        other = by_split["random"] - by_split["time"]
        split += (
            f", and logistic regression {other:+.3f}: the change comes with the split, for both models. Shuffled "
            "overlapping windows share days between training and test; whether that is what lifts the score is not "
            "tested here (that would need a gap of L days between training and test windows)"
        )
    return (
        f"Rises are {train:.0%} of the training windows and {test:.0%} of the test windows ({shift}). The selected "
        f"{best['model'].upper()} (L = {best['window']}) has accuracy {best['test_accuracy']:.3f} and balanced "
        f"accuracy {best['test_balanced_accuracy']:.3f}.{against} {split}."
    )


def shares_differ(a: float, n_a: int | None, b: float, n_b: int | None) -> bool:
    """Whether two shares of rises differ beyond chance: a chi-squared test of the 2 x 2 counts at p < 0.05."""
    from scipy.stats import chi2_contingency

    if not n_a or not n_b:
        return a != b
    counts = np.array([[a * n_a, (1 - a) * n_a], [b * n_b, (1 - b) * n_b]]).round()
    if (counts.sum(axis=0) == 0).any():
        return False
    return bool(chi2_contingency(counts).pvalue < 0.05)


def world_map(n_trained: int, n_scored: int, top: list[tuple[str, float]], n_rising: int) -> str:
    named = ", ".join(f"{c} {p:.2f}" for c, p in top)
    return (
        f"The model was trained on windows of {n_trained} countries and scores all {n_scored}; "
        f"{n_rising} of them are more likely than not to rise after the latest day. Highest: {named}."
    )


def window_sentences(rows: list[dict], *, class_weights: bool, intervals: dict) -> list[str]:
    """Per window length L on the time split: did a recurrent model beat the majority class, whose balanced
    accuracy is 0.5: only when the 95 % interval of its test balanced accuracy lies above 0.5 (`intervals`:
    variant name -> interval). If not, why: no signal (ROC AUC near 0.5), or a signal that the 0.5
    threshold hides because rises are rarer in the training days than in the test days."""
    out = []
    for length in sorted({r["window"] for r in rows}):
        cells = [r for r in rows if r["split"] == "time" and r["window"] == length and r["model"] in CELLS]
        if not cells:
            continue
        best = max(cells, key=lambda r: r["test_balanced_accuracy"])
        low, high = intervals.get(f"time-{best['model']}-L{length}", (float("nan"), float("nan")))
        ranked = [r for r in cells if r["test_roc_auc"] is not None]
        top = max(ranked, key=lambda r: r["test_roc_auc"]) if ranked else None
        auc = None if top is None else top["test_roc_auc"]
        positives = 0 if top is None else round(top["test_rise_share"] * top["n_test"])
        auc_low = None if top is None else auc_interval(auc, positives, top["n_test"] - positives)[0]
        shares = (
            f"rises are {best['train_rise_share']:.0%} of the training days and {best['test_rise_share']:.0%} "
            "of the test days"
        )
        scored = f"balanced accuracy {best['test_balanced_accuracy']:.3f} (95 % interval {low:.3f} to {high:.3f})"
        if low > 0.5:
            out.append(
                f"L = {length}: yes. {best['model'].upper()} reaches {scored}, above the 0.5 of the majority "
                f"class, with ROC AUC {best['test_roc_auc']:.3f}; {shares}."
            )
        elif auc_low is not None and auc_low > 0.5:  # it ranks rises above chance, beyond the noise
            fix = (
                "even with class weights, so the ranking does not turn into a better decision at 0.5"
                if class_weights
                else "set model.class_weights: true to weigh rises up in the loss"
            )
            out.append(
                f"L = {length}: no, but not for lack of signal. The best, {best['model'].upper()}, has {scored}, "
                f"not clear of 0.5, while a ROC AUC of {auc:.3f} (95 % interval from {auc_low:.3f}, Hanley-McNeil) "
                "shows a model ranks rises above chance; "
                f"{shares}: {fix}."
            )
        else:
            out.append(
                f"L = {length}: no. The best, {best['model'].upper()}, has {scored} and ROC AUC at most "
                f"{auc if auc is None else round(auc, 3)}: these windows carry no usable signal about the next "
                f"day; {shares}."
            )
    return out
