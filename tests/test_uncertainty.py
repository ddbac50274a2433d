"""Intervals and paired comparisons on hand-made per-item results: known answers, and words that follow them."""

import numpy as np
import pytest

from dlstudy.analysis.uncertainty import (
    balanced_accuracy_of,
    bootstrap_ci,
    compare,
    mcnemar,
    mean_of,
    on_test_set,
    per_resample,
    resample,
)


def test_stratified_resamples_keep_each_class_count():
    strata = np.array([0] * 30 + [1] * 70)
    draws = resample(100, strata=strata, resamples=50, seed=1)
    assert draws.shape == (50, 100)
    assert all((strata[row] == 0).sum() == 30 for row in draws)


def test_the_interval_of_an_accuracy_covers_its_binomial_spread():
    correct = np.r_[np.ones(700), np.zeros(300)]  # accuracy 0.7 on 1,000 items: sd sqrt(.21 / 1000) = 0.0145
    low, high = bootstrap_ci(mean_of(correct), len(correct), seed=0)
    assert low < 0.7 < high
    assert high - low == pytest.approx(2 * 1.96 * 0.0145, rel=0.15)


def test_mcnemar_known_answers():
    a = np.ones(10, bool)
    assert mcnemar(a, ~a) == pytest.approx(2 * 0.5**10)  # ten discordant pairs, all one way
    assert mcnemar(a, a) == 1.0  # no discordant pair: nothing to tell


def test_a_difference_within_the_noise_is_worded_as_none_and_one_beyond_it_as_a_difference():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    noisy = np.where(rng.random(400) < 0.75, y, 1 - y)  # 75 % right
    close = np.where(rng.random(400) < 0.76, y, 1 - y)  # 76 %: a point apart on 400 items is noise
    good = np.where(rng.random(400) < 0.95, y, 1 - y)  # 95 %
    acc = {name: mean_of(p == y) for name, p in (("A", noisy), ("B", close), ("C", good))}
    within = compare(
        "A",
        "B",
        acc["A"],
        acc["B"],
        400,
        what="accuracy",
        items="test items",
        strata=y,
        correct=(noisy == y, close == y),
    )
    assert not within.differs and "no difference this test set can tell" in within.sentence()
    assert "paired bootstrap over the 400 test items" in within.sentence() and "McNemar" in within.sentence()
    beyond = compare(
        "C",
        "A",
        acc["C"],
        acc["A"],
        400,
        what="accuracy",
        items="test items",
        strata=y,
        correct=(good == y, noisy == y),
    )
    assert beyond.differs and beyond.low > 0 and beyond.p_mcnemar < 1e-6
    assert beyond.sentence().startswith("C is better than A (accuracy difference C minus A +0.2")
    flipped = compare("A", "C", acc["A"], acc["C"], 400, what="accuracy", items="x").sentence()
    assert flipped.startswith("C is better than A (accuracy difference C minus A +0.2")  # winner minus loser
    assert compare("A", "C", acc["A"], acc["C"], 400, what="accuracy", items="x").sentence().startswith("C is better")


def test_lower_is_better_for_losses():
    c = compare("a", "b", mean_of(np.full(50, 10.0)), mean_of(np.full(50, 12.0)), 50, what="nats", items="images")
    assert c.difference == -2.0 and c.differs
    assert c.sentence(higher_is_better=False).startswith("a is better than b")


def test_balanced_accuracy_is_the_mean_recall_and_vectorised_equals_one_by_one():
    from sklearn.metrics import balanced_accuracy_score

    y = np.array([0, 0, 0, 1])
    assert on_test_set(balanced_accuracy_of(y, np.zeros(4)), 4) == 0.5
    assert on_test_set(balanced_accuracy_of(y, y), 4) == 1.0
    rng = np.random.default_rng(3)
    y, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    rows = resample(200, strata=y, resamples=20, seed=0)
    one_by_one = per_resample(lambda r: balanced_accuracy_score(y[r], pred[r]))(rows)
    assert np.allclose(balanced_accuracy_of(y, pred)(rows), one_by_one)
