"""The trend study's run: every (window length, split, cell) trained, selected on validation days; and predict."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dlstudy.analysis.classification import baselines, binary_scores
from dlstudy.analysis.uncertainty import Curve, overfitting
from dlstudy.data.countries import map_codes
from dlstudy.data.covid import CaseSeries
from dlstudy.data.windows import (
    check_days,
    correlations,
    load_daily,
    make_windows,
    normalize,
    select_countries,
    split_indices,
)
from dlstudy.errors import InputError
from dlstudy.models.recurrent import as_tensors, build_recurrent, rise_loss, rise_probabilities
from dlstudy.runs import atomic_write_bytes, load_weights
from dlstudy.studies.protocol import Results
from dlstudy.studies.trend import answers, inference
from dlstudy.studies.trend.config import Config
from dlstudy.train import resolve_device, train_variant

log = logging.getLogger("dlstudy")


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
    curves: dict[str, Curve]  # variant -> the test of whether it overfits (its rise is also in `family`)


def variant_name(split: str, cell: str, length: int) -> str:
    return f"{split}-{cell}-L{length}"


def fit(run, cfg: Config) -> TrendResults:
    device = resolve_device(cfg.device)
    series, daily, corrected = load_daily(cfg)
    check_days(daily.shape[1], cfg, series.source)
    corr = correlations(daily)
    kept = kept_countries(corr, cfg)
    values = daily.loc[kept].to_numpy()
    rows, histories, tests, curves, shifts = [], {}, {}, {}, {}
    total = len(cfg.windows.lengths) * 2 * len(cfg.model.cells)
    windows = {length: windowed(values, length, cfg) for length in cfg.windows.lengths}
    splits = {  # time is the honest split: random splits of overlapping windows leak
        (length, split): split_indices(target, values.shape[1], split, cfg, cfg.seed)
        for length, (_, _, target) in windows.items()
        for split in ("time", "random")
    }
    for (length, _), (fit_, _, _) in splits.items():  # every variant's training windows checked before any trains
        both_classes(windows[length][1][fit_], length, kept=len(kept), of=len(daily), cfg=cfg)
    for length, (x, y, target) in windows.items():
        for split in ("time", "random"):
            fit_, val, test = splits[length, split]
            parts = {"split": split, "fit": fit_, "val": val, "test": test, "days": target}
            if split == "time":
                fit_days, test_days = (y[fit_], target[fit_]), (y[test], target[test])
                shifts[length] = inference.share_shift(fit_days, test_days, seed=cfg.seed)
            base = {
                "window": length,
                "split": split,
                "n_windows": len(y),
                "n_train": len(parts["fit"]),
                "n_test": len(parts["test"]),
                "train_rise_share": float(y[parts["fit"]].mean()),
                "test_rise_share": float(y[parts["test"]].mean()),
            }
            scored, probabilities = baselines(x, y, parts, balanced=cfg.model.class_weights)
            rows += [{**base, **row} for row in scored]
            tests.update({variant_name(split, k, length): (y[test], p, target[test]) for k, p in probabilities.items()})
            for cell in cfg.model.cells:
                name = variant_name(split, cell, length)
                row, histories[name], tests[name], curves[name] = train_cell(  # the cells to come share the budget
                    run, cfg, cell, (x, y), parts=parts, device=device, remaining=total - len(histories)
                )
                rows.append({**base, **row})
    return select(
        run,
        cfg,
        series=series,
        daily=daily,
        corrected=corrected,
        corr=corr,
        kept=kept,
        rows=rows,
        histories=histories,
        tests=tests,
        device=device,
        evidence=(curves, shifts),
    )


def windowed(values: np.ndarray, length: int, cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, target day) of every window of `length` days that holds cases."""
    x_raw, y, _, target = make_windows(values, length)
    keep = x_raw.sum(axis=1) >= cfg.windows.min_cases  # all-zero windows before a country's first cases
    return normalize(x_raw[keep], cfg.windows.normalize), y[keep], target[keep]


