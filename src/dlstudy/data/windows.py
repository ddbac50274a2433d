"""From case series to the trend study's examples: daily counts from a start date, the correlation
filter between countries, windows of L days labelled 'rise' or not, and the honest (time) and the
reports' (random) splits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlstudy.data.covid import CaseSeries, daily_new_cases, load_case_series
from dlstudy.errors import InputError


def load_daily(cfg) -> tuple[CaseSeries, pd.DataFrame, pd.Series]:
    """(series as read, daily new cases from data.start_date, negative corrections per series); whether the days
    are enough is the caller's check (`check_days` to train, a window's length to predict)."""
    series = load_case_series(cfg.data.path)
    daily, corrected = daily_new_cases(series, cfg.data.negative_policy)
    start = cfg.data.start_date
    if start is not None:
        try:
            when = pd.Timestamp(str(start))
        except ValueError:
            raise InputError(f"data.start_date '{start}' is not a date like 2020-02-01") from None
        if not daily.columns[0] <= when <= daily.columns[-1]:
            raise InputError(
                f"data.start_date {when.date()} is outside the data "
                f"({daily.columns[0].date()} to {daily.columns[-1].date()})"
            )
        daily = daily.loc[:, when:]
    return series, daily, corrected


def correlations(daily: pd.DataFrame) -> pd.DataFrame:
    """Pearson correlation of the countries' daily series (numpy.corrcoef); a constant series has none (0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(daily.to_numpy())
    return pd.DataFrame(np.nan_to_num(corr, nan=0.0), index=daily.index, columns=daily.index)


def select_countries(corr: pd.DataFrame, threshold: float, rule: str) -> list[str]:
    """'any': a country whose daily series correlates at >= threshold with at least one other country.
    'mean': a country whose mean correlation with all the others is >= threshold."""
    if len(corr) < 2:
        raise InputError(
            f"the correlation filter compares countries, and the data hold {len(corr)} series; give a CSV of two or "
            "more countries' counts"
        )
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


def split_indices(target: np.ndarray, n_days: int, how: str, cfg, seed: int):
    """(fit, val, test) index arrays. time: test = windows whose target day lies in the last
    test_fraction of days, val = the last val_fraction of the remaining days. random: shuffled 7:3."""
    tf, vf = cfg.split.test_fraction, cfg.split.val_fraction
    if how == "time":
        first = target.min()
        test_from = first + int(round((n_days - first) * (1 - tf)))
        val_from = first + int(round((test_from - first) * (1 - vf)))
        return (
            np.flatnonzero(target < val_from),
            np.flatnonzero((target >= val_from) & (target < test_from)),
            np.flatnonzero(target >= test_from),
        )
    order = np.random.default_rng(seed).permutation(len(target))
    n_test = int(round(len(order) * tf))
    n_val = int(round((len(order) - n_test) * vf))
    return np.sort(order[n_test + n_val :]), np.sort(order[n_test : n_test + n_val]), np.sort(order[:n_test])


def days_needed(length: int, cfg) -> int:
    """The fewest days whose windows of `length` leave training, validation and test windows under the time split."""
    for n_days in range(length + 3, length + 10_000):
        if all(len(part) for part in split_indices(np.arange(length, n_days), n_days, "time", cfg, 0)):
            return n_days
    return length + 10_000


def check_days(n_days: int, cfg, source: str) -> None:
    """Refuse data too short for every window length the config asks for, with a fix that works when followed."""
    short = [length for length in cfg.windows.lengths if n_days < days_needed(length, cfg)]
    if not short:
        return
    fits = [length for length in range(2, max(cfg.windows.lengths)) if n_days >= days_needed(length, cfg)]
    fix = (
        f"use windows that fit, e.g. --set windows.lengths=[{', '.join(map(str, fits[-3:]))}]"
        if fits
        else f"give a series of at least {days_needed(max(cfg.windows.lengths), cfg)} days"
    )
    raise InputError(
        f"{source}: {n_days} days are too few for windows of L = {short[-1]}: the time split needs at least "
        f"{days_needed(short[-1], cfg)} days to hold training, validation and test windows; {fix}"
    )
