"""The trend study (NCTU DL 2020 HW2): from a window of L days of a country's daily new COVID-19
cases, classify whether the count rises the next day, with RNN, LSTM and GRU over a grid of window
lengths, beside majority-class and logistic-regression baselines on the same windows."""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from dlstudy import plots
from dlstudy.analysis.classification import binary_scores, confusion
from dlstudy.config import TRAINING_RUN
from dlstudy.data.countries import map_codes
from dlstudy.data.covid import daily_new_cases, load_case_series
from dlstudy.errors import InputError
from dlstudy.models.recurrent import CELLS, RecurrentClassifier
from dlstudy.report import Report, text_table
from dlstudy.runs import atomic_write_bytes, load_weights
from dlstudy.train import Trainer, resolve_device

log = logging.getLogger("dlstudy")

NAME = "trend"
TITLE = "Will cases rise tomorrow? RNN, LSTM and GRU on COVID-19 case series"
SPLITS = ("time", "random")  # time is the honest one: random splits of overlapping windows leak

DEFAULTS = {
    **TRAINING_RUN,
    "data": {"path": None, "negative_policy": "clip", "start_date": None},
    "correlation": {"threshold": 0.5, "rule": "any", "subset": 25},
    "windows": {"lengths": [3, 5, 7, 9, 10, 15, 20, 30], "normalize": "window", "min_cases": 1},
    "split": {"test_fraction": 0.3, "val_fraction": 0.2},
    # class_weights: weigh the rarer class up in the loss (and balance the logistic baseline the same
    # way). Without it, a training period with few rises (early, mostly-zero days) makes every model
    # answer 'no rise' at the 0.5 threshold although it ranks days well (AUC ~0.69 on the WHO series).
    "model": {"cells": ["rnn", "lstm", "gru"], "hidden_size": 32, "num_layers": 1, "dropout": 0.0,
              "class_weights": True},
    "train": {"epochs": 20, "batch_size": 256, "lr": 1e-2, "optimizer": "adam", "weight_decay": 0.0,
              "schedule": "none", "patience": None},
    # on long files (JHU: 60k windows) batches grow so that an epoch takes at most this many steps;
    # small recurrent nets on a CPU are bound by per-step overhead, not by arithmetic
    "max_steps_per_epoch": 40,
}
QUICK = {"quick": True, "windows": {"lengths": [3, 10, 30]}, "train": {"epochs": 10}}  # short to long windows

# a sweep's default objective (the test days of the honest time split),
# and the per-epoch value its pruner watches
OBJECTIVE = ("test_balanced_accuracy", "maximize")
PRUNE_ON = ("val_loss", "minimize")


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


# data --------------------------------------------------------------------------------------------
def prepare(cfg: dict):
    series = load_case_series(cfg["data"]["path"])
    daily, corrected = daily_new_cases(series, cfg["data"]["negative_policy"])
    start = cfg["data"]["start_date"]
    if start is not None:
        try:
            when = pd.Timestamp(str(start))
        except ValueError:
            raise InputError(f"data.start_date '{start}' is not a date like 2020-02-01") from None
        if not daily.columns[0] <= when <= daily.columns[-1]:
            raise InputError(f"data.start_date {when.date()} is outside the data "
                             f"({daily.columns[0].date()} to {daily.columns[-1].date()})")
        daily = daily.loc[:, when:]
    longest = max(cfg["windows"]["lengths"])
    if longest >= daily.shape[1]:
        raise InputError(f"a window of {longest} days needs more than the {daily.shape[1]} days in the data; "
                         "use shorter windows or an earlier data.start_date")
    return series, daily, corrected


