"""Answers to the trend questions (7-12) from the rows of a trend run's variant grid."""

from __future__ import annotations

import numpy as np

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


def epoch_curve(history: list[dict], name: str, curve=None) -> str:
    """How one model learned over the epochs. 'Overfits' only when a test says so (`curve`:
    analysis.uncertainty.Curve, its rise corrected with the report's other comparisons): the last epoch's
    validation loss is above the best epoch's on validation windows the best epoch was not chosen on, paired and
    drawn by whole days, while training loss kept falling."""
    train, test = [h["accuracy"] for h in history], [h["test_accuracy"] for h in history]
    head = (
        f"{name}: training accuracy goes from {train[0]:.3f} to {train[-1]:.3f} over {len(history)} epochs and "
        f"test accuracy ends at {test[-1]:.3f}"
    )
    if curve is None:
        return f"{head}; no per-window validation losses were kept, so overfitting is not tested."
    best, rise = curve.best + 1, curve.rise
    if curve.overfits:
        shape = (
            f"validation loss is lowest in epoch {best} and higher in the last, while training loss keeps falling "
            f"(validation loss, last epoch minus epoch {best}, {rise.difference:+.4f}; {rise.test}): the model "
            f"overfits these windows after epoch {best}"
        )
    elif best == curve.epochs:
        shape = f"validation loss is lowest in the last epoch ({best}): no sign of overfitting"
    else:
        why = "training loss does not fall meanwhile" if not curve.training_falls else "the rise is within the noise"
        shape = (
            f"validation loss is lowest in epoch {best}; against it, the last epoch's is {rise.difference:+.4f} "
            f"({rise.test}) and {why}: no overfitting a test can tell"
        )
    return f"{head}; {shape}."


def cells_compared(rows: list[dict], best: dict, comparisons: dict) -> str:
    """The recurrent cells at the selected window, each against the selected one by a paired test on the
    same test days; then the mean over the windows, as a description only."""
    said = [comparisons[f"vs:{c}"].sentence() for c in CELLS if f"vs:{c}" in comparisons]
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
    """L as the study chooses it: on the validation days. The selected L's test score, the L each model would
    choose on validation, and, at the selected window, logistic regression against the selected cell (one paired
    test on the test days; nothing here is chosen on them)."""
    cells = honest(rows)
    lengths = sorted({r["window"] for r in cells})
    chosen = {
        c: max((r for r in cells if r["model"] == c), key=lambda r: (r["val_balanced_accuracy"], -r["window"]))
        for c in CELLS
        if any(r["model"] == c for r in cells)
    }
    per_model = "; ".join(f"{c.upper()} L = {r['window']}" for c, r in chosen.items())
    text = (
        f"Chosen on the validation days among L = {', '.join(map(str, lengths))}, the window is L = {best['window']} "
        f"({best['model'].upper()}, validation balanced accuracy {best['val_balanced_accuracy']:.3f}); its test "
        f"balanced accuracy is {best['test_balanced_accuracy']:.3f}. Each model's choice on validation: {per_model}. "
        "Each L also has its own number of training windows, so L and the amount of training data change together."
    )
    if vs_logistic is not None:
        text += f" At the selected window, {vs_logistic.sentence()}."
    return text


def imbalance(rows: list[dict], best: dict, *, random_accuracy: float, vs_majority=None, shift=None) -> str:
    """The discussion: the real class shares and whether they shift (`shift`: a test drawn by whole days); the
    selected model against always answering the majority class (a paired test on the test days); and what the
    random split changes, for the model and for logistic regression, as numbers without a claimed cause."""
    train, test = best["train_rise_share"], best["test_rise_share"]
    if shift is None:
        moved = "no test of the shift was made"
    elif shift.differs:
        moved = f"the share shifts between training and test days: {shift.sentence(verb='have more rises than')}"
    else:
        moved = f"no shift in the share that the test days can tell: {shift.sentence()}"
    against = ""
    if vs_majority is not None:
        said = vs_majority.sentence()
        against = f" {said[0].upper()}{said[1:]}."
    same = [r for r in rows if r["model"] == "logistic" and r["window"] == best["window"]]
    by_split = {r["split"]: r["test_accuracy"] for r in same}
    gain = random_accuracy - best["test_accuracy"]
    split = f"The random split scores the same variant {random_accuracy:.3f} ({gain:+.3f} against the time split)"
    if {"time", "random"} <= set(by_split):
        other = by_split["random"] - by_split["time"]
        both = "both higher" if gain > 0 and other > 0 else "both lower" if gain < 0 and other < 0 else "mixed"
        split += (
            f", and logistic regression {other:+.3f} ({both}, untested). Shuffled overlapping windows share days "
            "between training and test; whether that moves the score is not tested here (that would need a gap of "
            "L days between training and test windows)"
        )
    return (
        f"Rises are {train:.0%} of the {best['n_train']} training windows and {test:.0%} of the {best['n_test']} test "
        f"windows ({moved}). The selected {best['model'].upper()} (L = {best['window']}) has accuracy "
        f"{best['test_accuracy']:.3f} and balanced accuracy {best['test_balanced_accuracy']:.3f}.{against} {split}."
    )


def world_map(n_trained: int, n_scored: int, top: list[tuple[str, float]], n_rising: int) -> str:
    named = ", ".join(f"{c} {p:.2f}" for c, p in top)
    return (
        f"The model was trained on windows of {n_trained} countries and scores all {n_scored}; "
        f"{n_rising} of them are more likely than not to rise after the latest day. Highest: {named}."
    )


def window_sentences(rows: list[dict], family: dict) -> list[str]:
    """Per window length L on the time split, the cell chosen on its validation days: does it beat the majority
    class's 0.5 balanced accuracy on the test days (`family`: 'signal:L<n>'), and if not, does it rank rises above
    chance (ROC AUC against 0.5, 'ranking:L<n>'). Both tests draw whole days and are corrected with the report's
    other comparisons; nothing here is chosen on the test days."""
    out = []
    for length in sorted({r["window"] for r in rows if r["split"] == "time" and r["model"] in CELLS}):
        signal, ranking = family.get(f"signal:L{length}"), family.get(f"ranking:L{length}")
        if signal is None:
            continue
        chosen = next(
            r for r in rows if r["split"] == "time" and r["window"] == length and r["model"].upper() == signal.a
        )
        shares = (
            f"rises are {chosen['train_rise_share']:.0%} of the training windows and "
            f"{chosen['test_rise_share']:.0%} of the test windows"
        )
        if signal.differs and signal.difference > 0:
            verdict = f"yes: {signal.sentence()}"
        elif ranking is not None and ranking.differs and ranking.difference > 0:
            verdict = (
                f"no, but not for lack of signal: {signal.sentence()}; yet it ranks rises above chance "
                f"({ranking.sentence()}), so the 0.5 threshold hides what it knows"
            )
        else:
            said = f"; {ranking.sentence()}" if ranking is not None else ""
            verdict = f"no: {signal.sentence()}{said}"
        out.append(f"L = {length} ({signal.a}, chosen on the validation days): {verdict}; {shares}.")
    return out
