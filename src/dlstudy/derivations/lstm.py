"""The LSTM cell of the problem set: identity g and h, sigmoid gates, no recurrent weights.

z = w.x + b,  z_i = w_i.x + b_i,  z_f = w_f.x + b_f,  z_o = w_o.x + b_o
c' = f(z_i) g(z) + c f(z_f),   y = f(z_o) h(c'),   f = sigmoid, g(z) = h(z) = z
"""

from __future__ import annotations

import numpy as np
import torch

from dlstudy.config import Schema, key
from dlstudy.derivations import Derivation
from dlstudy.errors import InputError


class Params(Schema):
    """The problem set's cell and input sequence."""

    w: list[float] = key([0, 0, 0, 1], "the input's weights, one per input feature")
    b: float = key(0.0, "the input's bias")
    w_i: list[float] = key([100, 100, 0, 0], "the input gate's weights")
    b_i: float = key(-10.0, "the input gate's bias")
    w_f: list[float] = key([-100, -100, 0, 0], "the forget gate's weights")
    b_f: float = key(110.0, "the forget gate's bias")
    w_o: list[float] = key([0, 0, 100, 0], "the output gate's weights")
    b_o: float = key(-10.0, "the output gate's bias")
    c0: float = key(0.0, "the memory cell's first value")
    inputs: list[list[float]] = key(
        [
            [0, 1, 0, 3],
            [1, 0, 1, -2],
            [1, 1, 1, 4],
            [0, 1, 1, 0],
            [0, 1, 0, 2],
            [0, 0, 1, -4],
            [1, 1, 1, 1],
            [1, 0, 1, 2],
        ],
        "the input sequence, one vector a step",
        min_length=1,
    )


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _weights(p: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        W = np.array([p.w, p.w_i, p.w_f, p.w_o], np.float64)  # (4 gates, D)
        b = np.array([p.b, p.b_i, p.b_f, p.b_o], np.float64)
        X = np.array(p.inputs, np.float64)  # (T, D)
    except ValueError:
        raise InputError("lstm: w, w_i, w_f, w_o and every input must be lists of numbers of one length") from None
    if X.ndim != 2 or len(X) == 0:
        raise InputError("lstm.inputs must be a non-empty list of equal-length vectors")
    if W.shape[1] != X.shape[1]:
        raise InputError(f"lstm: weights have length {W.shape[1]} but inputs have length {X.shape[1]}; make them equal")
    return W, b, X


def derive(p: Params, seed: int = 0) -> Derivation:
    W, b, X = _weights(p)
    d = Derivation("lstm", "LSTM cell trace (identity g and h)")
    d.step("z = w.x + b ; z_i, z_f, z_o likewise ; c' = f(z_i) z + c f(z_f) ; y = f(z_o) c'")
    c = float(p.c0)
    rows, cs, ys = [], [], []
    for t, x in enumerate(X, start=1):
        z, zi, zf, zo = W @ x + b
        gi, gf, go = sigmoid(zi), sigmoid(zf), sigmoid(zo)
        c_new = gi * z + c * gf
        y = go * c_new
        d.step(
            f"t={t} x={x.astype(int).tolist() if np.all(x == x.round()) else x.tolist()}: "
            f"z={z:g} z_i={zi:g} z_f={zf:g} z_o={zo:g} -> f(z_i)={gi:.4g} f(z_f)={gf:.4g} f(z_o)={go:.4g}; "
            f"c = {gi:.6g}*{z:g} + {c:.6g}*{gf:.6g} = {c_new:.6g}; y = {go:.6g}*{c_new:.6g} = {y:.6g}"
        )
        rows.append(
            {
                "t": t,
                "x": str(x.tolist()),
                "z": z,
                "z_i": zi,
                "z_f": zf,
                "z_o": zo,
                "f(z_i)": gi,
                "f(z_f)": gf,
                "f(z_o)": go,
                "c": c_new,
                "y": y,
                "y (3 d.p.)": round(y, 3),
            }
        )
        c = c_new
        cs.append(float(c_new))
        ys.append(float(y))
    d.tables.append(("The trace, step by step", rows))

    # the same cell from torch ops, float64
    Wt, bt = torch.tensor(W), torch.tensor(b)
    ct = torch.tensor(float(p.c0), dtype=torch.float64)
    tc, ty = [], []
    for x in torch.tensor(X):
        z, zi, zf, zo = Wt @ x + bt
        ct = torch.sigmoid(zi) * z + ct * torch.sigmoid(zf)
        tc.append(float(ct))
        ty.append(float(torch.sigmoid(zo) * ct))
    d.check("c against torch", cs, tc, 1e-12)
    d.check("y against torch", ys, ty, 1e-12)
    d.results = {"c": cs, "y": ys, "y_rounded": [round(v, 3) for v in ys]}
    d.step("y rounded to 3 decimals: " + ", ".join(f"{v:.3f}" for v in ys))
    d.answer = (
        f"Over the {len(ys)} inputs the memory cell goes "
        + ", ".join(f"{v:.3g}" for v in cs)
        + " and the outputs are y = "
        + ", ".join(f"{v:.3f}" for v in ys)
        + f"; {d.agreement()}."
    )
    return d
