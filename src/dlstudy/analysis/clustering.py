"""Clustering estimators by name, all with scikit-learn's fit_predict; 'scan' takes its settings as a dict
of SCAN's keyword arguments."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans, MiniBatchKMeans
from sklearn.mixture import GaussianMixture

from dlstudy.errors import InputError

METHODS = ("kmeans", "minibatch-kmeans", "gmm", "agglomerative", "scan")


def make_clusterer(method: str, n_clusters: int, *, seed: int = 0, n_init: int = 4, scan: dict | None = None):
    if method == "kmeans":
        return KMeans(n_clusters, n_init=n_init, random_state=seed)
    if method == "minibatch-kmeans":
        return MiniBatchKMeans(n_clusters, n_init=n_init, random_state=seed, batch_size=1024)
    if method == "gmm":
        return GaussianMixture(n_clusters, covariance_type="diag", n_init=max(1, n_init // 2), random_state=seed)
    if method == "agglomerative":
        return AgglomerativeClustering(n_clusters, linkage="ward")
    if method == "scan":
        from dlstudy.analysis.scan import SCAN

        return SCAN(n_clusters, seed=seed, **(scan or {}))
    raise InputError(f"unknown clustering method '{method}' (use {', '.join(METHODS)})")


def cluster(
    features: np.ndarray, method: str, n_clusters: int, *, seed: int = 0, n_init: int = 4, scan: dict | None = None
) -> np.ndarray:
    """Cluster index per row (N,) int64."""
    if n_clusters > len(features):
        raise InputError(f"--clusters {n_clusters} is larger than the number of images ({len(features)})")
    return np.asarray(
        make_clusterer(method, n_clusters, seed=seed, n_init=n_init, scan=scan).fit_predict(features), np.int64
    )


def assign_new(train_features: np.ndarray, train_clusters: np.ndarray, features: np.ndarray, k: int = 10) -> np.ndarray:
    """Clusters for new images: a vote among the k nearest training features (t-SNE and kernel PCA
    chains have no exact out-of-sample map)."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_features))).fit(train_features, train_clusters)
    return knn.predict(features)


def id_label_csv(clusters: np.ndarray) -> bytes:
    """The course leaderboard's submission format."""
    return ("id,label\n" + "".join(f"{i},{c}\n" for i, c in enumerate(clusters))).encode()
