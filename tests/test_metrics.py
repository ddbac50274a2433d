import numpy as np
import pytest

from dlstudy.analysis.clustering import cluster
from dlstudy.analysis.metrics import best_matching, cluster_accuracy, clustering_scores, leaderboard_halves
from dlstudy.errors import InputError


def test_accuracy_is_invariant_to_renaming_clusters():
    y = np.repeat([0, 1, 2], 4)
    assert cluster_accuracy(y, (y + 1) % 3 + 7) == 1.0


def test_known_answer_with_hungarian_matching():
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    c = np.array([1, 1, 0, 0, 0, 2, 2, 2, 2, 1])
    # best one-to-one: 1->0 (2 right), 0->1 (2), 2->2 (3): 7 of 10
    assert cluster_accuracy(y, c) == pytest.approx(0.7)
    assert best_matching(y, c) == {1: 0, 0: 1, 2: 2}


def test_more_clusters_than_labels_leaves_extra_clusters_wrong():
    y = np.array([0, 0, 1, 1])
    assert cluster_accuracy(y, np.array([0, 1, 2, 2])) == pytest.approx(0.75)


def test_leaderboard_halves_are_fixed_disjoint_and_complete():
    pub, priv = leaderboard_halves(101)
    again, _ = leaderboard_halves(101)
    assert np.array_equal(pub, again) and len(pub) == 50
    assert set(pub).isdisjoint(priv) and set(pub) | set(priv) == set(range(101))


def test_private_accuracy_uses_the_public_matching():
    y = np.tile([0, 1], 50)
    scores = clustering_scores(y, y.copy())
    assert scores["public_accuracy"] == scores["private_accuracy"] == scores["nmi"] == scores["ari"] == 1.0


def test_kmeans_finds_separated_blobs_and_rejects_large_k():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 50)
    x = rng.normal(size=(150, 2)) * 0.1 + np.array([[0, 0], [5, 5], [0, 5]])[y]
    for method in ("kmeans", "minibatch-kmeans", "gmm", "agglomerative"):
        assert cluster_accuracy(y, cluster(x, method, 3)) == 1.0
    with pytest.raises(InputError, match="larger than the number"):
        cluster(x, "kmeans", 151)
