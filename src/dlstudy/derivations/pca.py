"""PCA on centred data: the top-k eigenvectors of the covariance maximise the projected variance,
and the mean squared reconstruction error equals the sum of the discarded eigenvalues."""
from __future__ import annotations

import numpy as np

from dlstudy.derivations import Derivation
from dlstudy.errors import InputError

DEFAULTS = {"k": 10, "random_projections": 200}


def derive(p: dict, seed: int = 0) -> Derivation:
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    d = Derivation("pca", "PCA: variance, reconstruction error and eigenvalues")
    X = load_digits().data.astype(np.float64)  # (1797, 64), ships with scikit-learn
    n, dim = X.shape
    k = int(p["k"])
    if not 1 <= k < dim:
        raise InputError(f"pca.k must be between 1 and {dim - 1}, got {k}")
    Xc = X - X.mean(0)
    cov = Xc.T @ Xc / n  # (D, D), biased: the mean squared error below uses the same 1/n
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = eigval[order], eigvec[:, order]
    U = eigvec[:, :k]  # (D, k)
    projected_var = np.sum((Xc @ U) ** 2) / n
    recon_err = np.sum((Xc - Xc @ U @ U.T) ** 2) / n
    d.step(f"digits: n={n} images of D={dim} pixels, centred; covariance S = Xc^T Xc / n")
    d.step(f"eigenvalues of S (largest 12): {np.round(eigval[:12], 2).tolist()}")
    d.step(f"projected variance onto the top {k} eigenvectors = sum of top-{k} eigenvalues = {projected_var:.4f} "
           f"(eigenvalue sum {eigval[:k].sum():.4f})")
    d.step(f"mean squared reconstruction error = {recon_err:.4f} = sum of the {dim - k} discarded eigenvalues "
           f"{eigval[k:].sum():.4f}; the two always add to the total variance {np.trace(cov):.4f}")
    d.check("projected variance = sum of top-k eigenvalues", projected_var, eigval[:k].sum(), 1e-10)
    d.check("reconstruction error = sum of discarded eigenvalues", recon_err, eigval[k:].sum(), 1e-10)

    rng = np.random.default_rng(seed)
    best_random_var, worst_gap = -np.inf, np.inf
    for _ in range(int(p["random_projections"])):
        Q, _ = np.linalg.qr(rng.normal(size=(dim, k)))  # a random orthonormal basis
        v = np.sum((Xc @ Q) ** 2) / n
        best_random_var = max(best_random_var, v)
        worst_gap = min(worst_gap, np.sum((Xc - Xc @ Q @ Q.T) ** 2) / n - recon_err)
    d.step(f"{p['random_projections']} random orthonormal {k}-d projections: best projected variance "
           f"{best_random_var:.4f} < {projected_var:.4f}; smallest excess reconstruction error {worst_gap:.4f} > 0")
    d.require("no random projection keeps more variance", best_random_var <= projected_var)
    d.require("no random projection reconstructs better", worst_gap >= 0)

    sk = PCA(k).fit(X)
    # scikit-learn's variance uses 1/(n - 1); components agree up to sign
    d.check("eigenvalues against scikit-learn", eigval[:k] * n / (n - 1), sk.explained_variance_, 1e-10)
    alignment = np.abs(np.sum(U * sk.components_.T, axis=0))
    d.check("eigenvectors against scikit-learn (up to sign)", alignment, np.ones(k), 1e-8)
    d.tables.append(("Top eigenvalues", [{"component": i + 1, "eigenvalue": eigval[i],
                                          "explained variance ratio": eigval[i] / eigval.sum(),
                                          "cumulative": eigval[: i + 1].sum() / eigval.sum()} for i in range(k)]))
    d.results = {"eigenvalues": eigval[:k].tolist(), "projected_variance": projected_var,
                 "reconstruction_error": recon_err, "best_random_variance": best_random_var}
    return d
