"""Pruning that compares like with like.

A trial may train several models in turn (trend's cells x windows, generate's grid). Each model's
epochs are reported under a step range of their own (`step(model, epoch)`), and a trial is judged only
against the finished trials' values for the same model at the same epoch, never against another
model's curve. Before a quarter of the model's epochs (`warmup`), and before MIN_FINISHED trials have
finished that model to that epoch, nothing is pruned: early epochs favour fast learners, not good ones
(a lower learning rate always looks worse at epoch 2).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import optuna

STRIDE = 100_000  # epochs one model can report: the config caps epochs at 100,000
SLOTS = 20_000  # model names hash into this many step ranges; SLOTS * STRIDE fits PostgreSQL's 32-bit step column
MIN_FINISHED = 5  # Optuna's own default start-up count


def step(model: str, epoch: int) -> int:
    """The Optuna step of `model`'s `epoch` (1-based): the same in every trial that trains that model."""
    return zlib.crc32(model.encode()) % SLOTS * STRIDE + epoch


def warmup(epochs: int) -> int:
    """The first epoch at which a model trained for `epochs` may be pruned."""
    return max(1, math.ceil(epochs / 4))


class ModelMedianPruner(optuna.pruners.BasePruner):
    """Prune when the trial's best value for this model so far is worse than the median of the finished
    trials' values for the same model at the same epoch. Values arrive signed to the study's direction."""

    def __init__(self, *, min_finished: int = MIN_FINISHED):
        self.min_finished = min_finished

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        last = trial.last_step
        if last is None:
            return False
        finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        others = [t.intermediate_values[last] for t in finished if last in t.intermediate_values]
        if len(others) < self.min_finished:
            return False
        start = last - last % STRIDE  # this model's range: its epochs so far in this trial
        mine = [v for s, v in trial.intermediate_values.items() if start <= s <= last]
        better = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
        best = better(mine)
        if math.isnan(best):
            return True
        kept = [v for v in others if not math.isnan(v)]
        if not kept:
            return False
        median = float(np.median(kept))
        return best < median if better is max else best > median


# name -> (the pruner, what --help says of it)
PRUNERS = {
    "median": (
        ModelMedianPruner,
        "stop a trial whose model is worse than the median of finished trials at the same epoch",
    ),
    "none": (optuna.pruners.NopPruner, "run every trial to its end"),
}


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    return PRUNERS[name][0]()
