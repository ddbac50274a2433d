"""Variational autoencoders (Kingma and Welling 2014): the NCTU DL HW2 MLP VAE and a convolutional
one. Both map an image to the mean and log-variance of a diagonal Gaussian posterior q(z|x) and
decode a latent vector to per-pixel logits; `elbo_terms` gives the two parts of the negative ELBO."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlstudy.errors import InputError
from dlstudy.train import ITEM_LOSS


class VAE(nn.Module):
    """encode: x (B, C, H, W) -> mu, logvar (B, latent_dim); decode: z -> logits (B, C, H, W)."""

    latent_dim: int

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterisation: gradients reach mu, logvar
        return self.decode(z), mu, logvar


class MLPVAE(VAE):
    """The reports' VAE: input -> 400 -> (mu, logvar) of a 50-d latent -> 400 -> input."""

    def __init__(self, *, in_shape: tuple[int, int, int], hidden: int = 400, latent_dim: int = 50):
        super().__init__()
        self.in_shape, self.latent_dim = tuple(in_shape), latent_dim
        d = math.prod(in_shape)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def encode(self, x):
        return self.encoder(x).chunk(2, dim=1)

    def decode(self, z):
        return self.decoder(z).view(-1, *self.in_shape)


class ConvVAE(VAE):
    """Strided 4x4 convolutions halve the side per block (with batch norm and LeakyReLU); the decoder
    mirrors them with transposed convolutions."""

    def __init__(
        self, *, in_shape: tuple[int, int, int], channels: tuple[int, ...] = (32, 64, 128), latent_dim: int = 50
    ):
        super().__init__()
        c, h, w = in_shape
        step = 2 ** len(channels)
        if h % step or w % step or h < 2 * step:
            raise InputError(
                f"images of {h}x{w} do not fit the conv VAE's {len(channels)} halvings: the side must be a "
                f"multiple of {step} and at least {2 * step}; set data.image_size (e.g. 32) or fewer "
                "model.conv.channels"
            )
        self.in_shape, self.latent_dim = tuple(in_shape), latent_dim
        self.grid = (channels[-1], h // step, w // step)  # the encoder's last feature map
        enc, prev = [], c
        for width in channels:
            enc += [nn.Conv2d(prev, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.LeakyReLU(0.2)]
            prev = width
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(math.prod(self.grid), 2 * latent_dim))
        dec = []
        for width in reversed(channels[:-1]):
            dec += [nn.ConvTranspose2d(prev, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            prev = width
        self.project = nn.Linear(latent_dim, math.prod(self.grid))
        self.decoder = nn.Sequential(*dec, nn.ConvTranspose2d(prev, c, 4, 2, 1))

    def encode(self, x):
        return self.encoder(x).chunk(2, dim=1)

    def decode(self, z):
        return self.decoder(F.relu(self.project(z)).view(-1, *self.grid))


# kind -> builder from the generate study's model section: the names grid.models takes
VAES = {
    "mlp": lambda in_shape, m: MLPVAE(in_shape=in_shape, hidden=m.mlp.hidden, latent_dim=m.mlp.latent_dim),
    "conv": lambda in_shape, m: ConvVAE(
        in_shape=in_shape, channels=tuple(m.conv.channels), latent_dim=m.conv.latent_dim
    ),
}


def build_vae(kind: str, *, in_shape: tuple[int, int, int], model_cfg) -> VAE:
    if kind not in VAES:
        raise InputError(f"unknown VAE '{kind}' (use {' or '.join(VAES)})")
    return VAES[kind](in_shape, model_cfg)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per row, in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)


def reconstruction_nll(logits: torch.Tensor, x: torch.Tensor, likelihood: str, sigma: float) -> torch.Tensor:
    """-log p(x|z) per image in nats. bernoulli: binary cross-entropy with pixel intensities as targets
    (as the reports); gaussian: mean sigmoid(logits), fixed standard deviation sigma."""
    if likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    sq = (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)
    return 0.5 * sq / sigma**2 + x[0].numel() * (math.log(sigma) + 0.5 * math.log(2 * math.pi))


def elbo_terms(model: VAE, x: torch.Tensor, *, likelihood: str = "bernoulli", sigma: float = 0.1):
    """(reconstruction, kl, mu) per image; their sum is the negative ELBO, a bound on -log p(x)."""
    logits, mu, logvar = model(x)
    return reconstruction_nll(logits.float(), x, likelihood, sigma), kl_divergence(mu.float(), logvar.float()), mu


def beta_at(epoch: int, beta: float, warmup: str, warmup_epochs: int) -> float:
    """The KL weight during epoch `epoch` (0-based): constant, a linear ramp from 0, or a ramp that
    restarts every warmup_epochs (cyclical annealing, Fu et al. 2019: rise over the first half)."""
    if warmup == "linear":
        return beta * min(1.0, (epoch + 1) / warmup_epochs)
    if warmup == "cyclical":
        return beta * min(1.0, (epoch % warmup_epochs + 1) / max(1, warmup_epochs // 2))
    return beta


class ELBOLoss:
    """reconstruction + beta KL for the Trainer, with beta's warm-up schedule. The Trainer calls
    start_epoch before each epoch (also after a resume), so the schedule needs no other channel.
    Evaluation always weighs KL by the target beta."""

    def __init__(
        self,
        *,
        beta: float,
        likelihood: str = "bernoulli",
        sigma: float = 0.1,
        warmup: str = "none",
        warmup_epochs: int = 1,
    ):
        self.beta, self.likelihood, self.sigma = beta, likelihood, sigma
        self.warmup, self.warmup_epochs = warmup, warmup_epochs
        self.epoch = 0

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, model: VAE, batch: tuple):
        (x,) = batch  # (B, C, H, W) in [0, 1]
        recon, kl, _ = elbo_terms(model, x, likelihood=self.likelihood, sigma=self.sigma)
        weight = beta_at(self.epoch, self.beta, self.warmup, self.warmup_epochs) if model.training else self.beta
        metrics = {} if model.training else {ITEM_LOSS: recon + kl}  # each image's negative ELBO
        recon, kl = recon.mean(), kl.mean()
        return recon + weight * kl, {"neg_elbo": recon + kl, "reconstruction": recon, "kl": kl, **metrics}
