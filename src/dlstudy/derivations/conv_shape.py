"""Output shape of a 2-D convolution:  out = floor((n + 2p - d (k - 1) - 1) / s) + 1  per axis."""

from __future__ import annotations

import numpy as np
import torch

from dlstudy.config import Count, Schema, key
from dlstudy.derivations import Derivation
from dlstudy.errors import InputError


class Params(Schema):
    """One convolution's sizes, as the problem sets give them."""

    input: list[int] = key([8, 32, 32, 3], "(B, W, H, C) as the problem sets write it")
    kernel: int | list[int] = key([5, 5], "one integer or two")
    stride: int | list[int] = key([1, 1], "one integer or two")
    padding: int | list[int] = key([0, 0], "one integer or two")
    dilation: int | list[int] = key([1, 1], "one integer or two")
    out_channels: Count = key(16, "the convolution's filters")
    random_checks: Count = key(300, "random shapes also checked against torch")


def output_size(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    if s < 1:
        raise InputError(f"conv-shape: stride must be at least 1, got {s}")
    if k < 1 or d < 1 or p < 0:
        raise InputError("conv-shape: kernel and dilation must be at least 1 and padding at least 0")
    span = d * (k - 1) + 1
    if span > n + 2 * p:
        raise InputError(
            f"conv-shape: the kernel spans {span} pixels, more than the padded input ({n} + 2*{p}); "
            "use a smaller kernel or more padding"
        )
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _pair(p: Params, name: str) -> tuple[int, int]:
    v = getattr(p, name)
    v = [v, v] if isinstance(v, int) else list(v)
    if len(v) != 2 or not all(isinstance(i, int) for i in v):
        raise InputError(f"conv-shape.{name} must be one integer or two, got {getattr(p, name)!r}")
    return v[0], v[1]


def torch_shape(shape: tuple, *, k, s, p, dil, out_c) -> tuple:
    B, W, H, C = shape
    conv = torch.nn.Conv2d(C, out_c, k, stride=s, padding=p, dilation=dil, bias=False)
    with torch.no_grad():
        y = conv(torch.zeros(B, C, W, H))  # torch's (B, C, W, H) layout: the two spatial axes in the same order
    return (y.shape[0], y.shape[2], y.shape[3], y.shape[1])


def derive(p: Params, seed: int = 0) -> Derivation:
    d = Derivation("conv-shape", "Output shape of a convolution")
    if len(p.input) != 4:
        raise InputError(f"conv-shape.input must be (B, W, H, C), got {p.input!r}")
    B, W, H, C = (int(v) for v in p.input)
    (k1, k2), (s1, s2), (p1, p2), (d1, d2) = (_pair(p, name) for name in ("kernel", "stride", "padding", "dilation"))
    out_c = int(p.out_channels)
    d.step("out = floor((n + 2p - d(k - 1) - 1) / s) + 1 on each spatial axis; the channels become out_channels")
    w_out = output_size(W, k1, s1, p1, d1)
    h_out = output_size(H, k2, s2, p2, d2)
    d.step(f"W: floor(({W} + 2*{p1} - {d1}*({k1} - 1) - 1) / {s1}) + 1 = {w_out}")
    d.step(f"H: floor(({H} + 2*{p2} - {d2}*({k2} - 1) - 1) / {s2}) + 1 = {h_out}")
    ours = (B, w_out, h_out, out_c)
    params = out_c * (C * k1 * k2 + 1)
    d.step(f"output (B, W, H, C) = {ours}; parameters = {out_c} * ({C}*{k1}*{k2} + 1) = {params}")
    ref = torch_shape((B, W, H, C), k=(k1, k2), s=(s1, s2), p=(p1, p2), dil=(d1, d2), out_c=out_c)
    d.check("shape against torch.nn.Conv2d", ours, ref, 0.0)

    rng = np.random.default_rng(seed)
    mismatches, tried = 0, 0
    while tried < int(p.random_checks):
        n1, n2 = rng.integers(1, 40, 2)
        kk, ss, pp, dd = rng.integers(1, 7, 2), rng.integers(1, 5, 2), rng.integers(0, 4, 2), rng.integers(1, 4, 2)
        if any(dd[i] * (kk[i] - 1) + 1 > (n1, n2)[i] + 2 * pp[i] for i in range(2)):
            continue  # an impossible setting; the bad-input path is tested separately
        tried += 1
        mine = (2, output_size(n1, kk[0], ss[0], pp[0], dd[0]), output_size(n2, kk[1], ss[1], pp[1], dd[1]), 3)
        theirs = torch_shape(
            (2, int(n1), int(n2), 1),
            k=tuple(map(int, kk)),
            s=tuple(map(int, ss)),
            p=tuple(map(int, pp)),
            dil=tuple(map(int, dd)),
            out_c=3,
        )
        mismatches += mine != theirs
    d.step(
        f"{tried} random settings (sizes 1-39, kernels 1-6, strides 1-4, padding 0-3, dilation 1-3): "
        f"{mismatches} mismatches against torch"
    )
    d.require(f"{tried} random settings agree with torch", mismatches == 0)
    d.results = {"output_shape": list(ours), "parameters": params, "random_checks": tried, "mismatches": mismatches}
    d.answer = (
        f"An input of (B, W, H, C) = {(B, W, H, C)} gives {ours} with {params} parameters, by "
        f"floor((n + 2p - d(k - 1) - 1) / s) + 1 per axis; the formula matched torch on {tried - mismatches} "
        f"of {tried} random settings, and {d.agreement()}."
    )
    return d
