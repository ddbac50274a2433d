"""PCA on centred data: the top-k eigenvectors of the covariance maximise the projected variance,
and the mean squared reconstruction error equals the sum of the discarded eigenvalues."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from dlstudy.config import Count, Schema, key
from dlstudy.derivations import Derivation
from dlstudy.errors import InputError


class Params(Schema):
    """PCA on the digits, against random projections."""

    k: Annotated[int, Field(ge=1, le=64)] = key(10, "principal components kept")
    random_projections: Count = key(200, "random k-dimensional projections compared with PCA's")


def derive(p: Params, seed: int = 0) -> Derivation:
    from sklearn.datasets import load_digits

    d = Derivation("pca", "PCA: variance, reconstruction error and eigenvalues")
    X = load_digits().data.astype(np.float64)  # (1797, 64), ships with scikit-learn
    n, dim = X.shape
    k = int(p.k)
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
    d.step(
        "the derivation: the variance of the projection onto a unit vector u is (1/n) sum (u^T x_i)^2 = u^T S u;\n"
        "  maximise u^T S u subject to u^T u = 1 with the Lagrangian  L(u, lambda) = u^T S u - lambda (u^T u - 1);\n"
        "  dL/du = 2 S u - 2 lambda u = 0  =>  S u = lambda u: u is an eigenvector of S;\n"
        "  its variance is u^T S u = lambda u^T u = lambda, so the best u has the largest eigenvalue;\n"
        "  each further direction, also orthogonal to the ones before, is the next eigenvector."
    )
    d.step(f"eigenvalues of S (largest 12): {np.round(eigval[:12], 2).tolist()}")
    d.step(
        f"projected variance onto the top {k} eigenvectors = sum of top-{k} eigenvalues = {projected_var:.4f} "
        f"(eigenvalue sum {eigval[:k].sum():.4f})"
    )
    d.step(
        f"mean squared reconstruction error = {recon_err:.4f} = sum of the {dim - k} discarded eigenvalues "
        f"{eigval[k:].sum():.4f}; the two always add to the total variance {np.trace(cov):.4f}"
    )
    stationary_point(d, cov, eigval[0], eigvec[:, 0])
    d.check("projected variance = sum of top-k eigenvalues", projected_var, eigval[:k].sum(), 1e-10)
    d.check("reconstruction error = sum of discarded eigenvalues", recon_err, eigval[k:].sum(), 1e-10)

    best_random_var = random_projections(
        d, Xc, k=k, count=int(p.random_projections), seed=seed, best_var=projected_var, best_err=recon_err
    )

    against_sklearn(d, X, eigval, U)
    d.results = {
        "eigenvalues": eigval[:k].tolist(),
        "projected_variance": projected_var,
        "reconstruction_error": recon_err,
        "best_random_variance": best_random_var,
    }
    total = float(np.trace(cov))
    d.answer = (
        f"Maximising u^T S u under u^T u = 1 gives S u = lambda u, so the top {k} eigenvectors keep variance "
        f"{projected_var:.2f} of {total:.2f} ({projected_var / total:.0%}) on the digits, and the discarded "
        f"{total - projected_var:.2f} is exactly the reconstruction error; the best of "
        f"{p.random_projections} random projections keeps only {best_random_var:.2f}; {d.agreement()}."
    )
    return d


def against_sklearn(d: Derivation, X: np.ndarray, eigval: np.ndarray, U: np.ndarray) -> None:
    """The top-k eigenvectors U (D, k) and the eigenvalues (all D, largest first) checked against scikit-learn's
    PCA, and the table of the top k."""
    from sklearn.decomposition import PCA

    n, k, total = len(X), U.shape[1], eigval.sum()
    sk = PCA(k).fit(X)
    # scikit-learn's variance uses 1/(n - 1); components agree up to sign
    d.check("eigenvalues against scikit-learn", eigval[:k] * n / (n - 1), sk.explained_variance_, 1e-10)
    alignment = np.abs(np.sum(U * sk.components_.T, axis=0))
    d.check("eigenvectors against scikit-learn (up to sign)", alignment, np.ones(k), 1e-8)
    rows = [
        {
            "component": i + 1,
            "eigenvalue": eigval[i],
            "explained variance ratio": eigval[i] / total,
            "cumulative": eigval[: i + 1].sum() / total,
        }
        for i in range(k)
    ]
    d.tables.append(("Top eigenvalues", rows))


def random_projections(
    d: Derivation, Xc: np.ndarray, *, k: int, count: int, seed: int, best_var: float, best_err: float
) -> float:
    """The claim checked from the other side: no random orthonormal k-d basis keeps more variance or
    reconstructs better than the top-k eigenvectors. Returns the best random variance."""
    n, dim = Xc.shape
    rng = np.random.default_rng(seed)
    best_random_var, worst_gap = -np.inf, np.inf
    for _ in range(count):
        Q, _ = np.linalg.qr(rng.normal(size=(dim, k)))  # a random orthonormal basis
        best_random_var = max(best_random_var, np.sum((Xc @ Q) ** 2) / n)
        worst_gap = min(worst_gap, np.sum((Xc - Xc @ Q @ Q.T) ** 2) / n - best_err)
    d.step(
        f"{count} random orthonormal {k}-d projections: best projected variance {best_random_var:.4f} < "
        f"{best_var:.4f}; smallest excess reconstruction error {worst_gap:.4f} > 0"
    )
    d.require("no random projection keeps more variance", best_random_var <= best_var)
    d.require("no random projection reconstructs better", worst_gap >= 0)
    return float(best_random_var)


def stationary_point(d: Derivation, cov: np.ndarray, lam: float, u1: np.ndarray) -> None:
    """The Lagrangian's gradient by autograd at the top eigenvector: zero, so it is a stationary point."""
    import torch

    u = torch.tensor(u1, requires_grad=True)
    lagrangian = u @ torch.tensor(cov) @ u - float(lam) * (u @ u - 1)
    lagrangian.backward()
    d.step(
        f"at the top eigenvector (lambda_1 = {lam:.4f}) autograd's dL/du has norm {float(u.grad.norm()):.1e}: "
        "a stationary point, and u^T S u = lambda_1"
    )
    d.check("dL/du = 0 at the top eigenvector (autograd)", u.grad.numpy(), np.zeros(len(u1)), 1e-9)
    d.check("u^T S u = lambda_1", float(u1 @ cov @ u1), float(lam), 1e-10)
