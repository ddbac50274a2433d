"""How sure a number is, measured on the run itself: bootstrap intervals over the test items, and paired
comparisons of two models scored on the same items.

An interval here covers the test items' sampling only (one data set, one split, one seed): what another
draw of test items of the same kind would give. The seed-to-seed spread is measured by --seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

RESAMPLES = 1000  # bootstrap resamples: the ends of a 95 % interval move by about 0.003 between seeds
RECOMPUTED = 400  # for statistics recomputed from scratch on each resample (an NMI, a cluster matching, macro F1)
LEVEL = 0.95

# item indices (B, n), one bootstrap resample a row, -> the statistic on each resample (B,); the statistic on the
# test set itself is statistic(np.arange(n)[None])[0]
Statistic = Callable[[np.ndarray], np.ndarray]


def resample(n: int, *, strata: np.ndarray | None = None, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n) item indices drawn with replacement; within each stratum (class) when given, so every
    resample keeps the test set's class shares."""
    rng = np.random.default_rng(seed)
    if strata is None:
        return rng.integers(0, n, size=(resamples, n), dtype=np.int32)
    strata = np.asarray(strata)
    assert len(strata) == n, "one stratum per item"
    out = np.empty((resamples, n), dtype=np.int32)  # int32: half the memory traffic of int64 indices
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        out[:, members] = members[rng.integers(0, len(members), size=(resamples, len(members)), dtype=np.int32)]
    return out


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap values (NaNs, from resamples a statistic is undefined on, left out)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return (float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return (float(low), float(high))


def bootstrap_ci(
    statistic: Statistic, n: int, *, strata: np.ndarray | None = None, seed: int = 0, resamples: int = RESAMPLES
) -> tuple[float, float]:
    """The 95 % percentile interval of a statistic over bootstrap resamples of the n test items."""
    return interval(statistic(resample(n, strata=strata, resamples=resamples, seed=seed)))


def on_test_set(statistic: Statistic, n: int) -> float:
    return float(statistic(np.arange(n)[None])[0])


def per_resample(fn: Callable[[np.ndarray], float]) -> Statistic:
    """A statistic that takes one row of indices (an AUC, an NMI) made to take many."""
    return lambda rows: np.array([fn(row) for row in rows], dtype=np.float64)


def mean_of(values: np.ndarray) -> Statistic:
    """The mean of per-item values (right or wrong, nats): an accuracy or a mean loss."""
    values = np.asarray(values, dtype=np.float64)
    return lambda rows: values[rows].mean(axis=-1)


def balanced_accuracy_of(y: np.ndarray, pred: np.ndarray) -> Statistic:
    """The mean recall over the classes of y (on each resample, over the classes it holds)."""
    y, correct = np.asarray(y), np.asarray(pred) == np.asarray(y)

    def statistic(rows: np.ndarray) -> np.ndarray:
        ys, right = y[rows], correct[rows]
        recalls = []
        for c in np.unique(y):
            members = (ys == c).sum(axis=-1)
            recalls.append(np.where(members > 0, (right & (ys == c)).sum(axis=-1) / np.maximum(members, 1), np.nan))
        return np.nanmean(np.stack(recalls), axis=0)

    return statistic


@dataclass(frozen=True)
class Comparison:
    """Two models on the same test items: the difference of a statistic (a minus b), its paired bootstrap
    interval, and, for accuracies, McNemar's exact test on the items one gets right and the other wrong."""

    a: str
    b: str
    difference: float
    low: float
    high: float
    n: int  # test items
    what: str  # the statistic, in words ("balanced accuracy")
    items: str  # the test items, in words ("test days")
    p_mcnemar: float | None = None

    @property
    def differs(self) -> bool:
        """Whether the interval of the difference excludes zero: only then do the words say 'better'."""
        return bool(self.low > 0 or self.high < 0)

    @property
    def test(self) -> str:
        named = f"paired bootstrap over the {self.n} {self.items}, 95 % interval"
        return named if self.p_mcnemar is None else f"{named}; McNemar's exact test p = {self.p_mcnemar:.2g}"

    def sentence(self, *, higher_is_better: bool = True) -> str:
        """'a is better than b by ...' only when the interval excludes zero; otherwise no difference claimed."""
        if not self.differs:
            span = f"{self.difference:+.3f}, {self.low:+.3f} to {self.high:+.3f}; {self.test}"
            return f"{self.a} against {self.b}: no difference this test set can tell ({self.what} {span})"
        ahead = (self.difference > 0) == higher_is_better
        winner, loser = (self.a, self.b) if ahead else (self.b, self.a)
        sign = 1 if winner == self.a else -1  # the difference as winner minus loser
        low, high = sorted((sign * self.low, sign * self.high))
        span = f"{sign * self.difference:+.3f}, {low:+.3f} to {high:+.3f}; {self.test}"
        return f"{winner} is better than {loser} ({self.what} difference {winner} minus {loser} {span})"


def compare(
    a: str,
    b: str,
    stat_a: Statistic,
    stat_b: Statistic,
    n: int,
    *,
    what: str,
    items: str,
    strata: np.ndarray | None = None,
    correct: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
) -> Comparison:
    """Models a and b scored on the same n items: the difference of their statistics with its paired
    bootstrap interval (both resampled with the same items). `correct`: each model's per-item right or
    wrong, for McNemar's test."""
    rows = resample(n, strata=strata, seed=seed)
    low, high = interval(stat_a(rows) - stat_b(rows))
    difference = on_test_set(stat_a, n) - on_test_set(stat_b, n)
    p = mcnemar(*correct) if correct is not None else None
    return Comparison(a=a, b=b, difference=difference, low=low, high=high, n=n, what=what, items=items, p_mcnemar=p)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """McNemar's exact test: of the items exactly one model gets right, is each model's share 1/2?"""
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def auc_interval(auc: float, positives: int, negatives: int) -> tuple[float, float]:
    """A 95 % interval of a ROC AUC from Hanley and McNeil's (1982) standard error: cheap enough for every
    variant of a grid, where a bootstrap of each would take minutes."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / max(
        positives * negatives, 1
    )
    half = 1.96 * float(np.sqrt(max(var, 0.0)))
    return (max(0.0, auc - half), min(1.0, auc + half))


def difference_interval(a: np.ndarray, b: np.ndarray, *, seed: int = 0) -> tuple[float, float]:
    """The 95 % bootstrap interval of mean(a) - mean(b) for two separate groups of items (each resampled on its
    own: nothing pairs them)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    rows_a, rows_b = resample(len(a), seed=seed), resample(len(b), seed=seed + 1)
    return interval(a[rows_a].mean(axis=1) - b[rows_b].mean(axis=1))
