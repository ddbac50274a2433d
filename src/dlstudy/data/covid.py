"""COVID-19 case series as users have them, as one table of cumulative or daily counts
(entity x day).

Formats, detected from the header:
- the NCTU DL 2020 HW2 `covid_19.csv`: an empty first header cell, `Lat`, `Long`, date headers that a
  spreadsheet mangled (`2002/1/20` is 2/1/20), then a `sum` row and a `Country/Region` row;
- the JHU CSSE `time_series_covid19_confirmed_global.csv`: one row per province, summed per country;
- a plain wide CSV (entity, then one column per date) and a long CSV (entity, date, value).
Without a path: the WHO daily series of 201 countries that ships with aeon (no country names).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dlstudy.errors import InputError, readable

log = logging.getLogger("dlstudy")

MANGLED = re.compile(r"^200(\d)/(\d{1,2})/(\d{2})$")  # Excel read 2/1/20 as the year 2002, month 1, day 20
PLAIN = re.compile(r"^\d{1,2}/\d{1,2}/\d{2,4}$|^\d{4}-\d{2}-\d{2}$")


@dataclass
class CaseSeries:
    counts: pd.DataFrame  # (entities, days), float, DatetimeIndex columns
    cumulative: bool
    source: str
    named: bool = True  # False: entities are anonymous series, so no map


def parse_date(header: str) -> pd.Timestamp | None:
    text = str(header).strip()
    m = MANGLED.match(text)
    if m:
        month, day, year = m.groups()
        text = f"{month}/{day}/{year}"
    elif not PLAIN.match(text):
        return None
    try:
        fmt = "%Y-%m-%d" if "-" in text else ("%m/%d/%y" if len(text.rsplit("/", 1)[-1]) == 2 else "%m/%d/%Y")
        return pd.to_datetime(text, format=fmt)
    except ValueError:
        return None


def _first_cell(mask: pd.DataFrame) -> tuple | None:
    """(row, column) of the first True cell, or None."""
    hits = mask.stack()
    return hits[hits].index[0] if hits.any() else None


def _numeric(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    values = table.apply(pd.to_numeric, errors="coerce")
    cell = _first_cell(values.isna() & table.notna())
    if cell:
        row, col = cell
        raise InputError(f"{path}: count {table.loc[row, col]!r} for '{row}' on {col} is not a number; fix that cell")
    cell = _first_cell(values.isna())
    if cell:
        raise InputError(f"{path}: no count for '{cell[0]}' on {cell[1]}; fill the empty cell")
    cell = _first_cell(~np.isfinite(values))  # 'inf' parses as a number; as a count it is a typo
    if cell:
        row, col = cell
        raise InputError(
            f"{path}: count {str(table.loc[row, col])[:30]!r} for '{row}' on {col} is not finite; fix that cell"
        )
    return values.astype(np.float64)


def _looks_cumulative(counts: pd.DataFrame) -> bool:
    """Cumulative series almost never fall from one day to the next (JHU corrections are rare)."""
    return bool((counts.diff(axis=1).iloc[:, 1:] >= 0).mean().mean() > 0.95)


def load_case_series(path: str | Path | None) -> CaseSeries:
    if path is None:
        from aeon.datasets import load_covid_3month

        X, _ = load_covid_3month()
        days = pd.date_range("2020-01-22", periods=X.shape[2], freq="D")  # aeon gives no dates; days are relative
        counts = pd.DataFrame(X[:, 0, :], index=[f"series {i}" for i in range(len(X))], columns=days)
        return CaseSeries(
            counts, cumulative=False, source="WHO daily cases, 201 countries (aeon Covid3Month)", named=False
        )
    path = readable(path, "--data", folder=True)
    if path.is_dir():
        raise InputError(f"--data {path} is a folder; the trend study reads one CSV of case counts per country")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path} cannot be read as CSV ({str(exc).splitlines()[0]})") from None
    dates = {c: parse_date(c) for c in raw.columns}
    date_cols = [c for c, d in dates.items() if d is not None]
    info = [c for c in raw.columns if dates[c] is None]
    if not date_cols:
        if len(raw.columns) == 3 and raw.iloc[:, 1].map(parse_date).notna().mean() > 0.5:
            return _long(raw, path)
        raise InputError(
            f"{path}: no date columns found (headers like 1/22/20 or 2020-01-22); "
            "give a wide table (entity, dates...) or a long one (entity, date, value)"
        )
    if "Country/Region" in info:  # JHU: one row per province, summed per country
        table = raw.set_index("Country/Region")
        counts = _numeric(table[date_cols], path).groupby(level=0, sort=True).sum()
        source = f"{path.name} (JHU CSSE, provinces summed per country)"
    else:
        name_col = info[0]
        table = raw.set_index(name_col)
        # the course file's 'sum' and 'Country/Region' rows under the header are not countries
        table = table[~table.index.isin(["Country/Region"]) & ~(table[date_cols] == "sum").all(axis=1)]
        table = table[table.index.notna()]
        counts = _numeric(table[date_cols], path)
        source = path.name
    counts.columns = pd.DatetimeIndex([dates[c] for c in date_cols])
    if counts.columns.duplicated().any():
        day = counts.columns[counts.columns.duplicated()][0]
        twins = [c for c in date_cols if dates[c] == day]
        raise InputError(
            f"{path}: columns {' and '.join(repr(c) for c in twins[:2])} are the same day "
            f"({day:%Y-%m-%d}); keep one column a day"
        )
    counts = counts.sort_index(axis=1)
    counts.index = counts.index.map(str)
    if counts.index.duplicated().any():
        dup = counts.index[counts.index.duplicated()][0]
        raise InputError(f"{path}: '{dup}' appears twice; one row per entity")
    if len(counts) == 0:
        raise InputError(f"{path}: holds no rows of counts")
    return CaseSeries(counts, cumulative=_looks_cumulative(counts), source=source)


def _long(raw: pd.DataFrame, path: Path) -> CaseSeries:
    entity, date, value = raw.columns
    when = raw[date].map(parse_date)
    if when.isna().any():
        raise InputError(f"{path}: '{raw[date][when.isna()].iloc[0]}' in column '{date}' is not a date")
    twice = raw.assign(**{date: when}).duplicated([entity, date])
    if twice.any():
        row = raw[twice].iloc[0]
        raise InputError(f"{path}: '{row[entity]}' has two rows for {when[twice].iloc[0]:%Y-%m-%d}; keep one row a day")
    table = raw.assign(**{date: when}).pivot_table(index=entity, columns=date, values=value, aggfunc="first")
    counts = _numeric(table, path)
    return CaseSeries(counts, cumulative=_looks_cumulative(counts), source=f"{path.name} (long format)")


def daily_new_cases(series: CaseSeries, policy: str = "clip") -> tuple[pd.DataFrame, pd.Series]:
    """Daily counts, and per entity how many negative daily values (corrections) the policy changed.

    clip:   a negative day becomes 0 (the total then exceeds the last cumulative count).
    spread: a negative day becomes 0 and its amount is taken from the preceding days, newest first,
            so the daily counts still add up to the last cumulative count.
    """
    if policy not in ("clip", "spread"):
        raise InputError(f"data.negative_policy must be clip or spread, not '{policy}'")
    counts = series.counts
    if series.cumulative:
        daily = counts.diff(axis=1)
        daily.iloc[:, 0] = counts.iloc[:, 0]  # the first day's count is new cases since records began
    else:
        daily = counts.copy()
    values = daily.to_numpy(copy=True)
    changed = (values < 0).sum(axis=1)
    if policy == "clip":
        values[values < 0] = 0
    else:
        for row in values:
            for t in np.flatnonzero(row < 0):
                owed, row[t] = -row[t], 0.0
                for j in range(t - 1, -1, -1):
                    take = min(owed, row[j])
                    row[j] -= take
                    owed -= take
                    if owed <= 0:
                        break
    return pd.DataFrame(values, index=daily.index, columns=daily.columns), pd.Series(changed, index=daily.index)
