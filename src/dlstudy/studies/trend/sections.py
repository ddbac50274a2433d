"""The trend study's report: one section per homework question (7-12), each ending in its answer."""

from __future__ import annotations

from dataclasses import replace

from dlstudy import plots
from dlstudy.analysis.classification import confusion
from dlstudy.report import Report, pivot
from dlstudy.studies.protocol import section
from dlstudy.studies.trend import answers
from dlstudy.studies.trend.config import Config
from dlstudy.studies.trend.experiment import TrendResults, variant_name


@section("Preprocessing: daily cases, correlated countries, windows and labels", question=7)
def preprocessing(report: Report, r: TrendResults, cfg: Config) -> None:
    daily, kept = r.daily, r.kept
    report.paragraph(
        f"{r.series.source}: {len(daily)} series over {daily.shape[1]} days "
        f"({daily.columns[0].date()} to {daily.columns[-1].date()})."
    )
    fixed = r.corrected[r.corrected > 0]
    if r.series.cumulative:
        policy = (
            "set to 0"
            if cfg.data.negative_policy == "clip"
            else "set to 0 and taken from the preceding days, newest first, so totals still match"
        )
        report.paragraph(
            f"Cumulative counts became daily new cases. {int(fixed.sum())} negative daily values "
            f"(corrections) in {len(fixed)} series were {policy} (data.negative_policy)."
        )
        report.table(
            [{"series": k, "negative days": int(v)} for k, v in fixed.items()], caption="Corrections per series"
        )
    rule = (
        "its daily series has a Pearson correlation of at least {t} with at least one other country's"
        if cfg.correlation.rule == "any"
        else "the mean Pearson correlation of its daily series with all other countries' is at least {t}"
    )
    report.paragraph(
        "A country is kept when "
        + rule.format(t=cfg.correlation.threshold)
        + f" (numpy.corrcoef over the {daily.shape[1]} days shown; a constant series counts as 0)."
    )
    report.figure(
        plots.heatmap(r.corr.to_numpy(), list(r.corr.index), title="All series"),
        "correlation_all",
        "Pearson correlation of every pair of daily series (red: rising and falling together; names hidden above 60).",
    )
    top = daily.sum(axis=1).sort_values(ascending=False).index[: cfg.correlation.subset]
    report.figure(
        plots.heatmap(r.corr.loc[top, top].to_numpy(), list(top), title="Countries with most cases"),
        "correlation_subset",
        f"The {len(top)} series with the most cases: the blocks of red are the countries whose waves coincide.",
    )
    report.answer(
        answers.preprocessing(
            n_series=len(daily),
            n_days=daily.shape[1],
            corrections=int(fixed.sum()),
            n_kept=len(kept),
            threshold=cfg.correlation.threshold,
            rule=cfg.correlation.rule,
            lengths=cfg.windows.lengths,
            rows=r.rows,
        )
    )


def curves_of(report: Report, r: TrendResults, cells: list[str], name: str) -> None:
    chosen = {k: v for k, v in r.histories.items() if k.startswith("time-") and k.split("-")[1] in cells}
    if not chosen:
        return
    report.figure(
        plots.curves(chosen, ["accuracy", "test_accuracy"], ylabel="accuracy"),
        f"curves_accuracy_{name}",
        "Training (blue) and test (orange) accuracy per epoch on the time split, one panel per window "
        "length: a widening gap is overfitting.",
    )
    report.figure(
        plots.curves(chosen, ["loss", "test_loss"], ylabel="BCE loss"),
        f"curves_loss_{name}",
        "Training and test loss per epoch, time split.",
    )


def shown_curve(r: TrendResults, cell: str):
    """The overfitting test of a cell at the selected window, with its rise as the report's correction left it."""
    curve = r.curves.get(variant_name("time", cell, r.best["window"]))
    rise = r.family.get(f"overfits:{cell}")
    return None if curve is None or rise is None else replace(curve, rise=rise)


@section("A plain RNN: training and test accuracy per epoch", question=8)
def plain_rnn(report: Report, r: TrendResults, cfg: Config) -> None:
    curves_of(report, r, ["rnn"], "rnn")
    name = variant_name("time", "rnn", r.best["window"])
    if name in r.histories:
        report.answer(answers.epoch_curve(r.histories[name], f"RNN, L = {r.best['window']}", shown_curve(r, "rnn")))


@section("LSTM and GRU", question=9)
def gated_cells(report: Report, r: TrendResults, cfg: Config) -> None:
    curves_of(report, r, ["lstm", "gru"], "gated")
    for cell in ("lstm", "gru"):
        name = variant_name("time", cell, r.best["window"])
        if name in r.histories:
            said = answers.epoch_curve(
                r.histories[name], f"{cell.upper()}, L = {r.best['window']}", shown_curve(r, cell)
            )
            report.paragraph(said)
    report.answer(answers.cells_compared(r.rows, r.best, r.family))


