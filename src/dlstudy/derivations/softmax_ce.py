"""Cross-entropy through softmax, dL/dz = (softmax(z) - y) / N for the batch mean, and the binary
case through a sigmoid, dL/dz = (sigmoid(z) - y) / N."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from dlstudy.config import Schema, key
from dlstudy.derivations import Derivation, fmt


class Params(Schema):
    """Softmax with cross-entropy on random logits."""

    batch: Annotated[int, Field(ge=1, le=10_000)] = key(4, "rows of logits")
    classes: Annotated[int, Field(ge=2, le=10_000)] = key(5, "classes")


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))  # shifting by the max changes nothing but overflow
    return e / e.sum(axis=1, keepdims=True)


def softmax_ce_grad(z, y_onehot):
    return (softmax(z) - y_onehot) / len(z)


def sigmoid_bce_grad(z, y):
    return (1 / (1 + np.exp(-z)) - y) / len(z)


def derive(p: Params, seed: int = 0) -> Derivation:
    d = Derivation("softmax-ce", "Softmax cross-entropy gradient")
    rng = np.random.default_rng(seed)
    n, k = int(p.batch), int(p.classes)
    z = rng.normal(0, 2, (n, k))
    labels = rng.integers(0, k, n)
    y = np.eye(k)[labels]
    d.step("L = -(1/N) sum_n sum_k y_nk log softmax(z_n)_k ;  dL/dz_nj = (1/N)(softmax(z_n)_j - y_nj)")
    d.step("because d log softmax(z)_k / dz_j = [k = j] - softmax(z)_j and sum_k y_k = 1")
    d.step(f"z:\n{fmt(z)}\nlabels = {labels.tolist()}\nsoftmax(z):\n{fmt(softmax(z))}")
    grad = softmax_ce_grad(z, y)
    d.step(f"dL/dz = (softmax(z) - y) / N:\n{fmt(grad)}")
    loss = -np.mean(np.log(softmax(z)[np.arange(n), labels]))
    zt = torch.tensor(z, requires_grad=True)
    lt = F.cross_entropy(zt, torch.tensor(labels))
    lt.backward()
    d.check("loss against F.cross_entropy", loss, lt.item(), 1e-12)
    d.check("dL/dz against autograd", grad, zt.grad.numpy(), 1e-12)

    zb = rng.normal(0, 2, n)
    yb = rng.integers(0, 2, n).astype(np.float64)
    d.step("binary: L = -(1/N) sum y log s(z) + (1 - y) log(1 - s(z)), s = sigmoid ; dL/dz = (s(z) - y) / N")
    gb = sigmoid_bce_grad(zb, yb)
    d.step(f"z = {fmt(zb)}  y = {yb.astype(int).tolist()}  dL/dz = {fmt(gb)}")
    zbt = torch.tensor(zb, requires_grad=True)
    F.binary_cross_entropy_with_logits(zbt, torch.tensor(yb)).backward()
    d.check("binary dL/dz against autograd", gb, zbt.grad.numpy(), 1e-12)
    d.results = {"grad": grad.tolist(), "binary_grad": gb.tolist(), "loss": float(loss)}
    d.answer = (
        f"Softmax with cross-entropy has dL/dz = (softmax(z) - y) / N (sigmoid with binary cross-entropy: "
        f"(s(z) - y) / N); on this batch of {n} the loss is {loss:.4f}, each row of the gradient sums to "
        f"{np.abs(grad.sum(1)).max():.1e} (zero, as it must), and {d.agreement()}."
    )
    return d
