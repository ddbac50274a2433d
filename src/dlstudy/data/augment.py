"""Augmentation of whole batches with torch ops (no torchvision): one random affine map per image
(shift, rotation, scale, horizontal flip) applied with a single grid_sample call, so the cost is one
pass over the batch whatever the number of transforms."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, *, shift: float = 0.0, rotate: float = 0.0, scale: tuple[float, float] = (1.0, 1.0),
                  flip: bool = False, generator: torch.Generator | None = None, padding_mode: str = "border") -> torch.Tensor:
    """x (B, C, H, W) -> same shape. shift: largest translation as a fraction of the image side (a random
    crop with padding of shift * side pixels); rotate: largest rotation in degrees; scale: zoom range
    (> 1 zooms in, like a random resized crop); flip: mirror half the images left-right."""
    b = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=generator).to(x.device)

    angle = uniform(-rotate, rotate) * (math.pi / 180)
    zoom = 1.0 / uniform(*scale)  # the grid samples a window 1/zoom of the image
    sign = torch.ones(b, device=x.device)
    if flip:
        sign = torch.where(torch.rand(b, generator=generator).to(x.device) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack([
        torch.stack([cos * sign, -sin, uniform(-2 * shift, 2 * shift)], 1),  # grid units: the side is 2
        torch.stack([sin * sign, cos, uniform(-2 * shift, 2 * shift)], 1),
    ], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