@section("The window length L", question=10)
def window_length(report: Report, r: TrendResults, cfg: Config) -> None:
    for split in ("time", "random"):
        report.table(
            pivot(
                [row for row in r.rows if row["split"] == split],
                "model",
                "window",
                "test_balanced_accuracy",
                column_name="L={}",
            ),
            caption=f"Test balanced accuracy, {split} split (rows: model; columns: window length L)",
        )
    report.paragraph("Did each window length learn beyond the majority class?")
    report.bullets(answers.window_sentences(r.rows, r.family))
    report.answer(answers.window_length(r.rows, r.best, vs_logistic=r.family.get("vs:logistic")))


@section("Probability of a rise after the latest window, on a world map", question=11)
def world_map(report: Report, r: TrendResults, cfg: Config) -> None:
    latest = r.latest
    if r.series.named:
        placed = latest[latest["map_code"] != ""]
        trained = set(r.kept)
        report.image(
            plots.world_map_svg(placed, trained, title=f"P(rise after {latest['window_end'].iloc[0]})"),
            "world_map.svg",
            "image/svg+xml",
            "Each colour band is a range of probability (legend); blue countries' windows trained the model, "
            "orange ones passed the correlation filter's test only as scored data.",
        )
        unplaced = sorted(latest.loc[latest["map_code"] == "", "country"])
        report.paragraph(
            f"{len(placed)} countries placed on the map. Not on pygal's world map, so listed here "
            f"instead: {', '.join(unplaced) if unplaced else 'none'}.",
            note=True,
        )
        r.metrics["unmapped_countries"] = unplaced
    else:
        report.paragraph(
            "These series carry no country names (aeon's WHO set), so no map is drawn; see probabilities.csv.",
            note=True,
        )
    ranked = latest.sort_values("probability", ascending=False)
    report.table(
        ranked.to_dict("records"),
        caption="Probability of a rise per country (also in probabilities.csv)",
        first=["country", "probability"],
    )
    top = list(zip(ranked["country"].head(3), ranked["probability"].head(3).astype(float)))
    report.answer(answers.world_map(len(r.kept), len(latest), top, int((latest["probability"] > 0.5).sum())))


@section("Discussion: class imbalance, baselines and the random split", question=12)
def discussion(report: Report, r: TrendResults, cfg: Config) -> None:
    m, best = r.metrics, r.best
    report.paragraph(
        "The time split holds out the last 30% of days (honest: the model never sees the future); the random split "
        "shuffles windows 7:3 as the reports did, so overlapping windows can share days between training and test. "
        "Models are selected by balanced accuracy on validation days, never on the test set. Baselines use the same "
        "windows: the training majority class, and logistic regression on the normalised window. A test item is a "
        "country's window, and windows on one day share that day, so intervals and tests resample "
        f"{r.metrics['resampling']}. Comparisons are paired (both models on the same resampled days) and corrected "
        "together (Holm). They cover this data set and split, not another seed (--seeds measures that)."
    )
    report.figure(
        plots.confusion_figure(
            confusion(r.y_test, (r.p_test >= 0.5).astype(int), 2),
            ["no rise", "rise"],
            title=f"{best['model'].upper()} L={best['window']}",
        ),
        "confusion",
        "Confusion matrix of the selected variant on the test days (time split): the row "
        "'rise' shows how many rises it misses.",
    )
    key = ["model", "window", "val_balanced_accuracy", "test_balanced_accuracy", "test_accuracy", "test_roc_auc"]
    time_rows = answers.honest(r.rows, cells_only=False)
    report.table(time_rows, caption="Every variant, time split", highlight=time_rows.index(best), first=key)
    report.table([row for row in r.rows if row["split"] == "random"], caption="Every variant, random split", first=key)
    report.answer(
        answers.imbalance(
            r.rows,
            best,
            random_accuracy=m["random_split_test_accuracy"],
            vs_majority=r.family.get("vs:majority"),
            shift=r.family.get("shift"),
        )
    )


SECTIONS = [preprocessing, plain_rnn, gated_cells, window_length, world_map, discussion]
CARD = [
    ("test balanced accuracy", "test_balanced_accuracy", "logistic_baseline_balanced_accuracy"),
    ("test accuracy", "test_accuracy", "majority_baseline_accuracy"),
    ("ROC AUC", "test_roc_auc", None),
    ("countries kept", "n_countries", "n_series"),
]