def correlations(daily: pd.DataFrame) -> pd.DataFrame:
    """Pearson correlation of the countries' daily series (numpy.corrcoef); a constant series has none (0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(daily.to_numpy())
    return pd.DataFrame(np.nan_to_num(corr, nan=0.0), index=daily.index, columns=daily.index)


def select_countries(corr: pd.DataFrame, threshold: float, rule: str) -> list[str]:
    """'any': a country whose daily series correlates at >= threshold with at least one other country.
    'mean': a country whose mean correlation with all the others is >= threshold."""
    off = corr.to_numpy().copy()
    np.fill_diagonal(off, np.nan)
    score = np.nanmax(off, axis=1) if rule == "any" else np.nanmean(off, axis=1)
    return [name for name, s in zip(corr.index, score) if s >= threshold]


def normalize(x: np.ndarray, how: str) -> np.ndarray:
    if how == "log":
        return np.log1p(x)
    if how == "window":  # each window on its own scale: the shape matters, not the country's size
        return (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-8)
    return x


def make_windows(daily: np.ndarray, length: int):
    """Every window of `length` days per series; label 1 when the next day's count exceeds the
    window's last day. Returns x (n, length), y (n,), series index (n,), target-day index (n,)."""
    n_series, n_days = daily.shape
    if length >= n_days:
        raise InputError(f"a window of {length} days needs more than the {n_days} days in the data")
    views = np.lib.stride_tricks.sliding_window_view(daily, length + 1, axis=1)  # (S, n_days - length, length + 1)
    x = views[..., :length].reshape(-1, length)
    y = (views[..., length] > views[..., length - 1]).reshape(-1).astype(np.int64)
    series = np.repeat(np.arange(n_series), n_days - length)
    target = np.tile(np.arange(length, n_days), n_series)
    return x, y, series, target


def split_indices(target: np.ndarray, n_days: int, how: str, cfg: dict, seed: int):
    """(fit, val, test) index arrays. time: test = windows whose target day lies in the last
    test_fraction of days, val = the last val_fraction of the remaining days. random: shuffled 7:3."""
    tf, vf = cfg["split"]["test_fraction"], cfg["split"]["val_fraction"]
    if how == "time":
        first = target.min()
        test_from = first + int(round((n_days - first) * (1 - tf)))
        val_from = first + int(round((test_from - first) * (1 - vf)))
        return (np.flatnonzero(target < val_from), np.flatnonzero((target >= val_from) & (target < test_from)),
                np.flatnonzero(target >= test_from))
    order = np.random.default_rng(seed).permutation(len(target))
    n_test = int(round(len(order) * tf))
    n_val = int(round((len(order) - n_test) * vf))
    return np.sort(order[n_test + n_val :]), np.sort(order[n_test : n_test + n_val]), np.sort(order[:n_test])


# models ------------------------------------------------------------------------------------------
def make_loss(pos_weight: float | None):
    weight = None if pos_weight is None else torch.tensor(pos_weight)

    def loss_fn(model, batch):
        x, y = batch
        logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=None if weight is None else weight.to(x.device))
        return loss, {"accuracy": ((logits > 0).float() == y).float().mean()}

    return loss_fn


@torch.no_grad()
def probabilities(model, x: np.ndarray, device) -> np.ndarray:
    model.eval()
    t = torch.from_numpy(x).float().unsqueeze(-1).to(device)  # (n, L, 1)
    return torch.sigmoid(model(t)).cpu().numpy()


def build_model(cfg: dict, cell: str) -> RecurrentClassifier:
    m = cfg["model"]
    return RecurrentClassifier(cell=cell, hidden_size=m["hidden_size"], num_layers=m["num_layers"], dropout=m["dropout"])


def tensors(x: np.ndarray, y: np.ndarray):
    return torch.from_numpy(x).float().unsqueeze(-1), torch.from_numpy(y).float()  # (n, L, 1), (n,)


