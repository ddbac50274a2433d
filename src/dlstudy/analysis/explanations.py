"""Explaining an image classifier: saliency maps (captum), the input that most excites a filter
(regularised gradient ascent from noise) and a layer's feature maps for one image."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dlstudy.data.sharpness import gaussian_blur


# each method: (B, C, H, W) inputs (requiring grad), (B,) classes -> (B, C, H, W) or (B, 1, H, W) attribution
def _gradient(model, x, target, *, samples, noise, layer):
    from captum.attr import Saliency

    return Saliency(model).attribute(x, target=target, abs=True)


def _smoothgrad(model, x, target, *, samples, noise, layer):
    from captum.attr import NoiseTunnel, Saliency

    spread = float(x.detach().max() - x.detach().min())
    return NoiseTunnel(Saliency(model)).attribute(
        x,
        nt_type="smoothgrad",
        nt_samples=samples,
        nt_samples_batch_size=samples,
        stdevs=noise * spread,
        target=target,
        abs=True,
    )


def _integrated_gradients(model, x, target, *, samples, noise, layer):
    return integrated_gradients(model, x, target, steps=samples)[0]


def _grad_cam(model, x, target, *, samples, noise, layer):
    from captum.attr import LayerAttribution, LayerGradCam

    cam = LayerGradCam(model, layer or model.conv_layers()[-1]).attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear").clamp_min(0)


def _occlusion(model, x, target, *, samples, noise, layer):
    from captum.attr import Occlusion

    window = (x.shape[1], 6, 6)
    return (
        Occlusion(model)
        .attribute(
            x,
            sliding_window_shapes=window,
            strides=(x.shape[1], 3, 3),
            target=target,
            baselines=float(x.detach().min()),
            perturbations_per_eval=64,
        )
        .clamp_min(0)
    )


@dataclass(frozen=True)
class Method:
    attribute: Callable  # (model, x, target, *, samples, noise, layer) -> attribution
    about: str  # how the report's caption describes it; {samples} is filled in


# name -> method: the config's choices (explain.methods), the defaults and the report's caption read this table
SALIENCY = {
    "gradient": Method(_gradient, "the vanilla gradient of the course reports"),
    "smoothgrad": Method(_smoothgrad, "SmoothGrad ({samples} noisy copies)"),
    "integrated_gradients": Method(_integrated_gradients, "Integrated Gradients (from a black image)"),
    "grad_cam": Method(_grad_cam, "Grad-CAM on the last conv layer (upsampled)"),
    "occlusion": Method(_occlusion, "occlusion (6x6 patches)"),
}


def saliency(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    method: str,
    *,
    samples: int = 25,
    noise: float = 0.15,
    layer: nn.Module | None = None,
) -> torch.Tensor:
    """(B, C, H, W) inputs, (B,) classes -> (B, H, W) non-negative attribution of the class score, by a
    method of SALIENCY. gradient: |d score / d pixel| as in the course reports; smoothgrad: that gradient
    averaged over noisy copies (noise is a fraction of the input range); integrated_gradients: from a black
    image (see integrated_gradients for its convergence delta); grad_cam: captum's LayerGradCam on `layer`
    (default: the model's last conv layer), upsampled to the image; occlusion: the score's drop when a
    6x6 patch (stride 3) is set to black."""
    if method not in SALIENCY:
        raise ValueError(f"unknown saliency method '{method}' (one of {', '.join(SALIENCY)})")
    model.eval()
    x = x.detach().clone().requires_grad_(True)
    attr = SALIENCY[method].attribute(model, x, target, samples=samples, noise=noise, layer=layer)
    return attr.detach().sum(dim=1)  # (B, H, W)


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, steps: int = 25):
    """|Integrated Gradients| from a black image (the inputs' minimum), and captum's convergence delta per
    image: the gap between the attributions' sum and score(x) - score(black), small when the path
    integral is well approximated."""
    from captum.attr import IntegratedGradients

    baseline = torch.full_like(x, float(x.detach().min()))
    attr, delta = IntegratedGradients(model).attribute(
        x,
        baselines=baseline,
        target=target,
        n_steps=steps,
        internal_batch_size=len(x) * steps,
        return_convergence_delta=True,
    )
    return attr.abs(), delta.detach().abs()


def randomisation_check(
    model: nn.Module,
    top: list[nn.Module],
    x: torch.Tensor,
    target: torch.Tensor,
    methods: list[str],
    *,
    seed: int = 0,
    samples: int = 10,
) -> dict[str, float]:
    """The model-randomisation sanity check (Adebayo et al. 2018): re-initialise the `top` layers of a copy
    of the model and compare each method's maps before and after by Spearman rank correlation (mean over
    the images). Maps that explain the trained model must change: a correlation near 1 means the
    method shows the input, not what the model learned."""
    import copy

    from scipy.stats import spearmanr

    torch.manual_seed(seed)
    shuffled = copy.deepcopy(model)
    names = {id(m) for m in top}
    for original, module in zip(model.modules(), shuffled.modules()):
        if id(original) in names:
            for m in module.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
    out = {}
    for method in methods:
        before = saliency(model, x, target, method, samples=samples).flatten(1).cpu().numpy()
        after = saliency(shuffled, x, target, method, samples=samples).flatten(1).cpu().numpy()
        # a constant map has no ranks: it counts as unchanged only if the other map is the same
        rho = [
            float(np.allclose(a, b)) if a.std() == 0 or b.std() == 0 else spearmanr(a, b).statistic
            for a, b in zip(before, after)
        ]
        out[method] = float(np.mean(rho))
    return out


DELETION_FILLS = ("blur", "black")


def remove_pixels(x: torch.Tensor, order: torch.Tensor, fraction: float, fill: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) with the first `fraction` of each image's pixels in `order` (B, H*W) replaced by the
    same pixels of `fill` (B, C, H, W), in every channel."""
    b, hw = order.shape
    keep = torch.ones(b, hw, device=x.device)
    keep.scatter_(1, order[:, : int(fraction * hw)].to(x.device), 0.0)
    return torch.where(keep.view(b, 1, *x.shape[-2:]).bool(), x, fill)


@torch.no_grad()
def deletion_curves(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    maps: dict[str, torch.Tensor],
    *,
    fractions=(0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
    fill: str = "blur",
    seed: int = 0,
) -> dict:
    """Accuracy as pixels are removed in the order of each method's maps: {"most": rows, "least": rows}, most
    salient first (a faithful map makes accuracy fall faster than random order) and least salient first (it
    keeps accuracy above random), each row with the one random order's accuracy beside the methods'. A
    removed pixel takes the value of a Gaussian blur of its image (fill "blur", sigma a twelfth of the side:
    it keeps the face's coarse shape, so the curve measures the loss of the detail there) or of the inputs'
    minimum ("black": scattered black pixels are far from any training image, so any order, random too,
    lowers accuracy fast: the shift Hooker et al. 2019 warn of). "per_image" holds each image's mean accuracy
    over each curve, for paired tests."""
    if fill not in DELETION_FILLS:
        raise ValueError(f"unknown deletion fill '{fill}' (one of {', '.join(DELETION_FILLS)})")
    model.eval()
    g = torch.Generator().manual_seed(seed)
    filled = gaussian_blur(x, x.shape[-1] / 12) if fill == "blur" else torch.full_like(x, float(x.min()))
    ranked = {m: v.flatten(1).argsort(dim=1, descending=True) for m, v in maps.items()}  # most salient first
    shuffled = torch.stack([torch.randperm(x[0, 0].numel(), generator=g) for _ in range(len(x))])

    def correct(order: torch.Tensor, f: float) -> np.ndarray:  # (B,) each image right or wrong
        return (model(remove_pixels(x, order, f, filled)).argmax(1) == y).cpu().numpy()

    orders = {first: {m: o if first == "most" else o.flip(1) for m, o in ranked.items()} for first in ("most", "least")}
    right = {
        first: {m: np.stack([correct(o, f) for f in fractions]) for m, o in by.items()} for first, by in orders.items()
    }
    random = np.stack([correct(shuffled, f) for f in fractions])  # (fractions, B)
    curves = {
        first: [
            {"removed": f, **{m: float(v[i].mean()) for m, v in by.items()}, "random": float(random[i].mean())}
            for i, f in enumerate(fractions)
        ]
        for first, by in right.items()
    }
    # each image's mean over the curve: what a paired test of a map against random order compares
    curves["per_image"] = {first: {m: v.mean(0) for m, v in by.items()} for first, by in right.items()}
    curves["per_image"]["random"] = random.mean(0)
    return curves


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


def excite_filters(
    model: nn.Module,
    layer: nn.Module,
    filters: list[int],
    shape: tuple[int, int, int],
    *,
    steps: int = 120,
    lr: float = 0.05,
    weight_decay: float = 1e-3,
    blur_every: int = 4,
    blur_sigma: float = 0.6,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
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
def filter_gain(
    model: nn.Module, layer: nn.Module, filters: list[int], excited: torch.Tensor, seed: int = 0
) -> list[float]:
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


@dataclass(frozen=True)
class SaliencyResults:
    """What question 22 shows."""

    chosen: list[int]  # the scored images shown, `per_class` of each class
    maps: dict[str, torch.Tensor]  # method -> (len(chosen), H, W)
    ig_delta: np.ndarray  # Integrated Gradients' convergence delta per image
    regions: list[str]
    shares: np.ndarray  # (len(chosen), len(regions)): the vanilla gradient's share in each region
    areas: list[float]  # each region's share of the image's area: what a uniform map would give it
    randomisation: dict[str, float]  # method -> rank correlation after re-initialising the top layers
    deletion: dict  # "most" / "least" salient first -> accuracy as pixels are removed; "per_image": each image's
    deletion_images: int


@dataclass(frozen=True)
class FilterResults:
    """What question 23 shows."""

    index: int  # the conv layer whose filters are excited
    n_convs: int
    width: int  # its number of filters
    filters: list[int]
    inputs: np.ndarray  # (len(filters), C, H, W): the input that most excites each
    gains: list[float]  # each filter's activation on its input against noise
    maps_layer: int  # the conv layer whose feature maps are shown (index, or earlier when too small)
    maps: np.ndarray  # (<=32, h, w)


def explain_predictions(
    model: nn.Module, x: torch.Tensor, y: np.ndarray, e, *, faces: bool, seed: int, device
) -> SaliencyResults:
    """Everything question 22 shows, for the scored images x (normalised) with labels y: maps of every
    method for `per_class` images of each class, their region shares, IG's convergence delta, the
    randomisation check and the deletion curves, most and least salient first (on up to `deletion_images`
    images)."""
    chosen = [int(i) for c in np.unique(y) for i in np.flatnonzero(y == c)[: e.per_class]]
    xs, target = x[chosen].to(device), torch.as_tensor(y[chosen], device=device)
    maps = {m: saliency(model, xs, target, m, samples=e.samples).cpu() for m in e.methods}
    _, delta = integrated_gradients(model, xs, target, steps=e.samples)
    regions = FACE_REGIONS if faces else CENTRE
    shares = region_shares(maps.get("gradient", next(iter(maps.values()))), regions).numpy()
    areas = region_shares(torch.ones(1, *xs.shape[-2:]), regions)[0].tolist()
    top = [model.features[-1], model.classifier] if hasattr(model, "classifier") else list(model.children())[-1:]
    check = randomisation_check(model, top, xs, target, list(e.randomise), seed=seed, samples=e.samples)
    n = min(e.deletion_images, len(x))
    pick = np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))
    xd, yd = x[pick].to(device), torch.as_tensor(y[pick], device=device)
    maps_d = {m: saliency(model, xd, yd, m) for m in ("gradient", "grad_cam")}
    deletion = deletion_curves(model, xd, yd, maps_d, fill=e.deletion_fill, seed=seed)
    return SaliencyResults(
        chosen=chosen,
        maps=maps,
        ig_delta=delta.cpu().numpy(),
        regions=[*regions, "rest"],
        shares=shares,
        areas=areas,
        randomisation=check,
        deletion=deletion,
        deletion_images=n,
    )


def explain_filters(model: nn.Module, x_example: torch.Tensor, e, *, seed: int, device) -> FilterResults:
    """What question 23 shows: inputs that excite filters of one conv layer, how strongly (against noise),
    and the feature maps of one image."""
    convs = model.conv_layers()
    index = e.layer % len(convs)
    layer = convs[index]
    chosen = [int(f) for f in e.filter_indices] or list(range(min(e.filters, layer.out_channels)))
    inputs = excite_filters(model, layer, chosen, tuple(x_example.shape[1:]), steps=e.steps, seed=seed, device=device)
    shown, maps = readable_maps(model, convs, index, x_example.to(device))
    return FilterResults(
        index=index,
        n_convs=len(convs),
        width=layer.out_channels,
        filters=chosen,
        inputs=inputs.cpu().numpy(),
        gains=filter_gain(model, layer, chosen, inputs, seed=seed),
        maps_layer=shown,
        maps=maps,
    )
