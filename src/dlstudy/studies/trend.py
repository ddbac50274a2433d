"""The trend study (NCTU DL 2020 HW2): from a window of L days of a country's daily new COVID-19
cases, classify whether the count rises the next day, with RNN, LSTM and GRU over a grid of window
lengths, beside majority-class and logistic-regression baselines on the same windows."""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dlstudy import plots
from dlstudy.analysis.classification import baselines, binary_scores, confusion
from dlstudy.answers import trend as answers
from dlstudy.data.countries import map_codes
from dlstudy.data.covid import CaseSeries
from dlstudy.data.windows import correlations, load_daily, make_windows, normalize, select_countries, split_indices
from dlstudy.defaults.trend import DEFAULTS as DEFAULTS, QUICK as QUICK  # every key commented there
from dlstudy.errors import InputError
from dlstudy.models.recurrent import CELLS, as_tensors, build_recurrent, rise_loss, rise_probabilities
from dlstudy.report import Report, pivot
from dlstudy.runs import atomic_write_bytes, load_weights
from dlstudy.studies.protocol import Results, section
from dlstudy.train import resolve_device, train_variant

log = logging.getLogger("dlstudy")

NAME, TITLE = "trend", "Will cases rise tomorrow? RNN, LSTM and GRU on COVID-19 case series"

