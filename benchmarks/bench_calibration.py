"""Calibration of the project's own intervals and decision words on synthetic data with known truth (issue 46).

    python benchmarks/bench_calibration.py [--reps 300] [--cases accuracy trend-days ...]

Each case draws data whose truth is known, runs it through dlstudy's own functions (analysis.uncertainty and the
studies' tests) and counts: for an interval, how often it covers the truth (target 0.93-0.97); for a decision
word under a true null, how often it fires (target at most 0.06 a statement, and a report family after Holm's
correction at most 0.06; 'overfits' at most 0.05). Prints a table and writes benchmarks/results/calibration.json.
tests/test_calibration.py runs the same cases with fewer repetitions.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.special import expit
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from dlstudy.analysis.uncertainty import (
    RECOMPUTED,
    per_resample,
    balanced_accuracy_of,
    bootstrap_ci,
    compare,
    holm,
    mean_of,
    over_seeds,
    overfitting,
)
from dlstudy.studies.generate.inference import active_units_of
from dlstudy.studies.trend.inference import day_items

HERE = Path(__file__).resolve().parent


def recalls(rng, n=500):
    """Two classes, shares 0.8 / 0.2, recalls 0.95 / 0.30: accuracy 0.82, balanced accuracy 0.625."""
    y = (rng.random(n) < 0.2).astype(int)
    right = np.where(y == 0, rng.random(n) < 0.95, rng.random(n) < 0.30)
    return y, np.where(right, y, 1 - y)


def case_accuracy(rng, seed):
    y, pred = recalls(rng)
    low, high = bootstrap_ci(mean_of(pred == y), len(y), seed=seed)
    return low <= 0.82 <= high


def case_balanced(rng, seed):
    y, pred = recalls(rng)
    low, high = bootstrap_ci(balanced_accuracy_of(y, pred), len(y), strata=y, seed=seed)
    return low <= 0.625 <= high


def case_nats(rng, seed):
    """Skewed per-image nats (a gamma), true mean 200."""
    x = rng.gamma(4.0, 50.0, size=400)
    low, high = bootstrap_ci(mean_of(x), len(x), seed=seed)
    return low <= 200.0 <= high


def case_auc(rng, seed, n=300, d=0.8):
    """Scores of 100 positives and 200 negatives, normal with means d apart: AUC = Phi(d / sqrt 2) = 0.714."""
    y = np.r_[np.ones(100, int), np.zeros(n - 100, int)]
    score = rng.normal(0, 1, n) + d * y
    auc = per_resample(lambda rows: roc_auc_score(y[rows], score[rows]) if 0 < y[rows].sum() < len(rows) else np.nan)
    low, high = bootstrap_ci(auc, n, seed=seed, resamples=RECOMPUTED)
    return low <= norm.cdf(d / np.sqrt(2)) <= high


DAYS, COUNTRIES = 60, 25


def day_effects(rng, days=DAYS, rho=0.5, sd=0.8):
    """A shared day effect that follows the days before it (AR(1))."""
    e = np.empty(days)
    e[0] = rng.normal(0, sd)
    for d in range(1, days):
        e[d] = rho * e[d - 1] + rng.normal(0, sd * np.sqrt(1 - rho**2))
    return e


def trend_windows(rng, base=0.4, rho=0.0):
    """Right or wrong per (day, country) window, with a shared day effect (AR(1) over the days with `rho`): the
    truth is the expected accuracy."""
    e = day_effects(rng, rho=rho)
    right = rng.random((DAYS, COUNTRIES)) < expit(base + e[:, None])
    days = np.repeat(np.arange(DAYS), COUNTRIES)
    return right.ravel(), days


TREND_TRUTH = float(np.mean(expit(0.4 + np.random.default_rng(123).normal(0, 0.8, 2_000_000))))


def case_trend_days(rng, seed, rho=0.0):
    right, days = trend_windows(rng, rho=rho)
    low, high = bootstrap_ci(mean_of(right), day_items(right.astype(float), days), seed=seed)
    return low <= TREND_TRUTH <= high


def case_trend_days_ar(rng, seed):
    return case_trend_days(rng, seed, rho=0.5)


def case_seeds_mean(rng, seed, k=5):
    values = rng.normal(0.7, 0.02, size=k)
    s = over_seeds(values)
    return s.mean_low <= 0.7 <= s.mean_high


def case_seeds_next(rng, seed, k=5):
    values, new = rng.normal(0.7, 0.02, size=k), rng.normal(0.7, 0.02)
    s = over_seeds(values)
    return s.next_low <= new <= s.next_high


def null_better_images(rng, seed):
    """Two models with the same accuracy on independent images, their errors correlated: 'better' fires?"""
    n = 500
    shared = rng.random(n) < 0.7
    a = np.where(rng.random(n) < 0.6, shared, rng.random(n) < 0.7)
    b = np.where(rng.random(n) < 0.6, shared, rng.random(n) < 0.7)
    return compare("a", "b", mean_of(a), mean_of(b), n, what="accuracy", seed=seed).differs


def null_better_days(rng, seed):
    """Two trend models of equal skill whose right answers share the day effect: 'better' fires?"""
    e = day_effects(rng)
    days = np.repeat(np.arange(DAYS), COUNTRIES)
    a = (rng.random((DAYS, COUNTRIES)) < expit(0.4 + e[:, None])).ravel()
    b = (rng.random((DAYS, COUNTRIES)) < expit(0.4 + e[:, None])).ravel()
    items = day_items(a.astype(float), days)
    return compare("a", "b", mean_of(a), mean_of(b), items, what="accuracy", seed=seed).differs


def null_overfits(rng, seed, epochs=20, n=400):
    """A flat validation curve of pure noise (each item's loss its own level plus noise each epoch) while the
    training loss falls: 'overfits' fires?"""
    level = rng.gamma(2.0, 0.35, size=n)
    losses = level[None, :] + rng.normal(0, 0.15, size=(epochs, n))
    return overfitting(losses, np.linspace(0.7, 0.4, epochs), seed=seed).overfits


def window_family(rng, seed, windows=5):
    """No signal at all: labels and probabilities drawn apart, 5 window lengths; each window's 'beats the majority
    class' on balanced accuracy, as the trend report tests it (whole days): (any before correction, any after)."""
    family = {}
    for w in range(windows):
        e = day_effects(rng)
        y = (rng.random((DAYS, COUNTRIES)) < expit(-0.2 + e[:, None])).ravel().astype(int)
        pred = (rng.random(len(y)) < 0.5).astype(int)
        days = np.repeat(np.arange(DAYS), COUNTRIES)
        family[w] = compare(
            "model",
            "majority",
            balanced_accuracy_of(y, pred),
            lambda wt: np.full(len(wt), 0.5),
            day_items(y.astype(float), days),
            what="balanced accuracy",
            seed=seed + w,
        )
    raw = any(c.differs and c.difference > 0 for c in family.values())
    corrected = any(c.differs and c.difference > 0 for c in holm(family).values())
    return raw, corrected


def null_reduction(rng, seed, chains=4, n=1000):
    """Chains of equal accuracy: the worst by public accuracy against the best by public accuracy, on private."""
    right = rng.random((chains, n)) < 0.6
    public, private = np.arange(n) < n // 2, np.arange(n) >= n // 2
    best, worst = int(np.argmax(right[:, public].mean(1))), int(np.argmin(right[:, public].mean(1)))
    if best == worst:
        return False
    return compare(
        "best",
        "worst",
        mean_of(right[best, private]),
        mean_of(right[worst, private]),
        int(private.sum()),
        what="private accuracy",
        seed=seed,
    ).differs


def null_collapses(rng, seed, n=300, d=16):
    """Two VAEs whose posterior means have the same variances, some near the 0.01 line: 'collapses' fires?"""
    scale = np.sqrt(np.linspace(0.002, 0.05, d))
    a, b = rng.normal(0, scale, size=(n, d)), rng.normal(0, scale, size=(n, d))
    test = compare("a", "b", active_units_of(a), active_units_of(b), n, what="active units", seed=seed)
    return test.differs and test.difference < 0


def null_family(rng, seed, m=10):
    """A report of 10 null paired comparisons on independent images: any 'better' after Holm's correction?"""
    n = 400
    family = {}
    for i in range(m):
        a, b = rng.random(n) < 0.7, rng.random(n) < 0.7
        family[i] = compare("a", "b", mean_of(a), mean_of(b), n, what="accuracy", seed=seed + i)
    return any(c.differs for c in holm(family).values())


# name -> (kind, function, what it measures, the target); 'coverage' cases return True when covered, 'null' ones
# True when the word fired
CASES = {
    "accuracy": ("coverage", case_accuracy, "accuracy, recalls 0.95 / 0.30, shares 0.8 / 0.2, n = 500", (0.93, 0.97)),
    "balanced-accuracy": ("coverage", case_balanced, "balanced accuracy, same data, within classes", (0.93, 0.97)),
    "auc": ("coverage", case_auc, "ROC AUC, binormal scores, 100 / 200 items", (0.93, 0.97)),
    "mean-nats": ("coverage", case_nats, "mean of skewed per-image nats, n = 400", (0.93, 0.97)),
    "trend-days": (
        "coverage",
        case_trend_days,
        "trend accuracy, 60 days x 25 countries, a shared day effect",
        (0.93, 0.97),
    ),
    "trend-days-ar": (
        "coverage",
        case_trend_days_ar,
        "the same, each day's effect half the day before's (AR(1) 0.5)",
        (0.93, 0.97),
    ),
    "seeds-mean": ("coverage", case_seeds_mean, "seeds report: t-interval of the mean, K = 5", (0.93, 0.97)),
    "seeds-next": ("coverage", case_seeds_next, "seeds report: prediction interval of a new run, K = 5", (0.93, 0.97)),
    "better-images": ("null", null_better_images, "'better', equal models on independent images", (0, 0.06)),
    "better-days": ("null", null_better_days, "'better', equal trend models sharing day effects", (0, 0.06)),
    "overfits": ("null", null_overfits, "'overfits', flat noisy validation curve, 20 epochs", (0, 0.05)),
    "reduction": ("null", null_reduction, "'the reduction matters', 4 equal chains", (0, 0.06)),
    "collapses": ("null", null_collapses, "'collapses', equal posterior variances", (0, 0.06)),
    "family-10": ("null", null_family, "any 'better' in a report of 10 null comparisons, Holm", (0, 0.06)),
}


def rate(name: str, reps: int, seed: int = 0) -> dict:
    """The case's rate over `reps` draws (each draw its own generator and bootstrap seed)."""
    kind, fn, what, (low, high) = CASES[name]
    hits = [bool(fn(np.random.default_rng(seed * 100_000 + r), r)) for r in range(reps)]
    value = float(np.mean(hits))
    return {
        "case": name,
        "kind": kind,
        "what": what,
        "rate": value,
        "target": f"{low:g}-{high:g}",
        "ok": bool(low <= value <= high),
    }


def window_rates(reps: int, seed: int = 0) -> list[dict]:
    """The signal-per-window case, a statement and a report family (5 windows) before and after correction."""
    draws = [window_family(np.random.default_rng(seed * 100_000 + r), r) for r in range(reps)]
    raw, corrected = np.mean([d[0] for d in draws]), np.mean([d[1] for d in draws])
    what = "'signal' for some L of 5, no signal at all"
    return [
        {
            "case": "signal-raw",
            "kind": "null",
            "what": what + ", uncorrected",
            "rate": float(raw),
            "target": "-",
            "ok": True,
        },
        {
            "case": "signal-holm",
            "kind": "null",
            "what": what + ", Holm",
            "rate": float(corrected),
            "target": "0-0.06",
            "ok": bool(corrected <= 0.06),
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--cases", nargs="*", default=list(CASES) + ["signal"])
    args = parser.parse_args()
    from common import write_results

    t0, rows = time.time(), []
    for name in args.cases:
        rows += window_rates(args.reps) if name == "signal" else [rate(name, args.reps)]
    write_results(
        rows,
        HERE / "results" / "calibration.json",
        summary=f"{args.reps} draws a case, {time.time() - t0:.0f} s; +-{1.96 * np.sqrt(0.05 * 0.95 / args.reps):.3f} "
        "at a rate of 0.05",
        reps=args.reps,
    )


if __name__ == "__main__":
    main()
