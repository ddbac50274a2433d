"""The trend study's config: every key with its type, default, range and what it does.
`dlstudy trend` runs the defaults; --quick applies QUICK on top."""

from __future__ import annotations

import datetime
from typing import Annotated

from pydantic import BeforeValidator, Field

from dlstudy.config import Count, Duration, Fraction, Rate, Schema, TrainingConfig, budget_key, key, one_of, section
from dlstudy.models.recurrent import CELLS
from dlstudy.train import Training


# YAML reads 2021-01-01 as a date; the config keeps the text, as the user wrote it
Day = Annotated[str, BeforeValidator(lambda v: v.isoformat() if isinstance(v, datetime.date) else v)]


class Data(Schema):
    """The case series: the NCTU HW2 covid_19.csv, JHU CSSE time series, or a long table."""

    path: str | None = key(None, "None: the WHO COVID-19 series that ship with aeon")
    negative_policy: one_of("clip", "spread") = key(
        "clip", "negative daily counts (corrections): clip sets them to 0, spread takes them from the days before"
    )
    start_date: Day | None = key(None, "the first day used (YYYY-MM-DD); None: the series' first day")


class Correlation(Schema):
    """Which countries the models train on: those whose daily series correlate with others'."""

    threshold: Annotated[float, Field(ge=-1, le=1)] = key(0.5, "the Pearson correlation a country needs")
    rule: one_of("any", "mean") = key("any", "any: with at least one other country; mean: on average with all others")
    subset: Count = key(25, "the countries with most cases in the second heat map")


class Windows(Schema):
    """The inputs: the L days before the day whose rise is predicted."""

    lengths: list[Annotated[int, Field(ge=2, le=10**9)]] = key(
        [3, 5, 7, 9, 10, 15, 20, 30], "the window lengths L, each a row of every table", min_length=1
    )
    normalize: one_of("none", "log", "window") = key("window", "window: each window divided by its own maximum")
    min_cases: Annotated[int, Field(ge=0)] = key(
        1, "windows with fewer cases in total (before a country's first) are dropped"
    )


class Split(Schema):
    """The honest split holds out the last days; the random split shuffles windows as the reports did."""

    test_fraction: Fraction = key(0.3, "the share of days (time split) or windows (random split) held out for test")
    val_fraction: Fraction = key(0.2, "the share of the rest held out for selecting a variant")


class Model(Schema):
    """The recurrent classifiers, one per cell and window length."""

    cells: list[one_of(*CELLS)] = key(list(CELLS), "the recurrent cells compared", min_length=1)
    hidden_size: Count = key(32, "the hidden state's size")
    num_layers: Count = key(1, "stacked recurrent layers")
    dropout: Rate = key(0.0, "dropout between stacked layers")
    class_weights: bool = key(
        True,
        "weigh the rarer class up in the loss (and balance the logistic baseline the same way); without it a "
        "training period with few rises makes every model answer 'no rise' at 0.5 although it ranks days well",
    )


class Config(TrainingConfig):
    """dlstudy trend: will a country's daily cases rise tomorrow?"""

    # what the full grid took on the JHU series on 2 CPU cores (10 min); --quick: 2 min
    budget: Duration | None = budget_key(600.0)

    data: Data = section(Data)
    correlation: Correlation = section(Correlation)
    windows: Windows = section(Windows)
    split: Split = section(Split)
    model: Model = section(Model)
    train: Training = section(Training, epochs=20, batch_size=256, lr=1e-2)
    max_steps_per_epoch: Annotated[int, Field(ge=1, le=10**7)] = key(
        40,
        "on long files (JHU: 60k windows) batches grow so that an epoch takes at most this many steps: small "
        "recurrent nets on a CPU are bound by per-step overhead, not by arithmetic",
    )


QUICK = {
    "quick": True,
    "budget": 120.0,
    "windows": {"lengths": [3, 10, 30]},
    "train": {"epochs": 10},
}  # short to long windows