# the study ---------------------------------------------------------------------------------------
def run(run, cfg: dict) -> dict:
    from sklearn.linear_model import LogisticRegression

    device = resolve_device(cfg["device"])
    seed = cfg["seed"]
    series, daily, corrected = prepare(cfg)
    corr = correlations(daily)
    kept = select_countries(corr, cfg["correlation"]["threshold"], cfg["correlation"]["rule"])
    if not kept:
        raise InputError(f"correlation threshold {cfg['correlation']['threshold']} keeps no country; lower it "
                         "(--threshold or correlation.threshold)")
    log.info("trend: %d of %d series kept by correlation (%s >= %g), %d days from %s",
             len(kept), len(daily), cfg["correlation"]["rule"], cfg["correlation"]["threshold"], daily.shape[1],
             daily.columns[0].date())
    values = daily.loc[kept].to_numpy()
    rows, histories, state, n_windows = [], {}, {}, {}
    for length in cfg["windows"]["lengths"]:
        x_raw, y, _, target = make_windows(values, length)
        # a window before a country's first cases (all zeros, then zero) says nothing about trends
        keep = x_raw.sum(axis=1) >= cfg["windows"]["min_cases"]
        x_raw, y, target = x_raw[keep], y[keep], target[keep]
        n_windows[length] = len(y)
        x = normalize(x_raw, cfg["windows"]["normalize"])
        for split in SPLITS:
            fit, val, test = split_indices(target, values.shape[1], split, cfg, seed)
            majority = int(np.bincount(y[fit], minlength=2).argmax())
            base = {"window": length, "split": split, "n_train": len(fit), "n_test": len(test),
                    "train_rise_share": float(y[fit].mean()), "test_rise_share": float(y[test].mean())}
            rows.append({**base, "model": "majority", **prefixed(binary_scores(y[test], np.full(len(test), float(majority))), "test")})
            balanced = "balanced" if cfg["model"]["class_weights"] else None
            logistic = LogisticRegression(max_iter=2000, class_weight=balanced).fit(x[fit], y[fit])
            rows.append({**base, "model": "logistic", "train_accuracy": logistic.score(x[fit], y[fit]),
                         "val_balanced_accuracy": binary_scores(y[val], logistic.predict_proba(x[val])[:, 1])["balanced_accuracy"],
                         **prefixed(binary_scores(y[test], logistic.predict_proba(x[test])[:, 1]), "test")})
            pos = float((y[fit] == 0).sum() / max((y[fit] == 1).sum(), 1)) if cfg["model"]["class_weights"] else None
            for cell in cfg["model"]["cells"]:
                name = f"{split}-{cell}-L{length}"
                t0 = time.time()
                torch.manual_seed(seed)
                model = build_model(cfg, cell)
                batch = max(cfg["train"]["batch_size"], -(-len(fit) // cfg["max_steps_per_epoch"]))
                trainer = Trainer(model, make_loss(pos), **{**cfg["train"], "batch_size": batch}, device=device, seed=seed,
                                  run=run, name=name, tensorboard=cfg["tensorboard"])
                trainer.fit(tensors(x[fit], y[fit]), tensors(x[val], y[val]), test=tensors(x[test], y[test]))
                run.save_weights(f"models/{name}.safetensors", model)
                histories[name] = trainer.history_
                p_val, p_test = probabilities(model, x[val], device), probabilities(model, x[test], device)
                rows.append({**base, "model": cell,
                             "train_accuracy": binary_scores(y[fit], probabilities(model, x[fit], device))["accuracy"],
                             "val_balanced_accuracy": binary_scores(y[val], p_val)["balanced_accuracy"],
                             **prefixed(binary_scores(y[test], p_test), "test"), "seconds": round(time.time() - t0, 1)})
                state[name] = (model, y[test], p_test)

    # selection on the validation days of the honest split; the test days are only reported
    honest = [r for r in rows if r["split"] == "time" and r["model"] in CELLS]
    best = max(honest, key=lambda r: (r["val_balanced_accuracy"], -r["window"]))
    best_name = f"time-{best['model']}-L{best['window']}"
    same_windows = {r["model"]: r for r in rows if r["split"] == "time" and r["window"] == best["window"]}
    model = state[best_name][0]
    latest = latest_probabilities(daily, model, best["window"], cfg, device)
    run.write_text("probabilities.csv", latest.to_csv(index=False))
    random_best = next(r for r in rows if r["split"] == "random" and r["model"] == best["model"] and r["window"] == best["window"])
    metrics = {
        "test_accuracy": best["test_accuracy"], "test_balanced_accuracy": best["test_balanced_accuracy"],
        "test_f1": best["test_f1"], "test_roc_auc": best["test_roc_auc"],
        "majority_baseline_accuracy": same_windows["majority"]["test_accuracy"],
        "logistic_baseline_accuracy": same_windows["logistic"]["test_accuracy"],
        "logistic_baseline_balanced_accuracy": same_windows["logistic"]["test_balanced_accuracy"],
        "random_split_test_accuracy": random_best["test_accuracy"],
        "n_countries": len(kept), "n_series": len(daily), "n_days": int(daily.shape[1]),
        "n_windows": n_windows[best["window"]],
        "best_model": best["model"], "best_window": best["window"], "split": "time (last 30% of days held out)",
        "negative_corrections": int(corrected.sum()), "data": series.source,
    }
    write_report(run, cfg, series, daily, corr, kept, corrected, rows, histories, state[best_name], best, latest, metrics)
    print(text_table([r for r in rows if r["split"] == "time"],
                     ["model", "window", "train_accuracy", "val_balanced_accuracy", "test_accuracy",
                      "test_balanced_accuracy", "test_f1", "test_roc_auc"]))
    return metrics


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
        auc = max(r["test_roc_auc"] for r in cells if r["test_roc_auc"] is not None) if any(
            r["test_roc_auc"] is not None for r in cells) else None
        shares = (f"rises are {best['train_rise_share']:.0%} of the training days and {best['test_rise_share']:.0%} "
                  "of the test days")
        if best["test_balanced_accuracy"] > 0.5 + margin:
            out.append(f"L = {length}: yes. {best['model'].upper()} reaches balanced accuracy "
                       f"{best['test_balanced_accuracy']:.3f} (ROC AUC {best['test_roc_auc']:.3f}) against 0.5 for "
                       f"the majority class; {shares}.")
        elif auc is not None and auc > 0.5 + 2 * margin:
            fix = ("even with class weights, so the ranking does not turn into a better decision at 0.5"
                   if class_weights else "set model.class_weights: true to weigh rises up in the loss")
            out.append(f"L = {length}: no, but not for lack of signal. Every model's balanced accuracy is at most "
                       f"{best['test_balanced_accuracy']:.3f}: at the 0.5 threshold it answers (nearly) one class, while "
                       f"its ROC AUC of up to {auc:.3f} shows it ranks rises above chance; {shares}: {fix}.")
        else:
            out.append(f"L = {length}: no. Balanced accuracy at most {best['test_balanced_accuracy']:.3f} and ROC AUC "
                       f"at most {auc if auc is None else round(auc, 3)}: these windows carry no usable signal about "
                       f"the next day; {shares}.")
    return out


def prefixed(scores: dict, prefix: str) -> dict:
    return {f"{prefix}_{k}": v for k, v in scores.items()}


def latest_probabilities(daily: pd.DataFrame, model, length: int, cfg: dict, device) -> pd.DataFrame:
    """The probability of a rise after each series' latest window."""
    x = normalize(daily.to_numpy()[:, -length:], cfg["windows"]["normalize"])
    prob = probabilities(model, x, device)
    codes = map_codes(daily.index)
    return pd.DataFrame({"country": daily.index, "map_code": [codes[n] or "" for n in daily.index],
                         "probability": np.round(prob, 4), "window_end": daily.columns[-1].date().isoformat(),
                         "last_count": daily.iloc[:, -1].to_numpy().astype(np.int64)})


def write_report(run, cfg, series, daily, corr, kept, corrected, rows, histories, best_state, best, latest, metrics):
    report = Report(TITLE, run=run)
    report.heading("Data")
    report.paragraph(f"{series.source}: {len(daily)} series over {daily.shape[1]} days "
                     f"({daily.columns[0].date()} to {daily.columns[-1].date()}).")
    if series.cumulative:
        fixed = corrected[corrected > 0]
        policy = ("set to 0" if cfg["data"]["negative_policy"] == "clip" else
                  "set to 0 and taken from the preceding days, newest first, so totals still match")
        report.paragraph(f"Cumulative counts became daily new cases. {int(fixed.sum())} negative daily values "
                         f"(corrections) in {len(fixed)} series were {policy} (data.negative_policy = "
                         f"{cfg['data']['negative_policy']}).")
        if len(fixed):
            report.table([{"series": k, "negative days": int(v)} for k, v in fixed.items()], caption="Corrections per series")
    report.heading("Correlation between countries")
    rule = ("its daily series has a Pearson correlation of at least {t} with at least one other country's"
            if cfg["correlation"]["rule"] == "any" else
            "the mean Pearson correlation of its daily series with all other countries' is at least {t}")
    report.paragraph("A country is kept when " + rule.format(t=cfg["correlation"]["threshold"]) +
                     f" (numpy.corrcoef over the {daily.shape[1]} days shown; a constant series counts as 0). "
                     f"Kept: {len(kept)} of {len(daily)}.")
    report.figure(plots.heatmap(corr.to_numpy(), list(corr.index), title="All series"), "correlation_all",
                  "Pearson correlation of the daily series of every country (names hidden above 60).")
    top = daily.sum(axis=1).sort_values(ascending=False).index[: cfg["correlation"]["subset"]]
    report.figure(plots.heatmap(corr.loc[top, top].to_numpy(), list(top), title="Countries with most cases"),
                  "correlation_subset", f"The {len(top)} series with the most cases.")
    report.heading("Variant grid")
    report.paragraph(
        "Each window of L days predicts whether the next day's count exceeds the window's last day. The time split "
        "holds out the last 30% of days (honest: the model never sees the future); the random split shuffles "
        "windows 7:3 as the reports did, and overlapping windows then leak the test days into training. Models are "
        "selected by balanced accuracy on validation days (the last 20% of the training days, or a random 20%), "
        "never on the test set. Baselines use the same windows: the training majority class, and logistic "
        "regression on the normalised window.")
    for split in SPLITS:
        table = pivot(rows, split)
        report.table(table, caption=f"Test accuracy, {split} split (rows: model; columns: window length L)")
    honest = [r for r in rows if r["split"] == "time"]
    report.table(honest, caption="Every variant, time split", highlight=honest.index(best))
    report.table([r for r in rows if r["split"] == "random"], caption="Every variant, random split")
    lift = metrics["test_accuracy"] - max(metrics["majority_baseline_accuracy"], metrics["logistic_baseline_accuracy"])
    report.paragraph(
        f"Selected: {best['model'].upper()} with L = {best['window']}. On the held-out last days it reaches accuracy "
        f"{metrics['test_accuracy']:.3f} (balanced {metrics['test_balanced_accuracy']:.3f}) against "
        f"{metrics['majority_baseline_accuracy']:.3f} for the majority class and {metrics['logistic_baseline_accuracy']:.3f} "
        f"for logistic regression on the same windows: {lift:+.3f} over the better baseline. The same variant scores "
        f"{metrics['random_split_test_accuracy']:.3f} under the random split.")
    report.heading("Did each window length learn beyond the majority class?")
    report.bullets(window_sentences(rows, class_weights=cfg["model"]["class_weights"]))
    report.heading("Learning curves")
    for split in SPLITS:
        chosen = {k: v for k, v in histories.items() if k.startswith(f"{split}-")}
        report.figure(plots.curves(chosen, ["accuracy", "test_accuracy"], ylabel="accuracy"), f"curves_accuracy_{split}",
                      f"Train and test accuracy per epoch, {split} split.")
        report.figure(plots.curves(chosen, ["loss", "test_loss"], ylabel="BCE loss"), f"curves_loss_{split}",
                      f"Train and test loss per epoch, {split} split.")
    _, y_test, p_test = best_state
    report.figure(plots.confusion_figure(confusion(y_test, (p_test >= 0.5).astype(int), 2), ["no rise", "rise"],
                                         title=f"{best['model'].upper()} L={best['window']}"),
                  "confusion", "Confusion matrix of the selected variant on the test days (time split).")
    report.heading("Probability of a rise after the latest window")
    if series.named:
        placed = latest[latest["map_code"] != ""]
        report.image(plots.world_map_svg(dict(zip(placed["map_code"], placed["probability"].astype(float))),
                                         title=f"P(rise after {latest['window_end'].iloc[0]})"),
                     "world_map.svg", "image/svg+xml",
                     "Darker: more likely to rise the next day; pygal scales the shade between the lowest and highest "
                     "probability (values in the table below and in probabilities.csv).")
        unplaced = sorted(latest.loc[latest["map_code"] == "", "country"])
        report.paragraph(f"{len(placed)} countries placed on the map. Not on pygal's world map, so listed here "
                         f"instead: {', '.join(unplaced) if unplaced else 'none'}.")
        metrics["unmapped_countries"] = unplaced
    else:
        report.paragraph("These series carry no country names (aeon's WHO set), so no map is drawn; see "
                         "probabilities.csv.", note=True)
    report.table(latest.sort_values("probability", ascending=False).head(30).to_dict("records"),
                 caption="Highest probabilities (all in probabilities.csv)")
    report.write(config=cfg, metrics=metrics, seconds=run.elapsed())


def pivot(rows: list[dict], split: str) -> list[dict]:
    out = []
    for model in ["majority", "logistic", *CELLS]:
        chosen = [r for r in rows if r["split"] == split and r["model"] == model]
        if chosen:
            out.append({"model": model, **{f"L={r['window']}": r["test_accuracy"] for r in chosen}})
    return out


# predict -----------------------------------------------------------------------------------------
def predict(root: Path, cfg: dict, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto") -> dict:
    """Probabilities after each series' latest window, and the accuracy over every window of the new data."""
    dev = resolve_device(device)
    cfg = {**cfg, "data": {**cfg["data"], "path": data_path, "start_date": None}}
    length = metrics["best_window"]
    cfg["windows"] = {**cfg["windows"], "lengths": [length]}
    _, daily, _ = prepare(cfg)
    model = build_model(cfg, metrics["best_model"])
    load_weights(model, root / "models" / f"time-{metrics['best_model']}-L{length}.safetensors")
    model.to(dev)
    latest = latest_probabilities(daily, model, length, cfg, dev)
    atomic_write_bytes(out, latest.to_csv(index=False).encode())
    x, y, _, _ = make_windows(daily.to_numpy(), length)
    scores = binary_scores(y, probabilities(model, normalize(x, cfg["windows"]["normalize"]), dev))
    return {"n_series": len(daily), "n_windows": len(y), "predictions": str(out),
            **prefixed({k: v for k, v in scores.items() if v is not None}, "all_windows")}


def summary(metrics: dict) -> str:
    return (f"{metrics['best_model'].upper()} L={metrics['best_window']}: test balanced accuracy "
            f"{metrics['test_balanced_accuracy']:.3f} vs 0.5 for the majority class and "
            f"{metrics['logistic_baseline_balanced_accuracy']:.3f} for logistic regression (accuracy "
            f"{metrics['test_accuracy']:.3f}; time split, {metrics['n_countries']} countries)")
