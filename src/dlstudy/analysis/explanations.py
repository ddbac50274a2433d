"""Explaining an image classifier: saliency maps (captum), the input that most excites a filter
(regularised gradient ascent from noise) and a layer's feature maps for one image."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dlstudy.data.sharpness import gaussian_blur

SALIENCY_METHODS = ("gradient", "smoothgrad", "integrated_gradients")


def saliency(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str, *,
             samples: int = 25, noise: float = 0.15) -> torch.Tensor:
    """(B, C, H, W) inputs, (B,) classes -> (B, H, W) non-negative attribution of the class score.
    gradient: |d score / d pixel| as in the course reports; smoothgrad: that gradient averaged over
    noisy copies (noise is a fraction of the input range); integrated_gradients: from a black image."""
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

    model.eval()
    x = x.detach().clone()
    spread = float(x.max() - x.min())
    x.requires_grad_(True)
    if method == "gradient":
        attr = Saliency(model).attribute(x, target=target, abs=True)
    elif method == "smoothgrad":
        attr = NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=samples,
                                                      nt_samples_batch_size=samples, stdevs=noise * spread,
                                                      target=target, abs=True)
    elif method == "integrated_gradients":
        baseline = torch.full_like(x, float(x.detach().min()))
        attr = IntegratedGradients(model).attribute(x, baselines=baseline, target=target, n_steps=samples,
                                                    internal_batch_size=len(x) * samples).abs()
    else:
        raise ValueError(f"unknown saliency method '{method}' (one of {', '.join(SALIENCY_METHODS)})")
    return attr.detach().sum(dim=1)  # (B, H, W)


class _Capture:
    """Forward hook that keeps a layer's output."""

    def __init__(self, layer: nn.Module):
        self.output: torch.Tensor | None = None
        self.handle = layer.register_forward_hook(self)

    def __call__(self, _module, _inputs, output):
        self.output = output

    def close(self):
        self.handle.remove()


@torch.no_grad()
def feature_maps(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) image -> (filters, h, w): the layer's output for it."""
    model.eval()
    hook = _Capture(layer)
    try:
        model(x)
    finally:
        hook.close()
    return hook.output[0].float()


def excite_filters(model: nn.Module, layer: nn.Module, filters: list[int], shape: tuple[int, int, int], *,
                   steps: int = 120, lr: float = 0.05, weight_decay: float = 1e-3, blur_every: int = 4,
                   blur_sigma: float = 0.6, seed: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """The input that most activates each filter: start from faint noise and follow the gradient of
    the filter's mean activation. Weight decay keeps pixel values small and an occasional blur keeps
    the pattern smooth (Yosinski et al. 2015); without them the ascent finds high-frequency noise.
    Returns (len(filters), C, H, W), one input per filter, all optimised in one batch."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    x = (0.1 * torch.randn(len(filters), *shape, generator=g)).to(device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr, weight_decay=weight_decay)
    index = torch.tensor(filters, device=device)
    hook = _Capture(layer)
    try:
        for step in range(steps):
            opt.zero_grad()
            model(x)
            act = hook.output  # (F, channels, h, w): image i drives filter filters[i]
            score = act[torch.arange(len(filters), device=device), index].mean(dim=(1, 2))
            (-score.sum()).backward()
            opt.step()
            if blur_every and (step + 1) % blur_every == 0:
                with torch.no_grad():
                    x.copy_(gaussian_blur(x, blur_sigma))
    finally:
        hook.close()
        for p in model.parameters():
            p.requires_grad_(True)
    return x.detach()


# (top, bottom, left, right) as fractions of an aligned 48x48 face, as in FER2013's crops
FACE_REGIONS = {"eyes": (0.20, 0.50, 0.10, 0.90), "mouth": (0.65, 0.92, 0.25, 0.75)}
CENTRE = {"centre": (0.25, 0.75, 0.25, 0.75)}


def region_shares(maps: torch.Tensor, regions: dict[str, tuple[float, float, float, float]]) -> torch.Tensor:
    """(B, H, W) non-negative attributions -> (B, len(regions) + 1): each region's share of the image's
    total attribution, the last column everything else; rows sum to one."""
    b, h, w = maps.shape
    masks = torch.zeros(len(regions), h, w)
    for i, (top, bottom, left, right) in enumerate(regions.values()):
        masks[i, int(top * h) : int(bottom * h), int(left * w) : int(right * w)] = 1
    masks = masks * (masks.cumsum(0) <= 1)  # a pixel counts for the first region that holds it
    total = maps.flatten(1).sum(1).clamp_min(1e-12)  # (B,)
    inside = torch.einsum("bhw,rhw->br", maps.float().cpu(), masks) / total[:, None].cpu()
    return torch.cat([inside, 1 - inside.sum(1, keepdim=True)], dim=1)


@torch.no_grad()
def filter_gain(model: nn.Module, layer: nn.Module, filters: list[int], excited: torch.Tensor, seed: int = 0) -> list[float]:
    """Each filter's mean activation on its gradient-ascent input, divided by its mean activation on
    noise of the same spread: how strongly the found pattern drives it."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(excited.shape, generator=g).to(excited.device) * excited.std() + excited.mean()
    out = []
    for i, f in enumerate(filters):
        a = feature_maps(model, layer, excited[i : i + 1])[f].mean()
        b = feature_maps(model, layer, noise[i : i + 1])[f].mean()
        out.append(float(a / b.abs().clamp_min(1e-6)))
    return out


def readable_maps(model, convs: list, index: int, x: torch.Tensor, *, min_px: int = 8) -> tuple[int, np.ndarray]:
    """(layer index, its first 32 feature maps for x): the chosen conv layer, or the deepest layer before
    it whose maps are at least min_px wide (maps of a few pixels show nothing)."""
    maps = feature_maps(model, convs[index], x).cpu().numpy()[:32]
    while maps.shape[-1] < min_px and index > 0:
        index -= 1
        maps = feature_maps(model, convs[index], x).cpu().numpy()[:32]
    return index, maps