def both_classes(y_fit: np.ndarray, length: int, *, kept: int, of: int, cfg: Config) -> None:
    """Training windows of one class teach nothing (and no classifier fits them): say what would give both."""
    if len(np.unique(y_fit)) < 2:
        what = "rise" if y_fit.size and y_fit[0] else "do not rise"
        fix = (
            "lower the threshold (--threshold or correlation.threshold) to keep more series"
            if kept < of
            else "give series with both rises and falls in their first days (the time split trains on those)"
        )
        raise InputError(
            f"the {kept} of {of} series kept by correlation threshold {cfg.correlation.threshold} give training "
            f"windows of L = {length} that all {what}; {fix}"
        )


def kept_countries(corr: pd.DataFrame, cfg: Config) -> list[str]:
    """The countries the correlation filter keeps: the models train on these."""
    kept = select_countries(corr, cfg.correlation.threshold, cfg.correlation.rule)
    if not kept:
        raise InputError(
            f"correlation threshold {cfg.correlation.threshold} keeps no country; lower the threshold "
            "(--threshold or correlation.threshold)"
        )
    log.info(
        "trend: %d of %d series kept by correlation (%s >= %g)",
        len(kept),
        len(corr),
        cfg.correlation.rule,
        cfg.correlation.threshold,
    )
    return kept


