"""Clustering metrics: accuracy under the best one-to-one matching of clusters to labels
(Hungarian), NMI, ARI, and the course leaderboard's public / private halves."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

LEADERBOARD_SEED = 20200514  # fixed, so the halves are the same in every run and with every --seed


def best_matching(labels: np.ndarray, clusters: np.ndarray) -> dict[int, int]:
    """cluster -> label maximising agreement; clusters left unmatched (K > classes) map to -1."""
    label_values, label_idx = np.unique(labels, return_inverse=True)
    cluster_values, cluster_idx = np.unique(clusters, return_inverse=True)
    table = contingency_matrix(label_idx, cluster_idx)  # (labels, clusters)
    rows, cols = linear_sum_assignment(table, maximize=True)
    mapping = {int(c): -1 for c in cluster_values}
    mapping.update({int(cluster_values[c]): int(label_values[r]) for r, c in zip(rows, cols)})
    return mapping


def apply_matching(clusters: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    return np.array([mapping.get(int(c), -1) for c in clusters], dtype=np.int64)


def cluster_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    mapping = best_matching(labels, clusters)
    return float(np.mean(apply_matching(clusters, mapping) == labels))


def leaderboard_halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two fixed halves of the labelled images: (public indices, private indices)."""
    order = np.random.default_rng(LEADERBOARD_SEED).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def clustering_scores(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    """accuracy (matching on all labelled images), public accuracy (matching on the public half) and
    private accuracy (the public half's matching applied to the private half, so nothing is tuned on
    it), NMI and ARI. Images labelled -1 are clustered but not scored."""
    known = labels >= 0
    labels, clusters = labels[known], clusters[known]
    public, private = leaderboard_halves(len(labels))
    mapping = best_matching(labels[public], clusters[public])
    predicted = apply_matching(clusters, mapping)
    return {
        "accuracy": cluster_accuracy(labels, clusters),
        "public_accuracy": float(np.mean(predicted[public] == labels[public])),
        "private_accuracy": float(np.mean(predicted[private] == labels[private])),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
        "n_labelled": int(known.sum()),
    }


def private_correct(labels: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The private half's labels, and whether each of its images lands in the cluster the public half matched
    to its label: the per-image right or wrong behind private accuracy (for intervals and paired tests)."""
    known = labels >= 0
    labels, clusters = labels[known], clusters[known]
    public, private = leaderboard_halves(len(labels))
    predicted = apply_matching(clusters[private], best_matching(labels[public], clusters[public]))
    return labels[private], predicted == labels[private]


def class_recall(labels: np.ndarray, clusters: np.ndarray) -> dict[int, dict]:
    """Per label: the share of its images in the cluster matched to it, and how many clusters hold at
    least 10 % of it (how far the class is spread)."""
    predicted = apply_matching(clusters, best_matching(labels, clusters))
    out = {}
    for c in np.unique(labels):
        mine = labels == c
        _, counts = np.unique(clusters[mine], return_counts=True)
        out[int(c)] = {
            "recall": float(np.mean(predicted[mine] == c)),
            "clusters": int((counts >= 0.1 * mine.sum()).sum()),
        }
    return out


def map_agreement(xy: np.ndarray, labels: np.ndarray, k: int = 10) -> dict:
    """How well a 2-D map keeps labels apart: the share of each point's k nearest neighbours in the map
    with its label (overall and per label), and the pair of labels most often neighbours."""
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy, return_distance=False)[:, 1:]
    same = labels[idx] == labels[:, None]
    per = {int(c): float(same[labels == c].mean()) for c in np.unique(labels)}
    values = np.unique(labels)
    mixed = np.zeros((len(values), len(values)))
    pos = {int(v): i for i, v in enumerate(values)}
    for a, row in zip(labels, labels[idx]):
        for b in row:
            mixed[pos[int(a)], pos[int(b)]] += 1
    mixed = mixed + mixed.T
    np.fill_diagonal(mixed, 0)
    i, j = np.unravel_index(np.argmax(mixed), mixed.shape)
    return {"overall": float(same.mean()), "per_label": per, "closest_pair": (int(values[i]), int(values[j]))}
