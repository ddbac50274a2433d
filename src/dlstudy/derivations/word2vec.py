"""Skip-gram with a full softmax. For a centre word (one-hot x) and context words c_1..c_C:

h = W^T x,  u = W'^T h,  y = softmax(u),  L = -sum_c log y_c
e = sum_c (y - t_c) = C y - sum_c t_c          (t_c: one-hot of context word c)
dL/dW' = h e^T,   dL/dh = W' e,   dL/dW = x (W' e)^T   (only the centre word's row is non-zero)
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from pydantic import Field

from dlstudy.config import Schema, key
from dlstudy.derivations import Derivation, fmt
from dlstudy.errors import InputError


class Params(Schema):
    """One skip-gram step on a tiny vocabulary."""

    vocab: Annotated[int, Field(ge=2, le=10_000)] = key(8, "words in the vocabulary")
    dim: Annotated[int, Field(ge=1, le=10_000)] = key(3, "the embedding's dimension")
    center: Annotated[int, Field(ge=0)] = key(2, "the centre word's index")
    context: list[Annotated[int, Field(ge=0)]] = key([1, 3, 5], "the context words' indices", min_length=1)


def derive(p: Params, seed: int = 0) -> Derivation:
    d = Derivation("word2vec", "Skip-gram gradients with a full softmax")
    V, N = int(p.vocab), int(p.dim)
    center, context = int(p.center), [int(c) for c in p.context]
    if not 0 <= center < V or not context or any(not 0 <= c < V for c in context):
        raise InputError(f"word2vec: center and context words must be indices in 0..{V - 1}, and context non-empty")
    rng = np.random.default_rng(seed)
    W, W2 = rng.normal(0, 0.5, (V, N)), rng.normal(0, 0.5, (N, V))  # W: input vectors, W': output vectors
    x = np.eye(V)[center]
    h = W.T @ x
    u = W2.T @ h
    y = np.exp(u - u.max())
    y /= y.sum()
    loss = -np.sum(np.log(y[context]))
    e = len(context) * y - np.eye(V)[context].sum(0)
    dW2 = np.outer(h, e)
    dh = W2 @ e
    dW = np.outer(x, dh)
    d.step(f"V={V} words, N={N} dimensions; centre word {center}, context {context}")
    d.step(f"h = W^T x = row {center} of W = {fmt(h)}")
    d.step(f"u = W'^T h = {fmt(u)}\ny = softmax(u) = {fmt(y)}\nL = -sum_c log y_c = {loss:.6f}")
    d.step(f"e = C y - sum_c t_c = {fmt(e)}")
    d.step(f"dL/dW' = h e^T:\n{fmt(dW2)}")
    d.step(f"dL/dW = x (W' e)^T: only row {center} is non-zero, = {fmt(dh)}")
    Wt, W2t = torch.tensor(W, requires_grad=True), torch.tensor(W2, requires_grad=True)
    ut = W2t.T @ (Wt.T @ torch.tensor(x))
    lt = -torch.log_softmax(ut, 0)[context].sum()
    lt.backward()
    d.check("loss against torch", loss, lt.item(), 1e-12)
    d.check("dL/dW' against autograd", dW2, W2t.grad.numpy(), 1e-12)
    d.check("dL/dW against autograd", dW, Wt.grad.numpy(), 1e-12)
    d.results = {"loss": float(loss), "dW_center_row": dh.tolist(), "dW_out": dW2.tolist()}
    d.answer = (
        f"With e = C softmax(u) - sum of the context one-hots, dL/dW' = h e^T and dL/dW = x (W' e)^T, so only "
        f"the centre word's input row moves; here L = {loss:.4f} and that row's gradient has norm "
        f"{np.linalg.norm(dh):.4f}; {d.agreement()}."
    )
    return d
