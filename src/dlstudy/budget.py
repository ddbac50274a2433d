"""Time budgets: a run planned from what this machine measures, so that it ends when the user expects.

A `Budget` is one run's wall-clock allowance (`--budget 20m`, or the study's default). The run holds it open
(`running`); every training inside asks it for a share (`allot`): the time left, less the share the study keeps
for what follows training (explanations, the report), split over the trainings still to come, so that one
which ends early leaves its time to the next. The Trainer then times a few steps and an evaluation pass on a
copy of its model, plans its epochs and its schedule for them, and re-checks after every epoch (dlstudy.train).
Before that, `climb` picks the widest net of a study's ladder that trains enough epochs in the share.

The AutoML tools (AutoGluon's time_limit, FLAML's time_budget) plan around a budget; Lightning's max_time
only stops the loop, which cuts a cosine schedule in its middle. Here the schedule always reaches its end.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dlstudy.config import Schema, dump_yaml, flatten, format_duration, merge, parse_duration, validate
from dlstudy.errors import InputError
from dlstudy.runs import read_json

log = logging.getLogger("dlstudy")

# what follows training (explanations, reductions, maps, the report) unless a study says its own: a share of the
# budget, and as many epochs of the run's first training, since those costs grow with the data and the net as
# an epoch does, not with the budget
AFTER_TRAINING, AFTER_TRAINING_EPOCHS = 0.1, 0.0
PLAN_FILE = "plan.json"  # in the run folder: the rung of the first start, which a resume keeps
METRICS = ("budget_seconds", "planned_epochs")  # the numbers a budgeted run adds to metrics.json


@dataclass
class Budget:
    """One run's allowance. What follows training is kept `tail_share` of it and `tail_epochs` epochs of the run's
    first training (as measured); `given`: the dotted config keys the user set (an explicit train.epochs wins over
    the budget); `clock`: seconds, monotonic (tests fake it)."""

    seconds: float
    tail_share: float = 0.0
    tail_epochs: float = 0.0
    given: frozenset[str] = frozenset()
    clock: Callable[[], float] = time.monotonic
    plans: dict[str, dict] = field(default_factory=dict)  # trainer name -> its plan, for metrics.json
    rung: str | None = None
    first_epoch: float | None = None  # seconds an epoch of the run's first training, as measured

    def __post_init__(self):
        self.start = self.clock()

    def tail(self, epoch_seconds: float | None = None) -> float:
        """Seconds kept for what follows training; `epoch_seconds` stands in for the first training's epoch before
        one was measured (a ladder's rung)."""
        return self.tail_share * self.seconds + self.tail_epochs * (self.first_epoch or epoch_seconds or 0.0)

    def elapsed(self) -> float:
        return self.clock() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def allot(self, remaining: int = 1, epoch_seconds: float | None = None) -> float:
        """Seconds for the next training: what is left before the tail, shared with the `remaining - 1` after it."""
        return max(self.left() - self.tail(epoch_seconds), 0.0) / max(remaining, 1)

    def smallest(self, epoch_seconds: float, remaining: int = 1) -> float:
        """The smallest budget in which every remaining training gets one epoch of this length, and the tail its part."""
        need = self.elapsed() + remaining * epoch_seconds + self.tail_epochs * (self.first_epoch or epoch_seconds)
        return need / (1 - self.tail_share)

    def stretch(self, name: str, epoch_seconds: float, remaining: int = 1) -> None:
        """A default budget is a plan, not a wall: where one epoch does not fit it, take the smallest that fits, and
        say so in one line (a budget the user gave is kept, and too small is an error)."""
        need = math.ceil(self.smallest(epoch_seconds, remaining) / 60) * 60
        log.warning(
            "%s: one epoch takes about %s here, more than the default budget of %s allows; planning with %s instead "
            "(--budget sets it)",
            name,
            format_duration(epoch_seconds),
            format_duration(self.seconds),
            format_duration(need),
        )
        self.seconds = float(need)

    def too_small(self, name: str, epoch_seconds: float, remaining: int = 1) -> InputError:
        need = math.ceil(self.smallest(epoch_seconds, remaining) / 60) * 60
        return InputError(
            f"--budget {format_duration(self.seconds)} is too small: one epoch of {name} takes about "
            f"{format_duration(epoch_seconds)} here; the smallest budget that fits is --budget {need // 60:.0f}m"
        )

    def summary(self) -> dict:
        """What metrics.json records of the budget and how it was planned."""
        return {
            "budget_seconds": round(self.seconds, 1),
            "planned_epochs": sum(p["planned_epochs"] for p in self.plans.values()) if self.plans else None,
            "rung": self.rung,
            "plan": self.plans,
        }

    def note(self, seconds: float) -> str:
        """The report's line under the card: the budget, how it was used, what was planned."""
        parts = [f"Budget {format_duration(self.seconds)}, used {format_duration(seconds)}."]
        if self.rung:
            parts.append(f"The {self.rung} net was the widest that fit.")
        plans = list(self.plans.values())
        replans = sum(len(p["replans"]) for p in plans)
        if len(plans) > 3:  # a grid's cells: one sentence for all
            steps = sorted(p["seconds_per_step"] for p in plans)
            parts.append(
                f"{len(plans)} trainings: {sum(p['epochs'] for p in plans)} epochs trained of "
                f"{sum(p['planned_epochs'] for p in plans)} planned (the config asks for at most "
                f"{sum(p['ceiling'] for p in plans)}), {steps[0]:.3g} to {steps[-1]:.3g} s a step measured here."
            )
        for name, p in self.plans.items() if len(plans) <= 3 else ():
            how = "as set in the config" if p["fixed"] else f"planned of at most {p['ceiling']}"
            parts.append(
                f"{name}: {p['epochs']} epochs trained, {p['planned_epochs']} {how}, "
                f"{p['seconds_per_step']:.3g} s a step measured here."
            )
        if replans:
            parts.append(f"Re-planned {replans} time(s) as epochs ran slower or faster than measured at the start.")
        return " ".join(parts)


def seconds_of(value: str | float | None) -> float | None:
    """A --budget flag's value (90s, 20m, 1.5h, or seconds) in seconds; None stays None."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise InputError(f"--budget: {exc}") from None
    if not isinstance(seconds, float) or seconds <= 0:
        raise InputError(f"--budget must be a positive duration (90s, 20m, 1.5h), got {value!r}")
    return seconds


_running: list[Budget] = []


@contextlib.contextmanager
def running(budget: Budget | None) -> Iterator[Budget | None]:
    """Within the block, trainings plan against `budget` (None: no planning)."""
    _running.append(budget)
    try:
        yield budget
    finally:
        _running.pop()


def current() -> Budget | None:
    return _running[-1] if _running else None


def plan_epochs(allotted: float, epoch_seconds: float, ceiling: int) -> int:
    """The epochs that fit in `allotted` seconds, at most `ceiling` (the config's epochs: a faster machine
    finishes early rather than training past what the study asks for)."""
    return min(ceiling, int(allotted // max(epoch_seconds, 1e-9)))


@dataclass(frozen=True)
class Rung:
    """One net of a study's ladder: config overrides, and the fewest epochs at which it beats the next rung down."""

    name: str
    overrides: dict
    min_epochs: int


def climb(
    run, cfg: Schema, ladder: list[Rung], *, epoch_seconds: Callable[[Schema], float], remaining: int = 1
) -> Schema:
    """The config of the widest rung that trains at least its `min_epochs` in this run's share (the last rung
    whatever fits), measured rung by rung on this machine; `cfg` unchanged without a budget, for --quick, or when
    the user set a key a rung sets. The choice goes to the run folder (config.yaml, plan.json): a resume keeps it."""
    budget = current()
    keys = {k for rung in ladder for k in flatten(rung.overrides)}
    if budget is None or cfg.quick or not ladder or keys & budget.given:
        return cfg
    saved = read_json(run.file(PLAN_FILE)) if run.file(PLAN_FILE).exists() else {}
    chosen = next((r for r in ladder if r.name == saved.get("rung")), None)
    for rung in ladder if chosen is None else ():
        with torch.random.fork_rng():  # building a net to time it draws weights: the run's own draws stay the same
            seconds = epoch_seconds(on_rung(cfg, rung))
        allotted = budget.allot(remaining, seconds)
        fits = plan_epochs(allotted, seconds, 10**9)
        log.info(
            "budget: the %s net takes %s an epoch here: %d epochs fit in %s (it needs %d)",
            rung.name,
            format_duration(seconds),
            fits,
            format_duration(allotted),
            rung.min_epochs,
            extra={"detail": True},
        )
        if fits >= min(rung.min_epochs, cfg.train.epochs) or rung is ladder[-1]:
            chosen = rung
            break
    budget.rung = chosen.name
    run.write_json(PLAN_FILE, {"rung": chosen.name, "overrides": chosen.overrides})
    cfg = on_rung(cfg, chosen)
    run.write_text("config.yaml", dump_yaml(cfg.model_dump()))  # the net that trains, for predict and the report
    return cfg


def on_rung(cfg: Schema, rung: Rung) -> Schema:
    return validate(type(cfg), merge(cfg.model_dump(), rung.overrides))


def resumed_config(cfg: Schema, root) -> Schema:
    """A resumed run's config: the rung its first start chose (plan.json) on top of the flags' config."""
    plan = Path(root) / PLAN_FILE
    if not plan.exists():
        return cfg
    return validate(type(cfg), merge(cfg.model_dump(), read_json(plan).get("overrides", {})))
