"""Augmentation of whole batches with torch ops (no torchvision). Geometric transforms are one random
affine map per image applied with a single grid_sample call, so the cost is one pass over the batch
whatever the number of transforms; colour transforms are per-image factors and 3x3 colour matrices.

- random_affine: shift, rotation, zoom and flip (the classify study's training augmentation)
- random_erasing: a random rectangle per image set to zero (Zhong et al. 2020; classify, after random_affine)
- random_resized_crop, colour_jitter: SimCLR's views (the cluster study's contrastive encoder)
- ten_crop: the fixed views of ten-crop test-time averaging (classify)"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    x: torch.Tensor,
    *,
    shift: float = 0.0,
    rotate: float = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
    flip: bool = False,
    generator: torch.Generator | None = None,
    padding_mode: str = "border",
) -> torch.Tensor:
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
    theta = torch.stack(
        [
            torch.stack([cos * sign, -sin, uniform(-2 * shift, 2 * shift)], 1),  # grid units: the side is 2
            torch.stack([sin * sign, cos, uniform(-2 * shift, 2 * shift)], 1),
        ],
        1,
    )  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def random_erasing(
    x: torch.Tensor,
    *,
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random erasing: with probability p, one rectangle of a random share `area` of the image and aspect
    `ratio` (height / width), at a random place, is set to 0 (the mean of standardised inputs), so the
    model cannot rely on any one face region. x (B, C, H, W) -> same shape, a new tensor."""
    b, _, h, w = x.shape

    def rand() -> torch.Tensor:
        return torch.rand(b, generator=generator)

    share = area[0] + (area[1] - area[0]) * rand()
    aspect = torch.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * rand())
    eh = (torch.sqrt(share * aspect) * h).round().clamp(1, h)  # the rectangle's height and width in pixels
    ew = (torch.sqrt(share / aspect) * w).round().clamp(1, w)
    top = ((h - eh + 1) * rand()).floor()
    left = ((w - ew + 1) * rand()).floor()
    on = rand() < p
    rows, cols = torch.arange(h), torch.arange(w)
    inside_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])  # (B, H)
    inside_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # (B, W)
    mask = inside_rows[:, :, None] & inside_cols[:, None, :] & on[:, None, None]  # (B, H, W)
    return x.masked_fill(mask[:, None].to(x.device), 0.0)


def random_resized_crop(
    x: torch.Tensor,
    *,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
    size: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SimCLR's crop: a window of a random share `scale` of the image's area and aspect `ratio`, at a random
    place, resized to size x size (default: the input's side), mirrored for half the images when `flip`.
    x (B, C, H, W) -> (B, C, size, size), through one affine grid."""
    b = x.shape[0]

    def rand() -> torch.Tensor:
        return torch.rand(b, generator=generator).to(x.device)

    area = scale[0] + (scale[1] - scale[0]) * rand()
    aspect = torch.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * rand())
    sx = torch.sqrt(area * aspect).clamp(max=1.0)  # the window's width and height as shares of the side
    sy = torch.sqrt(area / aspect).clamp(max=1.0)
    tx = (2 * rand() - 1) * (1 - sx)  # the window's centre, kept inside the image (grid units: the side is 2)
    ty = (2 * rand() - 1) * (1 - sy)
    sign = torch.where(rand() < 0.5, -1.0, 1.0) if flip else torch.ones(b, device=x.device)
    zero = torch.zeros(b, device=x.device)
    theta = torch.stack([torch.stack([sx * sign, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)  # (B, 2, 3)
    side = size or x.shape[-1]
    grid = F.affine_grid(theta.to(x.dtype), [b, x.shape[1], side, side], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def ten_crop(x: torch.Tensor, *, fraction: float = 0.9) -> list[torch.Tensor]:
    """Ten-crop test-time views (Krizhevsky et al. 2012): square windows of `fraction` of the side at the
    four corners and the centre, each resized back to the input's size (a zoom the training's scale
    augmentation covers), and their mirror images. x (B, C, H, W) -> ten tensors of that shape."""
    h, w = x.shape[-2:]
    ch, cw = max(1, round(fraction * h)), max(1, round(fraction * w))
    tops, lefts = (0, 0, h - ch, h - ch, (h - ch) // 2), (0, w - cw, 0, w - cw, (w - cw) // 2)
    crops = [
        F.interpolate(x[..., t : t + ch, s : s + cw], size=(h, w), mode="bilinear", align_corners=False)
        for t, s in zip(tops, lefts)
    ]
    return crops + [c.flip(-1) for c in crops]


# RGB <-> YIQ: hue is an angle in the IQ plane, so a hue shift is a rotation there
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def colour_jitter(
    x: torch.Tensor,
    *,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
    grayscale: float = 0.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SimCLR's colour distortion on images in [0, 1]: with probability p, random brightness, contrast,
    saturation (factors in 1 +- the given amount) and hue (a rotation of up to hue * 360 degrees); then
    grayscale with probability `grayscale`. Single-channel images get brightness and contrast only.
    x (B, C, H, W) -> same shape, in [0, 1]."""
    b, c = x.shape[:2]

    def rand() -> torch.Tensor:
        return torch.rand(b, 1, 1, 1, generator=generator).to(x.device)  # one draw per image

    on = rand() < p

    def factor(amount: float) -> torch.Tensor:  # 1 +- amount where the jitter is on, else 1
        return torch.where(on, 1 + amount * (2 * rand() - 1), 1.0)

    def gray(img: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) luma
        weights = _RGB_TO_YIQ[0] if c == 3 else torch.full((c,), 1 / c)
        return (img * weights.to(img).view(1, c, 1, 1)).sum(1, keepdim=True)

    out = x * factor(brightness)
    out = torch.lerp(gray(out).mean((2, 3), keepdim=True), out, factor(contrast))
    if c == 3:
        out = torch.lerp(gray(out), out, factor(saturation))
        angle = torch.where(on, hue * (2 * rand() - 1), 0.0).view(b) * 2 * math.pi
        cos, sin = torch.cos(angle), torch.sin(angle)
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        rotate = torch.stack(
            [torch.stack([one, zero, zero], 1), torch.stack([zero, cos, -sin], 1), torch.stack([zero, sin, cos], 1)], 1
        )  # (B, 3, 3) in YIQ
        to_yiq = _RGB_TO_YIQ.to(x)
        mix = torch.linalg.inv(to_yiq) @ rotate.to(x) @ to_yiq  # (B, 3, 3) in RGB
        out = torch.einsum("bij,bjhw->bihw", mix, out)
        out = torch.where(rand() < grayscale, gray(out).expand_as(out), out)
    return out.clamp(0, 1)