def train_cell(run, cfg: Config, cell: str, windows: tuple, *, parts: dict, device, remaining: int = 1):
    """One recurrent model on one split: (its row, its history, (test labels, test probabilities, test days), the
    test of whether it overfits)."""
    x, y = windows
    name = variant_name(parts["split"], cell, x.shape[1])
    fit_, val, test = parts["fit"], parts["val"], parts["test"]
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    model = build_recurrent(cfg.model, cell)
    pos = float((y[fit_] == 0).sum() / max((y[fit_] == 1).sum(), 1)) if cfg.model.class_weights else None
    batch = max(cfg.train.batch_size, -(-len(fit_) // cfg.max_steps_per_epoch))
    trainer = train_variant(
        run,
        cfg,
        model,
        rise_loss(pos),
        name,
        train=as_tensors(x[fit_], y[fit_]),
        val=as_tensors(x[val], y[val]),
        test=as_tensors(x[test], y[test]),
        device=device,
        settings=cfg.train.model_copy(update={"batch_size": batch}),
        remaining=remaining,
    )
    p_test = rise_probabilities(model, x[test], device)
    row = {
        "model": cell,
        "train_accuracy": binary_scores(y[fit_], rise_probabilities(model, x[fit_], device))["accuracy"],
        "val_balanced_accuracy": binary_scores(y[val], rise_probabilities(model, x[val], device))["balanced_accuracy"],
        **binary_scores(y[test], p_test, prefix="test_"),
        "seconds": round(time.time() - t0, 1),
    }
    days = parts["days"]
    val_items = inference.day_items(y[val], days[val], name="validation windows")
    losses = trainer.item_losses_.get("val")
    train_loss = [h["loss"] for h in trainer.history_]
    curve = overfitting(np.stack(losses), train_loss, items=val_items, seed=cfg.seed) if losses else None
    return row, trainer.history_, (y[test], p_test, days[test]), curve


COLUMNS = [
    "model",
    "window",
    "train_accuracy",
    "val_balanced_accuracy",
    "test_accuracy",
    "test_balanced_accuracy",
    "test_f1",
    "test_roc_auc",
]  # the terminal's table


def select(
    run,
    cfg: Config,
    *,
    rows: list[dict],
    tests: dict,
    device,
    series: CaseSeries,
    daily: pd.DataFrame,
    corrected: pd.Series,
    corr: pd.DataFrame,
    kept: list[str],
    histories: dict,
    evidence: tuple[dict, dict],
) -> TrendResults:
    """The selection on the validation days of the honest split; the test days are only reported. `evidence`:
    (each variant's overfitting test, each window's rise-share shift)."""
    curves, shifts = evidence
    best = max(answers.honest(rows), key=lambda r: (r["val_balanced_accuracy"], -r["window"]))
    name = variant_name("time", best["model"], best["window"])
    same = {r["model"]: r for r in rows if r["split"] == "time" and r["window"] == best["window"]}
    model = build_recurrent(cfg.model, best["model"])
    load_weights(model, run.root, name)
    latest = latest_probabilities(daily, model.to(device), best["window"], cfg, device)
    run.write_text("probabilities.csv", latest.to_csv(index=False))
    random_best = next(
        r for r in rows if r["split"] == "random" and r["model"] == best["model"] and r["window"] == best["window"]
    )
    metrics = {
        **{f"test_{k}": best[f"test_{k}"] for k in ("accuracy", "balanced_accuracy", "f1", "roc_auc")},
        "majority_baseline_accuracy": same["majority"]["test_accuracy"],
        "logistic_baseline_accuracy": same["logistic"]["test_accuracy"],
        "logistic_baseline_balanced_accuracy": same["logistic"]["test_balanced_accuracy"],
        "random_split_test_accuracy": random_best["test_accuracy"],
        **dict(n_countries=len(kept), n_series=len(daily), n_days=int(daily.shape[1]), n_windows=best["n_windows"]),
        **dict(best_model=best["model"], best_window=best["window"], split="time (last 30% of days held out)"),
        **dict(negative_corrections=int(corrected.sum()), data=series.source),
    }
    y_test, p_test, days = tests[name]
    metrics.update(inference.headline_intervals(y_test, p_test, days, seed=cfg.seed))
    table = answers.honest(rows, cells_only=False)
    return TrendResults(
        metrics=metrics,
        rows=rows,
        best=best,
        y_test=y_test,
        p_test=p_test,
        latest=latest,
        curves=curves,
        family=inference.family(tests, rows, best, shift=shifts[best["window"]], curves=curves, seed=cfg.seed),
        table=table,
        columns=COLUMNS,
        series=series,
        daily=daily,
        corrected=corrected,
        corr=corr,
        kept=kept,
        histories=histories,
    )


def latest_probabilities(daily: pd.DataFrame, model, length: int, cfg: Config, device) -> pd.DataFrame:
    """The probability of a rise after each series' latest window."""
    x = normalize(daily.to_numpy()[:, -length:], cfg.windows.normalize)
    prob = rise_probabilities(model, x, device)
    codes = map_codes(daily.index)
    return pd.DataFrame(
        {
            "country": daily.index,
            "map_code": [codes[n] or "" for n in daily.index],
            "probability": np.round(prob, 4),
            "window_end": daily.columns[-1].date().isoformat(),
            "last_count": daily.iloc[:, -1].to_numpy().astype(np.int64),
        }
    )


def predict(
    root: Path, cfg: Config, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto"
) -> dict:
    """Probabilities after each series' latest window, and the accuracy over every window of the new data."""
    dev = resolve_device(device)
    length = metrics["best_window"]
    cfg = cfg.model_copy(
        update={
            "data": cfg.data.model_copy(update={"path": data_path, "start_date": None}),
            "windows": cfg.windows.model_copy(update={"lengths": [length]}),
        }
    )
    _, daily, _ = load_daily(cfg)
    if daily.shape[1] <= length:
        raise InputError(f"--data {data_path}: {daily.shape[1]} days; the run's window needs more than {length}")
    model = build_recurrent(cfg.model, metrics["best_model"])
    load_weights(model, root, variant_name("time", metrics["best_model"], length))
    model.to(dev)
    latest = latest_probabilities(daily, model, length, cfg, dev)
    atomic_write_bytes(out, latest.to_csv(index=False).encode())
    x, y, _, _ = make_windows(daily.to_numpy(), length)
    scores = binary_scores(
        y, rise_probabilities(model, normalize(x, cfg.windows.normalize), dev), prefix="all_windows_"
    )
    return {
        "n_series": len(daily),
        "n_windows": len(y),
        "predictions": str(out),
        **{k: v for k, v in scores.items() if v is not None},
    }
