"""Dimension reduction steps with one scikit-learn interface, chained in any order.

A chain is written 'method:dim' steps joined by '>', e.g. 'kpca:200>tsne:2' (HW9's baseline recipe:
kernel PCA to 200, then t-SNE to 2). Methods: pca, kpca (rbf), tsne (openTSNE), umap; 'l2' scales
each row to unit length (for contrastive features, whose angles carry the meaning); 'none' is the
identity. Every step has fit / transform / fit_transform; for t-SNE and UMAP, fit_transform returns
the optimised embedding and transform places new points into it.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA, KernelPCA

from dlstudy.errors import InputError

METHODS = ("none", "l2", "pca", "kpca", "tsne", "umap")


class OpenTSNE(TransformerMixin, BaseEstimator):
    """openTSNE's FFT-accelerated t-SNE behind scikit-learn's interface."""

    def __init__(self, n_components: int = 2, *, perplexity: float = 30.0, random_state: int = 0, n_jobs: int = 1):
        self.n_components = n_components
        self.perplexity = perplexity
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y=None):
        from openTSNE import TSNE

        # FFT gradients exist for 1-2 dimensions only; Barnes-Hut covers 3.
        method = "fft" if self.n_components <= 2 else "bh"
        perplexity = min(self.perplexity, max((len(X) - 1) / 3.0, 1.0))
        self.embedding_ = TSNE(
            n_components=self.n_components,
            perplexity=perplexity,
            negative_gradient_method=method,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            verbose=False,
        ).fit(np.asarray(X, np.float64))
        return self

    def fit_transform(self, X, y=None):
        return np.asarray(self.fit(X).embedding_)

    def transform(self, X):
        return np.asarray(self.embedding_.transform(np.asarray(X, np.float64)))


class SubsampledKernelPCA(TransformerMixin, BaseEstimator):
    """RBF kernel PCA fitted on at most `max_fit_samples` rows (the kernel matrix is n x n), with
    gamma = 1 / (n_features * X.var()) so the kernel's width follows the data's scale."""

    def __init__(self, n_components: int = 200, *, max_fit_samples: int = 4000, random_state: int = 0):
        self.n_components = n_components
        self.max_fit_samples = max_fit_samples
        self.random_state = random_state

    def fit(self, X, y=None):
        X = np.asarray(X, np.float64)
        rng = np.random.default_rng(self.random_state)
        fit_rows = X if len(X) <= self.max_fit_samples else X[rng.choice(len(X), self.max_fit_samples, replace=False)]
        gamma = 1.0 / (X.shape[1] * max(float(fit_rows.var()), 1e-12))
        n = min(self.n_components, len(fit_rows) - 1)
        self.kpca_ = KernelPCA(
            n, kernel="rbf", gamma=gamma, eigen_solver="randomized", random_state=self.random_state
        ).fit(fit_rows)
        return self

    def transform(self, X):
        return self.kpca_.transform(np.asarray(X, np.float64))


class Identity(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X)


def parse_chain(text: str) -> list[tuple[str, int]]:
    """'kpca:200>tsne:2' -> [('kpca', 200), ('tsne', 2)]; 'l2>pca:32' -> [('l2', 0), ('pca', 32)]; 'none' -> []."""
    steps = []
    for part in str(text).split(">"):
        method, _, dim = part.strip().partition(":")
        if method == "none" and not dim:
            continue
        if method == "l2":
            if dim:
                raise InputError(f"reduction '{text}': 'l2' takes no dimension; write 'l2>pca:{dim}' to reduce too")
            steps.append(("l2", 0))
            continue
        if method not in METHODS[1:]:
            raise InputError(f"reduction '{text}': unknown method '{method}' (use {', '.join(METHODS)})")
        try:
            d = int(dim)
        except ValueError:
            d = 0
        if d < 1:
            raise InputError(
                f"reduction '{text}': write each step as method:dimension with a positive dimension, e.g. pca:32"
            )
        if method == "tsne" and d > 3:
            raise InputError(f"reduction '{text}': t-SNE embeds in 1 to 3 dimensions; reduce with pca or umap first")
        steps.append((method, d))
    return steps


def make_step(
    method: str,
    dim: int,
    *,
    n_features: int,
    n_samples: int,
    seed: int = 0,
    n_jobs: int = 1,
    kpca_fit_samples: int = 4000,
) -> TransformerMixin:
    if method == "pca":
        return PCA(min(dim, n_features, n_samples), random_state=seed)
    if method == "kpca":
        return SubsampledKernelPCA(dim, max_fit_samples=kpca_fit_samples, random_state=seed)
    if method == "tsne":
        return OpenTSNE(dim, random_state=seed, n_jobs=n_jobs)
    if method == "umap":
        import umap

        return umap.UMAP(n_components=dim, random_state=seed, n_jobs=1)
    if method == "l2":
        from sklearn.preprocessing import Normalizer

        return Normalizer()
    if method == "none":
        return Identity()
    raise InputError(f"unknown reduction method '{method}'")


def reduce_chains(
    X: np.ndarray, chains: list[str], *, seed: int = 0, n_jobs: int = 1, kpca_fit_samples: int = 4000
) -> dict[str, np.ndarray]:
    """Fit every chain on X; chains that share a prefix ('kpca:200' and 'kpca:200>tsne:2') fit it once."""
    cache: dict[tuple, np.ndarray] = {(): np.asarray(X, np.float32)}
    out = {}
    for chain in chains:
        steps = parse_chain(chain)
        for i in range(1, len(steps) + 1):
            key = tuple(steps[:i])
            if key not in cache:
                prev = cache[key[:-1]]
                method, dim = steps[i - 1]
                step = make_step(
                    method,
                    dim,
                    n_features=prev.shape[1],
                    n_samples=len(prev),
                    seed=seed,
                    n_jobs=n_jobs,
                    kpca_fit_samples=kpca_fit_samples,
                )
                cache[key] = np.asarray(step.fit_transform(prev), np.float32)
        out[chain] = cache[tuple(steps)]
    return out


def two_d_views(z: np.ndarray, maps: dict[str, np.ndarray], *, points: int, seed: int) -> tuple[np.ndarray, dict]:
    """The features in 2-D for a figure: PCA, and every 2-D chain already computed (t-SNE, UMAP),
    on one fixed random subset of `points` images. Returns (the subset's indices, title -> (n, 2))."""
    shown = np.sort(np.random.default_rng(seed).choice(len(z), min(len(z), points), replace=False))
    views = {"PCA": PCA(2, random_state=seed).fit_transform(z)[shown]}
    views.update({chain: xy[shown] for chain, xy in maps.items()})
    return shown, views
