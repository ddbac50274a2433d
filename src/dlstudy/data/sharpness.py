"""Sharpness shift between training and test images. Some releases of a data set blur one split
(an earlier copy of FER2013 here had blurred Training faces and sharp test faces); a CNN trained on
blurred faces then sees sharp ones as out of distribution. We measure sharpness as the mean
absolute difference between neighbouring pixels and, when asked (data.match_sharpness), blur a
clearly sharper test side with the Gaussian that brings its median sharpness to the training median."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def sharpness(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) pixels in [0, 1] -> (N,) mean absolute horizontal and vertical difference."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    return (dx + dy) / 2


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), reflect padding; sigma 0 returns x."""
    if sigma <= 0:
        return x
    radius = max(1, min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def matching_sigma(x: torch.Tensor, target: float, *, tolerance: float = 1.25, sample: int = 2000) -> float:
    """The blur sigma that brings the median sharpness of x down to `target`; 0 when x is not
    sharper than target * tolerance (no shift worth correcting)."""
    x = x[:sample]
    if float(sharpness(x).median()) <= target * tolerance:
        return 0.0
    lo, hi = 0.0, 8.0
    for _ in range(20):  # bisection: sharpness falls as sigma grows
        mid = (lo + hi) / 2
        if float(sharpness(gaussian_blur(x, mid)).median()) > target:
            lo = mid
        else:
            hi = mid
    return round((lo + hi) / 2, 2)


def match_groups(x: torch.Tensor, groups: np.ndarray, target: float, *, source: str) -> dict[str, float]:
    """Blur, in place, each group of images (e.g. per FER2013 Usage) that is sharper than `target`;
    returns the sigma used per group."""
    import logging

    sigmas = {}
    for group in np.unique(groups):
        rows = torch.from_numpy(np.flatnonzero(groups == group))
        sigma = matching_sigma(x[rows], target)
        if sigma:
            logging.getLogger("dlstudy").warning(
                "%s (%s): images are sharper than the training images; blurring with sigma %.2f px to match",
                source,
                group,
                sigma,
            )
            x[rows] = gaussian_blur(x[rows], sigma)
        sigmas[str(group)] = sigma
    return sigmas
