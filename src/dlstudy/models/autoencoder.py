"""The two convolutional autoencoder families of the HW9 reports. Both map images in [-1, 1] to
images in [-1, 1] (Tanh output) and expose `encode(x) -> (B, D)` for clustering.

- PoolAutoencoder: conv + max-pool encoder; the decoder un-pools with the encoder's saved indices.
  The latent is the flattened last feature map, so its size is set by the channels.
- DenseAutoencoder: strided conv encoder, a fully connected bottleneck of `latent_dim`, and a
  transposed-conv decoder.
Odd sizes (MNIST's 28 -> 14 -> 7 -> 3) are handled by giving the decoder the encoder's sizes.
"""

from __future__ import annotations

import torch
from torch import nn

from dlstudy.errors import InputError


def _check_size(in_shape: tuple[int, int, int], levels: int) -> None:
    _, h, w = in_shape
    if min(h, w) < 2**levels:
        raise InputError(
            f"images of {h}x{w} are too small for {levels} down-sampling steps; use fewer channels entries or larger images"
        )


class PoolAutoencoder(nn.Module):
    reconstructs = True  # has a decoder: reconstruction error, reconstruction figures
    trains = True  # trained on the images it encodes
    objective = "MSE, pixels in [0, 1]"

    def __init__(self, *, in_shape: tuple[int, int, int], channels: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        assert len(channels) >= 1, "need at least one conv block"
        _check_size(in_shape, len(channels))
        c, h, w = in_shape
        self.sizes = [(h, w)]
        for _ in channels:
            h, w = h // 2, w // 2
            self.sizes.append((h, w))
        self.latent_dim = channels[-1] * h * w
        widths = [c, *channels]
        self.enc = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU())
            for a, b in zip(widths, widths[1:])
        )
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        dec = []
        for i in range(len(channels), 0, -1):  # mirror the encoder; the last conv feeds Tanh directly
            conv = nn.Conv2d(widths[i], widths[i - 1], 3, padding=1)
            dec.append(conv if i == 1 else nn.Sequential(conv, nn.BatchNorm2d(widths[i - 1]), nn.ReLU()))
        self.dec = nn.ModuleList(dec)

    def _encode(self, x: torch.Tensor):
        indices = []
        for block in self.enc:
            x, idx = self.pool(block(x))
            indices.append(idx)
        return x, indices  # (B, C_last, h, w)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._encode(x)[0].flatten(1)  # (B, D)

    def decode(self, z: torch.Tensor, indices: list[torch.Tensor]) -> torch.Tensor:
        """Un-pool with the encoder's indices: each maximum goes back where it came from."""
        sizes = self.sizes[-2::-1]
        for block, idx, size in zip(self.dec, reversed(indices), sizes):
            z = block(self.unpool(z, idx, output_size=size))
        return torch.tanh(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(*self._encode(x))


class DenseAutoencoder(nn.Module):
    reconstructs = True  # has a decoder: reconstruction error, reconstruction figures
    trains = True  # trained on the images it encodes
    objective = "MSE, pixels in [0, 1]"

    def __init__(
        self, *, in_shape: tuple[int, int, int], channels: tuple[int, ...] = (32, 64, 128), latent_dim: int = 128
    ):
        super().__init__()
        assert latent_dim >= 1, "latent_dim must be positive"
        _check_size(in_shape, len(channels))
        c, h, w = in_shape
        self.sizes = [(h, w)]
        widths = [c, *channels]
        enc = []
        for a, b in zip(widths, widths[1:]):
            enc += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
            h, w = h // 2, w // 2  # k=4, s=2, p=1 halves (floor)
            self.sizes.append((h, w))
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(channels[-1] * h * w, latent_dim))
        self.latent_dim = latent_dim
        self.project = nn.Sequential(
            nn.Linear(latent_dim, channels[-1] * h * w), nn.ReLU(), nn.Unflatten(1, (channels[-1], h, w))
        )
        levels = range(len(channels), 0, -1)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i], widths[i - 1], 4, stride=2, padding=1) for i in levels)
        self.norms = nn.ModuleList(nn.Sequential(nn.BatchNorm2d(widths[i - 1]), nn.ReLU()) for i in levels if i > 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.project(self.encode(x))
        sizes = self.sizes[-2::-1]
        for i, (up, size) in enumerate(zip(self.up, sizes)):
            z = up(z, output_size=size)  # the encoder's sizes undo the floor of odd sizes
            if i < len(self.norms):
                z = self.norms[i](z)
        return torch.tanh(z)


def build_autoencoder(spec: str, *, in_shape: tuple[int, int, int], model_cfg) -> nn.Module:
    """'pool' or 'dense:<latent_dim>' (e.g. 'dense:128'), with channels from the config."""
    family, _, arg = spec.partition(":")
    if family == "pool" and not arg:
        return PoolAutoencoder(in_shape=in_shape, channels=tuple(model_cfg.pool.channels))
    if family == "dense":
        try:
            latent = int(arg) if arg else int(model_cfg.dense.latent_dim)
        except ValueError:
            latent = 0
        if latent < 1:
            raise InputError(f"autoencoder '{spec}': the latent size after 'dense:' must be a positive integer")
        return DenseAutoencoder(in_shape=in_shape, channels=tuple(model_cfg.dense.channels), latent_dim=latent)
    raise InputError(f"unknown autoencoder '{spec}'; use 'pool' or 'dense:<latent size>'")