OBJECTIVE = ("test_balanced_accuracy", "maximize")  # a sweep's default: the test days of the honest time split
PRUNE_ON = ("val_loss", "minimize")  # the per-epoch value a sweep's pruner watches
# the numbers metrics.json holds: what a sweep's --metric may name
METRICS = ("test_balanced_accuracy", "test_accuracy", "test_f1", "test_roc_auc", "random_split_test_accuracy",
           "majority_baseline_accuracy", "logistic_baseline_accuracy", "logistic_baseline_balanced_accuracy",
           "best_window", "n_countries", "n_series", "n_days", "n_windows", "negative_corrections", "seconds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=float, help="correlation threshold for keeping a country (default 0.5)")


def flag_overrides(args: argparse.Namespace) -> dict:
    return {"correlation": {"threshold": args.threshold}} if getattr(args, "threshold", None) is not None else {}


def check_config(cfg: dict) -> None:
    resolve_device(cfg["device"])
    bad = [c for c in cfg["model"]["cells"] if c not in CELLS]
    if bad or not cfg["model"]["cells"]:
        raise InputError(f"model.cells must list some of {', '.join(CELLS)}, got {cfg['model']['cells']}")
    if not cfg["windows"]["lengths"] or any(not isinstance(n, int) or n < 2 for n in cfg["windows"]["lengths"]):
        raise InputError("windows.lengths must be whole numbers of at least 2 days")
    if cfg["windows"]["normalize"] not in ("none", "log", "window"):
        raise InputError("windows.normalize must be none, log or window")
    if cfg["correlation"]["rule"] not in ("any", "mean"):
        raise InputError("correlation.rule must be any or mean")
    if not 0 < cfg["split"]["test_fraction"] < 1 or not 0 < cfg["split"]["val_fraction"] < 1:
        raise InputError("split.test_fraction and split.val_fraction must lie between 0 and 1")
    if cfg["data"]["negative_policy"] not in ("clip", "spread"):
        raise InputError("data.negative_policy must be clip or spread")


# the report: one section per homework question ---------------------------------------------------
@section("Preprocessing: daily cases, correlated countries, windows and labels", question=7)
def preprocessing(report: Report, r: TrendResults, cfg: dict) -> None:
    daily, kept = r.daily, r.kept
    report.paragraph(f"{r.series.source}: {len(daily)} series over {daily.shape[1]} days "
                     f"({daily.columns[0].date()} to {daily.columns[-1].date()}).")
    fixed = r.corrected[r.corrected > 0]
    if r.series.cumulative:
        policy = ("set to 0" if cfg["data"]["negative_policy"] == "clip" else
                  "set to 0 and taken from the preceding days, newest first, so totals still match")
        report.paragraph(f"Cumulative counts became daily new cases. {int(fixed.sum())} negative daily values "
                         f"(corrections) in {len(fixed)} series were {policy} (data.negative_policy).")
        report.table([{"series": k, "negative days": int(v)} for k, v in fixed.items()], caption="Corrections per series")
    rule = ("its daily series has a Pearson correlation of at least {t} with at least one other country's"
            if cfg["correlation"]["rule"] == "any" else
            "the mean Pearson correlation of its daily series with all other countries' is at least {t}")
    report.paragraph("A country is kept when " + rule.format(t=cfg["correlation"]["threshold"]) +
                     f" (numpy.corrcoef over the {daily.shape[1]} days shown; a constant series counts as 0).")
    report.figure(plots.heatmap(r.corr.to_numpy(), list(r.corr.index), title="All series"), "correlation_all",
                  "Pearson correlation of every pair of daily series (red: rising and falling together; names "
                  "hidden above 60).")
    top = daily.sum(axis=1).sort_values(ascending=False).index[: cfg["correlation"]["subset"]]
    report.figure(plots.heatmap(r.corr.loc[top, top].to_numpy(), list(top), title="Countries with most cases"),
                  "correlation_subset", f"The {len(top)} series with the most cases: the blocks of red are the "
                  "countries whose waves coincide.")
    report.answer(answers.preprocessing(n_series=len(daily), n_days=daily.shape[1], corrections=int(fixed.sum()),
                                        n_kept=len(kept), threshold=cfg["correlation"]["threshold"],
                                        rule=cfg["correlation"]["rule"], lengths=cfg["windows"]["lengths"], rows=r.rows))


def curves_of(report: Report, r: TrendResults, cells: list[str], name: str) -> None:
    chosen = {k: v for k, v in r.histories.items() if k.startswith("time-") and k.split("-")[1] in cells}
    if not chosen:
        return
    report.figure(plots.curves(chosen, ["accuracy", "test_accuracy"], ylabel="accuracy"), f"curves_accuracy_{name}",
                  "Training (blue) and test (orange) accuracy per epoch on the time split, one panel per window "
                  "length: a widening gap is overfitting.")
    report.figure(plots.curves(chosen, ["loss", "test_loss"], ylabel="BCE loss"), f"curves_loss_{name}",
                  "Training and test loss per epoch, time split.")


@section("A plain RNN: training and test accuracy per epoch", question=8)
def plain_rnn(report: Report, r: TrendResults, cfg: dict) -> None:
    curves_of(report, r, ["rnn"], "rnn")
    name = variant_name("time", "rnn", r.best["window"])
    if name in r.histories:
        report.answer(answers.epoch_curve(r.histories[name], f"RNN, L = {r.best['window']}"))


@section("LSTM and GRU", question=9)
def gated_cells(report: Report, r: TrendResults, cfg: dict) -> None:
    curves_of(report, r, ["lstm", "gru"], "gated")
    for cell in ("lstm", "gru"):
        name = variant_name("time", cell, r.best["window"])
        if name in r.histories:
            report.paragraph(answers.epoch_curve(r.histories[name], f"{cell.upper()}, L = {r.best['window']}"))
    report.answer(answers.cells_compared(r.rows))


@section("The window length L", question=10)
def window_length(report: Report, r: TrendResults, cfg: dict) -> None:
    for split in ("time", "random"):
        report.table(pivot([row for row in r.rows if row["split"] == split], "model", "window", "test_balanced_accuracy",
                           column_name="L={}"),
                     caption=f"Test balanced accuracy, {split} split (rows: model; columns: window length L)")
    report.paragraph("Did each window length learn beyond the majority class?")
    report.bullets(answers.window_sentences(r.rows, class_weights=cfg["model"]["class_weights"]))
    report.answer(answers.window_length(r.rows))


@section("Probability of a rise after the latest window, on a world map", question=11)
def world_map(report: Report, r: TrendResults, cfg: dict) -> None:
    latest = r.latest
    if r.series.named:
        placed = latest[latest["map_code"] != ""]
        trained = set(r.kept)
        report.image(plots.world_map_svg(placed, trained,
                                         title=f"P(rise after {latest['window_end'].iloc[0]})"),
                     "world_map.svg", "image/svg+xml",
                     "Each colour band is a range of probability (legend); blue countries' windows trained the model, "
                     "orange ones passed the correlation filter's test only as scored data.")
        unplaced = sorted(latest.loc[latest["map_code"] == "", "country"])
        report.paragraph(f"{len(placed)} countries placed on the map. Not on pygal's world map, so listed here "
                         f"instead: {', '.join(unplaced) if unplaced else 'none'}.", note=True)
        r.metrics["unmapped_countries"] = unplaced
    else:
        report.paragraph("These series carry no country names (aeon's WHO set), so no map is drawn; see "
                         "probabilities.csv.", note=True)
    ranked = latest.sort_values("probability", ascending=False)
    report.table(ranked.to_dict("records"), caption="Probability of a rise per country (also in probabilities.csv)",
                 first=["country", "probability"])
    top = list(zip(ranked["country"].head(3), ranked["probability"].head(3).astype(float)))
    report.answer(answers.world_map(len(r.kept), len(latest), top, int((latest["probability"] > 0.5).sum())))


@section("Discussion: class imbalance, baselines and the random split", question=12)
def discussion(report: Report, r: TrendResults, cfg: dict) -> None:
    m, best = r.metrics, r.best
    report.paragraph(
        "The time split holds out the last 30% of days (honest: the model never sees the future); the random split "
        "shuffles windows 7:3 as the reports did, and overlapping windows then leak the test days into training. "
        "Models are selected by balanced accuracy on validation days, never on the test set. Baselines use the same "
        "windows: the training majority class, and logistic regression on the normalised window.")
    report.figure(plots.confusion_figure(confusion(r.y_test, (r.p_test >= 0.5).astype(int), 2), ["no rise", "rise"],
                                         title=f"{best['model'].upper()} L={best['window']}"),
                  "confusion", "Confusion matrix of the selected variant on the test days (time split): the row "
                  "'rise' shows how many rises it misses.")
    key = ["model", "window", "val_balanced_accuracy", "test_balanced_accuracy", "test_accuracy", "test_roc_auc"]
    time_rows = answers.honest(r.rows, cells_only=False)
    report.table(time_rows, caption="Every variant, time split", highlight=time_rows.index(best), first=key)
    report.table([row for row in r.rows if row["split"] == "random"], caption="Every variant, random split", first=key)
    report.answer(answers.imbalance(r.rows, best, random_accuracy=m["random_split_test_accuracy"],
                                    majority_accuracy=m["majority_baseline_accuracy"]))


SECTIONS = [preprocessing, plain_rnn, gated_cells, window_length, world_map, discussion]
CARD = [("test balanced accuracy", "test_balanced_accuracy", "logistic_baseline_balanced_accuracy"),
        ("test accuracy", "test_accuracy", "majority_baseline_accuracy"),
        ("ROC AUC", "test_roc_auc", None), ("countries kept", "n_countries", "n_series")]


@dataclass(kw_only=True)
class TrendResults(Results):
    series: CaseSeries
    daily: pd.DataFrame  # (series, days) daily new cases
    corrected: pd.Series  # negative corrections per series
    corr: pd.DataFrame
    kept: list[str]  # the countries the correlation filter keeps: the models train on these
    rows: list[dict]  # every (window, split, model) with its scores
    histories: dict[str, list[dict]]
    best: dict  # the selected row
    y_test: np.ndarray  # the selected variant's test days: labels and probabilities
    p_test: np.ndarray
    latest: pd.DataFrame  # per series: the probability of a rise after the latest window


# the run -----------------------------------------------------------------------------------------
def variant_name(split: str, cell: str, length: int) -> str:
    return f"{split}-{cell}-L{length}"


def fit(run, cfg: dict) -> TrendResults:
    device = resolve_device(cfg["device"])
    series, daily, corrected = load_daily(cfg)
    corr = correlations(daily)
    kept = select_countries(corr, cfg["correlation"]["threshold"], cfg["correlation"]["rule"])
    if not kept:
        raise InputError(f"correlation threshold {cfg['correlation']['threshold']} keeps no country; lower it "
                         "(--threshold or correlation.threshold)")
    log.info("trend: %d of %d series kept by correlation (%s >= %g), %d days from %s", len(kept), len(daily),
             cfg["correlation"]["rule"], cfg["correlation"]["threshold"], daily.shape[1], daily.columns[0].date())
    values = daily.loc[kept].to_numpy()
    rows, histories, tests = [], {}, {}
    for length in cfg["windows"]["lengths"]:
        x_raw, y, _, target = make_windows(values, length)
        keep = x_raw.sum(axis=1) >= cfg["windows"]["min_cases"]  # all-zero windows before a country's first cases
        x, y, target = normalize(x_raw[keep], cfg["windows"]["normalize"]), y[keep], target[keep]
        for split in ("time", "random"):  # time is the honest one: random splits of overlapping windows leak
            fit_, val, test = split_indices(target, values.shape[1], split, cfg, cfg["seed"])
            parts = {"split": split, "fit": fit_, "val": val, "test": test}
            base = {"window": length, "split": split, "n_windows": len(y), "n_train": len(parts["fit"]),
                    "n_test": len(parts["test"]), "train_rise_share": float(y[parts["fit"]].mean()),
                    "test_rise_share": float(y[parts["test"]].mean())}
            rows += [{**base, **row} for row in baselines(x, y, parts, balanced=cfg["model"]["class_weights"])]
            for cell in cfg["model"]["cells"]:
                name = variant_name(split, cell, length)
                row, histories[name], tests[name] = train_cell(run, cfg, cell, (x, y), parts=parts, device=device)
                rows.append({**base, **row})
    return select(run, cfg, series=series, daily=daily, corrected=corrected, corr=corr, kept=kept, rows=rows,
                  histories=histories, tests=tests, device=device)


def train_cell(run, cfg: dict, cell: str, windows: tuple, *, parts: dict, device):
    """One recurrent model on one split: (its row, its history, (test labels, test probabilities))."""
    x, y = windows
    name = variant_name(parts["split"], cell, x.shape[1])
    fit_, val, test = parts["fit"], parts["val"], parts["test"]
    t0 = time.time()
    torch.manual_seed(cfg["seed"])
    model = build_recurrent(cfg["model"], cell)
    pos = float((y[fit_] == 0).sum() / max((y[fit_] == 1).sum(), 1)) if cfg["model"]["class_weights"] else None
    batch = max(cfg["train"]["batch_size"], -(-len(fit_) // cfg["max_steps_per_epoch"]))
    trainer = train_variant(run, cfg, model, rise_loss(pos), name, train=as_tensors(x[fit_], y[fit_]),
                            val=as_tensors(x[val], y[val]), test=as_tensors(x[test], y[test]), device=device,
                            settings={**cfg["train"], "batch_size": batch})
    p_test = rise_probabilities(model, x[test], device)
    row = {"model": cell, "train_accuracy": binary_scores(y[fit_], rise_probabilities(model, x[fit_], device))["accuracy"],
           "val_balanced_accuracy": binary_scores(y[val], rise_probabilities(model, x[val], device))["balanced_accuracy"],
           **binary_scores(y[test], p_test, prefix="test_"), "seconds": round(time.time() - t0, 1)}
    return row, trainer.history_, (y[test], p_test)


def select(run, cfg: dict, *, rows: list[dict], tests: dict, device, **data) -> TrendResults:
    """The selection on the validation days of the honest split; the test days are only reported."""
    best = max(answers.honest(rows), key=lambda r: (r["val_balanced_accuracy"], -r["window"]))
    name = variant_name("time", best["model"], best["window"])
    same = {r["model"]: r for r in rows if r["split"] == "time" and r["window"] == best["window"]}
    model = build_recurrent(cfg["model"], best["model"])
    load_weights(model, run.root, name)
    latest = latest_probabilities(data["daily"], model.to(device), best["window"], cfg, device)
    run.write_text("probabilities.csv", latest.to_csv(index=False))
    random_best = next(r for r in rows if r["split"] == "random" and r["model"] == best["model"]
                       and r["window"] == best["window"])
    daily = data["daily"]
    metrics = {
        **{f"test_{k}": best[f"test_{k}"] for k in ("accuracy", "balanced_accuracy", "f1", "roc_auc")},
        "majority_baseline_accuracy": same["majority"]["test_accuracy"],
        "logistic_baseline_accuracy": same["logistic"]["test_accuracy"],
        "logistic_baseline_balanced_accuracy": same["logistic"]["test_balanced_accuracy"],
        "random_split_test_accuracy": random_best["test_accuracy"],
        "n_countries": len(data["kept"]), "n_series": len(daily), "n_days": int(daily.shape[1]),
        "n_windows": best["n_windows"], "best_model": best["model"], "best_window": best["window"],
        "split": "time (last 30% of days held out)", "negative_corrections": int(data["corrected"].sum()),
        "data": data["series"].source,
    }
    y_test, p_test = tests[name]
    table = answers.honest(rows, cells_only=False)
    return TrendResults(metrics=metrics, rows=rows, best=best, y_test=y_test, p_test=p_test, latest=latest,
                        table=table, columns=["model", "window", "train_accuracy", "val_balanced_accuracy", "test_accuracy",
                                              "test_balanced_accuracy", "test_f1", "test_roc_auc"], **data)


def latest_probabilities(daily: pd.DataFrame, model, length: int, cfg: dict, device) -> pd.DataFrame:
    """The probability of a rise after each series' latest window."""
    x = normalize(daily.to_numpy()[:, -length:], cfg["windows"]["normalize"])
    prob = rise_probabilities(model, x, device)
    codes = map_codes(daily.index)
    return pd.DataFrame({"country": daily.index, "map_code": [codes[n] or "" for n in daily.index],
                         "probability": np.round(prob, 4), "window_end": daily.columns[-1].date().isoformat(),
                         "last_count": daily.iloc[:, -1].to_numpy().astype(np.int64)})


# predict -----------------------------------------------------------------------------------------
def predict(root: Path, cfg: dict, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto") -> dict:
    """Probabilities after each series' latest window, and the accuracy over every window of the new data."""
    dev = resolve_device(device)
    cfg = {**cfg, "data": {**cfg["data"], "path": data_path, "start_date": None}}
    length = metrics["best_window"]
    cfg["windows"] = {**cfg["windows"], "lengths": [length]}
    _, daily, _ = load_daily(cfg)
    model = build_recurrent(cfg["model"], metrics["best_model"])
    load_weights(model, root, variant_name("time", metrics["best_model"], length))
    model.to(dev)
    latest = latest_probabilities(daily, model, length, cfg, dev)
    atomic_write_bytes(out, latest.to_csv(index=False).encode())
    x, y, _, _ = make_windows(daily.to_numpy(), length)
    scores = binary_scores(y, rise_probabilities(model, normalize(x, cfg["windows"]["normalize"]), dev), prefix="all_windows_")
    return {"n_series": len(daily), "n_windows": len(y), "predictions": str(out),
            **{k: v for k, v in scores.items() if v is not None}}


def summary(metrics: dict) -> str:
    return (f"{metrics['best_model'].upper()} L={metrics['best_window']}: test balanced accuracy "
            f"{metrics['test_balanced_accuracy']:.3f} vs 0.5 for the majority class and "
            f"{metrics['logistic_baseline_balanced_accuracy']:.3f} for logistic regression (accuracy "
            f"{metrics['test_accuracy']:.3f}; time split, {metrics['n_countries']} countries)")
