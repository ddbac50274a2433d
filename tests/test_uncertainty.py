"""Intervals and paired comparisons on hand-made per-item results: known answers, and words that follow them."""

import numpy as np
import pytest
from scipy.stats import t

from dlstudy.analysis.uncertainty import (
    Items,
    balanced_accuracy_of,
    bootstrap_ci,
    bootstrap_p,
    clustered,
    compare,
    holm,
    mean_of,
    on_test_set,
    over_seeds,
    per_resample,
    seeds_test,
    unpaired,
)


def test_weights_draw_n_items_and_strata_keep_each_class_count():
    strata = np.array([0] * 30 + [1] * 70)
    w = Items(n=100).weights(strata=strata, resamples=50, seed=1)
    assert w.shape == (50, 100) and (w.sum(1) == 100).all()
    assert (w[:, :30].sum(1) == 30).all() and (w[:, 30:].sum(1) == 70).all()
    plain = Items(n=100).weights(resamples=200, seed=1)
    assert plain.sum(1).tolist() == [100] * 200 and plain[:, :30].sum(1).std() > 0  # class shares vary


def test_clustered_items_are_drawn_by_whole_days():
    days = np.repeat(np.array(["2020-03-02", "2020-03-01", "2020-03-03", "2020-03-04"] * 5), 7)  # 20 days of 7
    items = clustered(days, name="test windows", unit="day")
    w = items.weights(resamples=100, seed=0)
    for d in np.unique(items.clusters):
        member = items.clusters == d
        assert (w[:, member] == w[:, member][:, :1]).all()  # a day's windows are drawn together
    assert "on 4 days, drawn by whole days" in items.described


def test_the_interval_of_an_accuracy_covers_its_binomial_spread():
    correct = np.r_[np.ones(700), np.zeros(300)]  # accuracy 0.7 on 1,000 items: sd sqrt(.21 / 1000) = 0.0145
    low, high = bootstrap_ci(mean_of(correct), len(correct), seed=0)
    assert low < 0.7 < high
    assert high - low == pytest.approx(2 * 1.96 * 0.0145, rel=0.15)


def test_a_difference_within_the_noise_is_worded_as_none_and_one_beyond_it_as_a_difference():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    noisy = np.where(rng.random(400) < 0.75, y, 1 - y)  # 75 % right
    close = np.where(rng.random(400) < 0.76, y, 1 - y)  # 76 %: a point apart on 400 items is noise
    good = np.where(rng.random(400) < 0.95, y, 1 - y)  # 95 %
    acc = {name: mean_of(p == y) for name, p in (("A", noisy), ("B", close), ("C", good))}
    within = compare("A", "B", acc["A"], acc["B"], 400, what="accuracy")
    said = within.sentence()
    assert not within.differs and "no difference this test set can tell" in said and "McNemar" not in said
    # 'no difference' says what the test could have seen, so it is not read as 'equal'
    assert f"smaller than about {within.detectable:.3f} would go unseen 80%" in said and within.detectable > 0.02
    beyond = compare("C", "A", acc["C"], acc["A"], 400, what="accuracy")
    assert beyond.differs and beyond.low > 0 and beyond.p < 0.01
    assert beyond.sentence().startswith("C is better than A (accuracy difference C minus A +0.2")
    flipped = compare("A", "C", acc["A"], acc["C"], 400, what="accuracy").sentence()
    assert flipped.startswith("C is better than A (accuracy difference C minus A +0.2")  # winner minus loser


def test_lower_is_better_for_losses():
    rng = np.random.default_rng(0)
    a, b = rng.normal(10, 1, 50), rng.normal(12, 1, 50)
    c = compare("a", "b", mean_of(a), mean_of(b), 50, what="nats")
    assert c.difference == pytest.approx(a.mean() - b.mean()) and c.differs
    assert c.sentence(higher_is_better=False).startswith("a is better than b")


def test_the_bootstrap_p_is_the_percentile_intervals_own_test():
    assert bootstrap_p(np.linspace(0.01, 1, 999)) == pytest.approx(2 / 1000)  # every resample above zero
    assert bootstrap_p(np.linspace(-1, 1, 1001)) == pytest.approx(1.0)
    assert bootstrap_p(np.r_[np.full(40, -1.0), np.full(960, 1.0)]) == pytest.approx(2 * 41 / 1001)


def test_holm_corrects_a_family_as_statsmodels_does_and_decides_by_the_corrected_p():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    right = {k: rng.random(300) < 0.7 for k in "abcd"}
    strong = np.where(rng.random(300) < 0.95, True, right["a"])
    family = {k: compare(k, "a", mean_of(right[k]), mean_of(right["a"]), len(y), what="accuracy") for k in "bcd"}
    family["strong"] = compare("s", "a", mean_of(strong), mean_of(right["a"]), 300, what="accuracy")
    corrected = holm(family)
    ps = sorted(c.p for c in family.values())
    assert min(c.p_adjusted for c in corrected.values()) == pytest.approx(min(1.0, 4 * ps[0]))
    assert all(c.family == 4 and c.p_adjusted >= c.p for c in corrected.values())
    assert corrected["strong"].differs and "after Holm's correction over the report's 4 comparisons" in (
        corrected["strong"].sentence()
    )


def test_two_separate_groups_are_resampled_apart():
    rng = np.random.default_rng(1)
    c = unpaired("x", "y", rng.normal(1.0, 1, 200), rng.normal(0.0, 1, 300), what="mean")
    assert c.differs and c.low > 0.5 and "two separate groups" in c.test


def test_seeds_give_a_t_interval_of_the_mean_and_a_wider_prediction_interval():
    values = [0.70, 0.72, 0.68, 0.71, 0.69]
    s = over_seeds(values)
    q, sd = t.ppf(0.975, 4), np.std(values, ddof=1)
    assert s.mean_high - s.mean == pytest.approx(q * sd / np.sqrt(5))
    assert s.next_high - s.mean == pytest.approx(q * sd * np.sqrt(1 + 1 / 5))
    assert seeds_test([0.02, 0.03, 0.025, 0.028]) < 0.01 and seeds_test([0.02, -0.03, 0.01, -0.01]) > 0.5


def test_balanced_accuracy_is_the_mean_recall_and_vectorised_equals_one_by_one():
    from sklearn.metrics import balanced_accuracy_score

    y = np.array([0, 0, 0, 1])
    assert on_test_set(balanced_accuracy_of(y, np.zeros(4)), 4) == 0.5
    assert on_test_set(balanced_accuracy_of(y, y), 4) == 1.0
    rng = np.random.default_rng(3)
    y, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    w = Items(n=200).weights(strata=y, resamples=20, seed=0)
    one_by_one = per_resample(lambda r: balanced_accuracy_score(y[r], pred[r]))(w)
    assert np.allclose(balanced_accuracy_of(y, pred)(w), one_by_one)
