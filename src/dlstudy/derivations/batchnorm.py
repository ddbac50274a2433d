"""Batch normalisation over a mini-batch (N, D), forward and backward by hand.

mu = mean(x), var = mean((x - mu)^2), x_hat = (x - mu) / sqrt(var + eps), y = gamma x_hat + beta
dl/dx_hat = dl/dy * gamma
dl/dvar   = sum(dl/dx_hat * (x - mu)) * -1/2 (var + eps)^(-3/2)
dl/dmu    = sum(dl/dx_hat) * -1/sqrt(var + eps) + dl/dvar * mean(-2 (x - mu))
dl/dx     = dl/dx_hat / sqrt(var + eps) + dl/dvar * 2 (x - mu) / N + dl/dmu / N
dl/dgamma = sum(dl/dy * x_hat),  dl/dbeta = sum(dl/dy)
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from dlstudy.config import Positive, Schema, key
from dlstudy.derivations import Derivation, fmt


class Params(Schema):
    """Batch norm over a random batch."""

    batch: Annotated[int, Field(ge=2, le=10_000)] = key(6, "rows in the batch (two at least: a variance needs them)")
    features: Annotated[int, Field(ge=1, le=10_000)] = key(3, "features per row")
    eps: Positive = key(1e-5, "added to the variance before the square root")


def forward(x, gamma, beta, eps):
    mu = x.mean(0)
    var = ((x - mu) ** 2).mean(0)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (mu, var, x_hat)


def backward(dy, x, gamma, eps, cache):
    mu, var, x_hat = cache
    n = len(x)
    dx_hat = dy * gamma
    dvar = np.sum(dx_hat * (x - mu), 0) * -0.5 * (var + eps) ** -1.5
    dmu = np.sum(dx_hat, 0) * -1 / np.sqrt(var + eps) + dvar * np.mean(-2 * (x - mu), 0)
    dx = dx_hat / np.sqrt(var + eps) + dvar * 2 * (x - mu) / n + dmu / n
    return {
        "dx_hat": dx_hat,
        "dvar": dvar,
        "dmu": dmu,
        "dx": dx,
        "dgamma": np.sum(dy * x_hat, 0),
        "dbeta": np.sum(dy, 0),
    }


def derive(p: Params, seed: int = 0) -> Derivation:
    d = Derivation("batchnorm", "Batch normalisation: forward and backward")
    rng = np.random.default_rng(seed)
    n, k, eps = int(p.batch), int(p.features), float(p.eps)
    x = rng.normal(2.0, 3.0, (n, k))
    gamma, beta = rng.normal(1.0, 0.5, k), rng.normal(0.0, 0.5, k)
    dy = rng.normal(size=(n, k))  # the upstream gradient dl/dy of some loss l
    y, cache = forward(x, gamma, beta, eps)
    mu, var, x_hat = cache
    g = backward(dy, x, gamma, eps, cache)
    d.step(
        "forward, per feature over the batch of N rows:\n  mu = (1/N) sum_i x_i\n  var = (1/N) sum_i (x_i - mu)^2\n"
        "  x_hat_i = (x_i - mu) / sqrt(var + eps)\n  y_i = gamma x_hat_i + beta"
    )
    d.step(
        "backward, from the upstream gradient dl/dy that the layer above hands down:\n"
        "  dl/dx_hat = dl/dy * gamma\n  dl/dvar = sum_i dl/dx_hat_i (x_i - mu) * -1/2 (var + eps)^(-3/2)\n"
        "  dl/dmu = sum_i dl/dx_hat_i * -1/sqrt(var + eps) + dl/dvar * (1/N) sum_i -2 (x_i - mu)\n"
        "  dl/dx_i = dl/dx_hat_i / sqrt(var + eps) + dl/dvar * 2 (x_i - mu) / N + dl/dmu / N\n"
        "  dl/dgamma = sum_i dl/dy_i x_hat_i ;  dl/dbeta = sum_i dl/dy_i"
    )
    d.step(f"x (N={n}, D={k}), eps = {eps:g}:\n{fmt(x)}")
    d.step(f"mu = {fmt(mu)}   var = {fmt(var)}   (biased, over the batch)")
    d.step(f"x_hat:\n{fmt(x_hat)}\ny = gamma*x_hat + beta with gamma = {fmt(gamma)}, beta = {fmt(beta)}:\n{fmt(y)}")
    d.step(f"upstream gradient dl/dy (random, as if from some loss above):\n{fmt(dy)}")
    for name in ("dvar", "dmu", "dgamma", "dbeta"):
        d.step(f"dl/d{name[1:]} = {fmt(g[name])}")
    d.step(f"dl/dx:\n{fmt(g['dx'])}")

    # autograd through torch's own batch norm (training mode), float64
    xt = torch.tensor(x, requires_grad=True)
    gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    yt = F.batch_norm(xt, None, None, gt, bt, training=True, eps=eps)
    yt.backward(torch.tensor(dy))
    d.check("y against F.batch_norm", y, yt.detach().numpy(), 1e-12)
    d.check("dl/dx against autograd", g["dx"], xt.grad.numpy(), 1e-9)
    d.check("dl/dgamma against autograd", g["dgamma"], gt.grad.numpy(), 1e-10)
    d.check("dl/dbeta against autograd", g["dbeta"], bt.grad.numpy(), 1e-12)
    # the intermediate gradients: mu and var as leaves of the written-out graph. dl/dmu's path through
    # var is mean(-2 (x - mu)) = 0, so autograd's direct path must match the full hand formula.
    xt2 = torch.tensor(x)
    mu_t = xt2.mean(0).requires_grad_()
    var_t = ((xt2 - mu_t.detach()) ** 2).mean(0).requires_grad_()
    x_hat_t = (xt2 - mu_t) / torch.sqrt(var_t + eps)
    x_hat_t.retain_grad()
    (torch.tensor(gamma) * x_hat_t + torch.tensor(beta)).backward(torch.tensor(dy))
    d.check("dl/dx_hat against autograd", g["dx_hat"], x_hat_t.grad.numpy(), 1e-12)
    d.check("dl/dvar against autograd", g["dvar"], var_t.grad.numpy(), 1e-10)
    d.check("dl/dmu against autograd", g["dmu"], mu_t.grad.numpy(), 1e-9)
    d.results = {k: v.tolist() for k, v in g.items()}
    d.answer = (
        f"Forward: x_hat has mean {np.abs(x_hat.mean(0)).max():.1e} and variance "
        f"{x_hat.var(0).min():.4f}-{x_hat.var(0).max():.4f} per feature before gamma and beta; backward: "
        f"dl/dx sums to {np.abs(g['dx'].sum(0)).max():.1e} per feature (the mean's gradient cancels), "
        f"dl/dbeta = sum of dl/dy and dl/dgamma = sum of dl/dy * x_hat; {d.agreement()}."
    )
    return d
