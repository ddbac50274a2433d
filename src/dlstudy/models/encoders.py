"""The cluster study's encoders, by what they can do: the reports' convolutional autoencoders
('pool', 'dense:<latent size>') reconstruct their input; the self-supervised ones ('simclr', 'byol') only
make features; a pretrained timm network ('timm:<name>[@weights.safetensors]') is frozen and trains nothing.
Images enter as (N, C, H, W) in [-1, 1]; every reported error is per pixel in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dlstudy.data.augment import colour_jitter, random_resized_crop
from dlstudy.errors import InputError
from dlstudy.models.autoencoder import build_autoencoder
from dlstudy.models.contrastive import BYOL, ContrastiveEncoder, byol_loss, nt_xent
from dlstudy.models.pretrained import PretrainedEncoder, is_pretrained, locate_weights


def build_encoder(spec: str, *, in_shape: tuple[int, int, int], model_cfg) -> torch.nn.Module:
    family = spec.partition(":")[0]
    if is_pretrained(spec):
        p = model_cfg.pretrained
        return PretrainedEncoder(spec=spec, in_channels=in_shape[0], size=p.size, crop=p.crop, bf16=p.bf16)
    if spec in ("simclr", "byol"):
        channels = tuple(model_cfg.simclr.channels)
        if min(in_shape[1:]) < 2 ** (len(channels) - 1):
            raise InputError(
                f"images of {in_shape[1]}x{in_shape[2]} are too small for {len(channels) - 1} pooling steps; "
                "give model.simclr.channels fewer entries"
            )
        encoder = ContrastiveEncoder(
            in_channels=in_shape[0],
            channels=channels,
            projection_dim=int(model_cfg.simclr.projection_dim),
            backbone=model_cfg.simclr.backbone,
        )
        return encoder if spec == "simclr" else BYOL(student=encoder, momentum=model_cfg.byol.momentum)
    if family in ("pool", "dense"):
        return build_autoencoder(spec, in_shape=in_shape, model_cfg=model_cfg)
    raise InputError(f"unknown encoder '{spec}'; use pool, dense:<latent size>, simclr, byol or timm:<model name>")


def check_encoders(cfg) -> None:
    """The encoder specs and SimCLR's settings, before any data is read (a pretrained one: its weights are here)."""
    for spec in cfg.grid.encoders:
        if is_pretrained(spec):
            locate_weights(spec)
        else:
            build_encoder(spec, in_shape=(1, 64, 64), model_cfg=cfg.model)
    lo, hi = cfg.contrastive.augment.crop_scale
    if not lo <= hi:
        raise InputError(f"contrastive.augment.crop_scale must be [low, high] with low <= high, got {[lo, hi]}")


def reconstruction_loss(model, batch):
    (x,) = batch
    return F.mse_loss(model(x), x), {}


def contrastive_loss(cfg, seed: int, *, byol: bool = False):
    """SimCLR's loss (or BYOL's) for the Trainer: two augmented views of every image in the batch, drawn on the
    whole batch at once, through the encoder and head in one pass (batch norm sees both views)."""
    aug = cfg.augment
    generator = torch.Generator().manual_seed(seed)

    def view(x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) in [-1, 1] -> (B, C, S, S) in [-1, 1]
        x = random_resized_crop(
            x, scale=tuple(aug.crop_scale), flip=aug.flip, size=aug.crop_size or None, generator=generator
        )
        x = colour_jitter(
            (x + 1) / 2,
            brightness=aug.jitter,
            contrast=aug.jitter,
            saturation=aug.jitter,
            hue=aug.hue,
            grayscale=aug.grayscale,
            generator=generator,
        )
        return x * 2 - 1

    def loss(model, batch):
        (x,) = batch
        views = torch.cat([view(x), view(x)])  # (2B, C, S, S)
        z1, z2 = model(views).float().chunk(2)  # (B, P) each
        if byol:
            t1, t2 = model.targets(views).float().chunk(2)
            return byol_loss(z1, z2, t1, t2), {}
        return nt_xent(z1, z2, cfg.temperature), {}

    loss.generator = generator  # the Trainer checkpoints its state, so a resumed run draws the same views
    return loss


def training_for(model: torch.nn.Module, cfg):
    """(loss, train settings, the config key of its epochs) for an encoder: reconstruction for autoencoders,
    BYOL's or SimCLR's otherwise."""
    if model.reconstructs:
        return reconstruction_loss, cfg.train, "train.epochs"
    loss = contrastive_loss(cfg.contrastive, cfg.seed, byol=isinstance(model, BYOL))
    return loss, cfg.contrastive.train, "contrastive.train.epochs"


@torch.no_grad()
def encode(model, x: torch.Tensor, device, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (N, D) and, for encoders that reconstruct, each image's reconstruction MSE per pixel in [0, 1]."""
    model.eval()
    latents, errors = [], []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        latents.append(model.encode(xb).float().cpu())
        if model.reconstructs:  # [-1, 1] -> [0, 1] divides squared errors by 4
            errors.append(((model(xb) - xb) ** 2).mean(dim=(1, 2, 3)).cpu() / 4)
    return torch.cat(latents).numpy(), torch.cat(errors).numpy() if errors else None
