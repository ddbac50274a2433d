"""How sure a number is, measured on the run itself: bootstrap intervals over the test items, paired comparisons
of two models scored on the same items, a report's comparisons corrected together, and intervals over seeds.

The resampling unit is the test set's independent unit. Images are independent of each other, so each is drawn on
its own. Trend windows are not: every country's window on one day shares that day's news, and a day resembles the
days before it, so whole days are drawn, in blocks of consecutive days (a stationary block bootstrap, from arch).
An interval covers the test items' sampling only (one data set, one split, one seed); --seeds measures the rest.

A resample is a vector of weights, how often each item was drawn, so one statistic serves every scheme: an
accuracy is a weighted mean, a balanced accuracy weighted recalls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import norm, t, ttest_1samp

RESAMPLES = 1000  # bootstrap resamples: the ends of a 95 % interval move by about 0.003 between seeds
RECOMPUTED = 400  # for statistics recomputed from scratch on each resample (an NMI, a cluster matching, macro F1)
LEVEL = 0.95
ALPHA = 0.05  # a comparative word needs p < ALPHA after the report's correction (Holm)
POWER = 0.80  # the power at which a 'no difference' sentence gives the smallest difference it could have seen

# (B, n) item weights, one resample a row (how often each item was drawn) -> the statistic on each resample (B,);
# the statistic on the test set itself is statistic(np.ones((1, n)))[0]
Statistic = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Items:
    """A test set's items and the unit they are resampled by: each item alone, or (`clusters`, one integer per item
    in time order: its day) whole clusters, grouped into blocks of `block` consecutive ones (batch means).

    Clustered items have few independent units, and a bootstrap over few units is too narrow; so for them the
    bootstrap gives only the standard error over the G blocks, corrected for their number (G / (G - 1)), and the
    interval and p-value are read against Student's t with G - 1 degrees of freedom. The block is long enough that
    neighbouring blocks barely depend on each other: three times Politis and White's block length for the statistic's
    own series over the days (arch), so at least 3 days, and at least 5 blocks."""

    n: int
    name: str = "test items"
    clusters: np.ndarray | None = None
    unit: str = "item"
    block: int | None = None  # None: chosen per statistic, from how its value on each cluster depends on the last

    def per_cluster(self) -> np.ndarray:
        """(clusters, n) weights that each hold one cluster's items: a statistic on them is its value per day."""
        return (self.clusters[None, :] == np.arange(int(self.clusters.max()) + 1)[:, None]).astype(np.float32)

    def fitted(self, statistic: Statistic) -> Items:
        """These items with the block length chosen for `statistic`: how its value on a day depends on the days
        before, not how the data do."""
        if self.clusters is None or self.block is not None:
            return self
        from arch.bootstrap import optimal_block_length

        series = np.asarray(statistic(self.per_cluster()), dtype=np.float64)
        series = np.where(np.isfinite(series), series, np.nanmean(series) if np.isfinite(series).any() else 0.0)
        dependence = 1.0
        if len(series) >= 8 and np.std(series) > 0:
            with np.errstate(divide="ignore", invalid="ignore"):  # a series with no autocorrelation: 1
                found = optimal_block_length(series)["stationary"].iloc[0]
            dependence = float(np.nan_to_num(found, nan=1.0, posinf=1.0))
        block = int(np.ceil(3 * max(dependence, 1.0)))
        return replace(self, block=int(np.clip(block, 1, max(1, len(series) // 5))))

    @property
    def blocks(self) -> np.ndarray:
        """Each item's block of consecutive clusters (0, 1, ...)."""
        return self.clusters // (self.block or 1)

    def weights(self, *, strata: np.ndarray | None = None, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
        """(resamples, n) weights. `strata`: draw within each stratum (class), so every resample keeps the class
        shares: right for statistics defined within classes (recalls), wrong for plain accuracy, whose spread
        includes the class shares' own. Clustered items are drawn by whole blocks, never stratified."""
        rng = np.random.default_rng(seed)
        if self.clusters is not None:
            blocks = self.blocks
            g = int(blocks.max()) + 1
            return counts(rng.integers(0, g, size=(resamples, g)), g)[:, blocks].astype(np.float32)
        if strata is None:
            return counts(rng.integers(0, self.n, size=(resamples, self.n)), self.n).astype(np.float32)
        strata = np.asarray(strata)
        assert len(strata) == self.n, "one stratum per item"
        out = np.zeros((resamples, self.n), dtype=np.float32)
        for value in np.unique(strata):
            members = np.flatnonzero(strata == value)
            out[:, members] = counts(rng.integers(0, len(members), size=(resamples, len(members))), len(members))
        return out

    def summary(self, observed: float, values: np.ndarray) -> tuple[float, float, float, float]:
        """(low, high, standard error, two-sided p of zero) from a statistic's bootstrap values and its value on the
        test set. Independent items: the percentile interval and its own test. Clustered: Student's t over blocks."""
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if len(values) < 2:
            return (float("nan"), float("nan"), float("nan"), 1.0)
        if self.clusters is None:
            low, high = interval(values)
            return (low, high, float(np.std(values, ddof=1)), bootstrap_p(values))
        return student(observed, values, dof=int(self.blocks.max()))

    def subset(self, mask: np.ndarray) -> Items:
        """The items where mask holds, resampled the same way."""
        if self.clusters is None:
            return replace(self, n=int(mask.sum()))
        _, index = np.unique(self.clusters[mask], return_inverse=True)
        return replace(self, n=int(mask.sum()), clusters=index)

    @property
    def units(self) -> int:
        """How many independent units the items hold: items, or clusters (days)."""
        return self.n if self.clusters is None else len(np.unique(self.clusters))

    @property
    def scheme(self) -> str:
        """How the items are drawn, without their counts: what a report says once for all its comparisons."""
        if self.clusters is None:
            return f"{self.name}, each drawn on its own (percentile intervals)"
        return (
            f"{self.name} by whole {self.unit}s in blocks of consecutive {self.unit}s (each statistic's block three "
            f"times Politis and White's length, Student's t over the blocks)"
        )

    @property
    def described(self) -> str:
        if self.clusters is None:
            return f"the {self.n} {self.name}, each drawn on its own"
        k = len(np.unique(self.clusters))
        blocks = "blocks" if self.block is None else f"{int(self.blocks.max()) + 1} blocks of {self.block}"
        return (
            f"the {self.n} {self.name} on {k} {self.unit}s, drawn by whole {self.unit}s in {blocks} consecutive "
            f"{self.unit}s (block lengths chosen for each statistic; Student's t over the blocks)"
        )


def student(observed: float, values: np.ndarray, *, dof: int) -> tuple[float, float, float, float]:
    """(low, high, standard error, two-sided p of zero) for a statistic over `dof` + 1 independent blocks: the
    bootstrap's spread corrected for their number ((dof + 1) / dof) and read against Student's t with `dof`."""
    dof = max(dof, 1)
    se = float(np.std(values, ddof=1) * np.sqrt((dof + 1) / dof))
    q = float(t.ppf(0.5 + LEVEL / 2, dof))
    p = float(2 * t.sf(abs(observed) / se, dof)) if se > 0 else float(observed == 0)
    return (observed - q * se, observed + q * se, se, p)


def counts(drawn: np.ndarray, n: int) -> np.ndarray:
    """(B, m) drawn indices in [0, n) -> (B, n) how often each index was drawn in each row."""
    b = len(drawn)
    return np.bincount((drawn + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)


def clustered(clusters: np.ndarray, *, name: str, unit: str) -> Items:
    """Items that share clusters in time order (`clusters`: any sortable label per item, a date)."""
    _, index = np.unique(clusters, return_inverse=True)
    return Items(n=len(index), name=name, clusters=index, unit=unit)


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
    statistic: Statistic, items: Items | int, *, strata=None, seed: int = 0, resamples: int = RESAMPLES
) -> tuple[float, float]:
    """The 95 % percentile interval of a statistic over bootstrap resamples of the test items (an int: that many
    independent items)."""
    items = (items if isinstance(items, Items) else Items(n=items)).fitted(statistic)
    values = statistic(items.weights(strata=strata, resamples=resamples, seed=seed))
    low, high, _, _ = items.summary(on_test_set(statistic, items.n), values)
    return (low, high)


def on_test_set(statistic: Statistic, n: int) -> float:
    return float(statistic(np.ones((1, n), dtype=np.float32))[0])


def per_resample(fn: Callable[[np.ndarray], float]) -> Statistic:
    """A statistic of item indices (an AUC, an NMI) made to take weights: each row's items, repeated as drawn."""

    def statistic(weights: np.ndarray) -> np.ndarray:
        items = np.arange(weights.shape[1])
        return np.array([fn(np.repeat(items, row.astype(np.int64))) for row in weights], dtype=np.float64)

    return statistic


def mean_of(values: np.ndarray) -> Statistic:
    """The mean of per-item values (right or wrong, nats): an accuracy or a mean loss."""
    values = np.asarray(values, dtype=np.float32)
    return lambda w: (w @ values).astype(np.float64) / w.sum(axis=-1)


def constant(value: float) -> Statistic:
    """A fixed reference (the 0.5 of a majority-class balanced accuracy) as a statistic."""
    return lambda w: np.full(len(w), float(value))


def balanced_accuracy_of(y: np.ndarray, pred: np.ndarray) -> Statistic:
    """The mean recall over the classes of y (on each resample, over the classes it holds)."""
    y = np.asarray(y)
    correct = np.asarray(pred) == y
    members = np.stack([(y == c) for c in np.unique(y)], axis=1).astype(np.float32)  # (n, classes)

    def statistic(w: np.ndarray) -> np.ndarray:
        seen = w @ members
        right = w @ (members * correct[:, None])
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls = np.where(seen > 0, right / np.maximum(seen, 1e-12), np.nan)
        return np.nanmean(recalls, axis=1).astype(np.float64)

    return statistic


@dataclass(frozen=True)
class Comparison:
    """Two models on the same test items: the difference of a statistic (a minus b), its paired bootstrap interval,
    the bootstrap's two-sided p-value, and the p-value after the report's correction (Holm over `family`
    statements). Only a corrected p below ALPHA makes the words say 'better'."""

    a: str
    b: str
    difference: float
    low: float
    high: float
    se: float  # the bootstrap standard error of the difference
    p: float
    what: str  # the statistic, in words ("balanced accuracy")
    items: str  # the test items and how they were drawn, in words
    p_adjusted: float | None = None
    family: int = 1
    kind: str = "paired bootstrap"  # the test, in words
    scheme: str = ""  # how the items were drawn, without counts (Items.scheme), for the report's one note

    @property
    def decided_by(self) -> float:
        return self.p if self.p_adjusted is None else self.p_adjusted

    @property
    def differs(self) -> bool:
        return bool(self.decided_by < ALPHA)

    @property
    def detectable(self) -> float:
        """The smallest true difference this test finds with POWER, at the strictest level the correction uses."""
        return float((norm.ppf(1 - ALPHA / self.family / 2) + norm.ppf(POWER)) * self.se)

    @property
    def test(self) -> str:
        said = f"95 % interval {self.low:+.3f} to {self.high:+.3f}, {self.kind}, p = {self.p:.2g}"
        if self.p_adjusted is not None and self.family > 1:
            said += f", {self.p_adjusted:.2g} after Holm's correction over the report's {self.family} comparisons"
        return said

    def sentence(self, *, higher_is_better: bool = True, verb: str = "is better than") -> str:
        """'a is better than b' only when the corrected p is below ALPHA; otherwise no difference is claimed, and
        the smallest difference the test could have seen is said, so that it is not read as 'equal'."""
        if not self.differs:
            return (
                f"{self.a} against {self.b}: no difference this test set can tell ({self.what} difference "
                f"{self.difference:+.3f}; {self.test}; a difference smaller than about {self.detectable:.3f} would "
                f"go unseen {POWER:.0%} of the time)"
            )
        ahead = (self.difference > 0) == higher_is_better
        winner, loser = (self.a, self.b) if ahead else (self.b, self.a)
        sign = 1 if winner == self.a else -1  # the difference as winner minus loser
        low, high = sorted((sign * self.low, sign * self.high))
        flipped = replace(self, low=low, high=high)
        return (
            f"{winner} {verb} {loser} ({self.what} difference {winner} minus {loser} "
            f"{sign * self.difference:+.3f}; {flipped.test})"
        )


def compare(
    a: str,
    b: str,
    stat_a: Statistic,
    stat_b: Statistic,
    items: Items | int,
    *,
    what: str,
    strata: np.ndarray | None = None,
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> Comparison:
    """Models a and b scored on the same items: the difference of their statistics, with its paired bootstrap
    interval (both on the same resamples) and the p-value of 'no difference' from the same resamples."""
    items = (items if isinstance(items, Items) else Items(n=items)).fitted(lambda w: stat_a(w) - stat_b(w))
    w = items.weights(strata=strata, resamples=resamples, seed=seed)
    difference = on_test_set(stat_a, items.n) - on_test_set(stat_b, items.n)
    low, high, se, p = items.summary(difference, stat_a(w) - stat_b(w))
    kind = "paired bootstrap" if items.clusters is None else "paired block bootstrap, Student's t"
    return Comparison(
        a=a,
        b=b,
        difference=difference,
        low=low,
        high=high,
        se=se,
        p=p,
        what=what,
        items=items.described,
        kind=kind,
        scheme=items.scheme,
    )


def bootstrap_p(deltas: np.ndarray) -> float:
    """The two-sided p-value of a zero difference from bootstrap differences: twice the smaller share of resamples
    on either side of zero (the percentile interval's own test: p < 0.05 when 0 lies outside the 95 % interval)."""
    deltas = np.asarray(deltas)
    if not len(deltas):
        return 1.0
    below, above = (deltas <= 0).sum(), (deltas >= 0).sum()
    return float(min(1.0, 2 * (min(below, above) + 1) / (len(deltas) + 1)))


def unpaired(
    a_name: str,
    b_name: str,
    a: np.ndarray,
    b: np.ndarray,
    *,
    what: str,
    items_a: Items | None = None,
    items_b: Items | None = None,
    seed: int = 0,
) -> Comparison:
    """mean(a) - mean(b) for two separate groups of items, each resampled on its own (nothing pairs them); each
    group's items independent unless its `items` say how they cluster."""
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    items_a = (items_a or Items(n=len(a), name=f"{a_name}'s items")).fitted(mean_of(a))
    items_b = (items_b or Items(n=len(b), name=f"{b_name}'s items")).fitted(mean_of(b))
    deltas = mean_of(a)(items_a.weights(seed=seed)) - mean_of(b)(items_b.weights(seed=seed + 1))
    difference = float(a.mean() - b.mean())
    if items_a.clusters is None and items_b.clusters is None:
        low, high = interval(deltas)
        se, p = float(np.std(deltas, ddof=1)), bootstrap_p(deltas)
    else:  # Welch's t over the two groups' blocks: the fewer blocks set the degrees of freedom
        dof = min(int(i.blocks.max()) if i.clusters is not None else i.n - 1 for i in (items_a, items_b))
        low, high, se, p = student(difference, deltas, dof=dof)
    return Comparison(
        a=a_name,
        b=b_name,
        difference=difference,
        low=low,
        high=high,
        se=se,
        p=p,
        what=what,
        items=f"{items_a.described}; {items_b.described}",
        kind="bootstrap of two separate groups",
        scheme=f"{items_a.scheme}; {items_b.scheme}",
    )


def holm(family: dict) -> dict:
    """A report's comparisons corrected together by Holm's step-down method (statsmodels), so that the chance of any
    false 'better' among them stays at ALPHA; each keeps its own p beside the corrected one."""
    from statsmodels.stats.multitest import multipletests

    if not family:
        return {}
    keys = list(family)
    adjusted = multipletests([family[k].p for k in keys], alpha=ALPHA, method="holm")[1]
    return {k: replace(family[k], p_adjusted=float(p), family=len(keys)) for k, p in zip(keys, adjusted)}


@dataclass(frozen=True)
class SeedSpread:
    """A number over K seeds: its mean with the t-interval of the mean (where the expected value of a run lies),
    and the t prediction interval of one new run (where the next seed's number lies, which is wider)."""

    mean: float
    sd: float
    k: int
    mean_low: float
    mean_high: float
    next_low: float
    next_high: float


def over_seeds(values) -> SeedSpread:
    values = np.asarray(values, dtype=np.float64)
    k, mean = len(values), float(values.mean())
    sd = float(values.std(ddof=1)) if k > 1 else float("nan")
    q = float(t.ppf(0.5 + LEVEL / 2, k - 1)) if k > 1 else float("nan")
    half_mean, half_next = q * sd / np.sqrt(k), q * sd * np.sqrt(1 + 1 / k)
    return SeedSpread(
        mean=mean,
        sd=sd,
        k=k,
        mean_low=mean - half_mean,
        mean_high=mean + half_mean,
        next_low=mean - half_next,
        next_high=mean + half_next,
    )


def seeds_test(differences) -> float:
    """The p-value of a zero mean paired difference over the seeds (one-sample t-test; 1.0 when undefined)."""
    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 2 or np.allclose(d, d[0]):
        return 1.0 if len(d) < 2 or d[0] == 0 else 0.0
    return float(ttest_1samp(d, 0.0).pvalue)


@dataclass(frozen=True)
class Curve:
    """Whether a model overfits, by a test rather than by the curve's look: the best epoch is chosen on one half of
    the validation items (even positions) and the last epoch is compared with it on the other half (paired over the
    same items), so the choice's own luck does not count as a rise. `rise`: last minus best, in loss."""

    best: int  # 0-based epoch chosen on the first half
    epochs: int
    rise: Comparison
    training_falls: bool

    @property
    def overfits(self) -> bool:
        return self.best < self.epochs - 1 and self.training_falls and self.rise.differs and self.rise.difference > 0


def overfitting(losses, train_loss, *, items: Items | None = None, seed: int = 0) -> Curve | None:
    """`losses`: (epochs, n) each validation item's loss per epoch; `train_loss`: the training loss per epoch;
    `items`: how the validation items are resampled (whole days for trend windows). None when the items are too few
    to halve: a half needs two units (items, or days) to be resampled at all."""
    losses = np.asarray(losses, dtype=np.float32)
    epochs, n = losses.shape
    first = np.arange(n) % 2 == 0
    other = (items or Items(n=n, name="validation items")).subset(~first)
    if first.sum() < 1 or other.units < 2:
        return None
    best = int(np.argmin(losses[:, first].mean(axis=1)))
    rise = compare(
        "the last epoch",
        f"epoch {best + 1}",
        mean_of(losses[-1, ~first]),
        mean_of(losses[best, ~first]),
        other,
        what="validation loss",
        seed=seed,
    )
    falls = bool(train_loss[-1] < train_loss[best]) if best < epochs - 1 else False
    return Curve(best=best, epochs=epochs, rise=rise, training_falls=falls)
