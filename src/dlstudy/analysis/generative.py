"""What a trained VAE does, measured: per-image ELBO terms, active units, decodes of the prior and the
posterior, interpolation, and simple image statistics the generate answers quote."""

from __future__ import annotations

import numpy as np
import torch

from dlstudy.models.vae import VAE, elbo_terms


@torch.no_grad()
def score(
    model: VAE,
    x: torch.Tensor,
    device,
    *,
    likelihood: str,
    sigma: float,
    samples: int = 1,
    seed: int = 0,
    batch_size: int = 512,
) -> dict[str, np.ndarray]:
    """Per image: reconstruction, kl and neg_elbo (nats), averaged over `samples` draws of z, and the
    posterior mean mu. A fixed seed makes the Monte Carlo estimate repeatable."""
    model.eval()
    torch.manual_seed(seed)
    out: dict[str, list] = {"reconstruction": [], "kl": [], "mu": []}
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        recon = 0.0
        for _ in range(samples):
            r, kl, mu = elbo_terms(model, xb, likelihood=likelihood, sigma=sigma)
            recon = recon + r / samples
        out["reconstruction"].append(recon.cpu())
        out["kl"].append(kl.cpu())  # closed form: no sampling
        out["mu"].append(mu.float().cpu())
    res = {k: torch.cat(v).numpy() for k, v in out.items()}
    res["neg_elbo"] = res["reconstruction"] + res["kl"]
    return res


ACTIVE = 0.01  # a unit is active when its posterior mean's variance over the images exceeds this (Burda et al. 2016)


def active_units(mu: np.ndarray, threshold: float = ACTIVE) -> int:
    """Latent dimensions whose posterior mean varies across images (Burda et al. 2016)."""
    return int((mu.var(axis=0) > threshold).sum())


@torch.no_grad()
def decode(model: VAE, z: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.sigmoid(model.decode(z)).float()  # the mean image of p(x|z)


@torch.no_grad()
def reconstruct(model: VAE, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return decode(model, model.encode(x)[0])


@torch.no_grad()
def prior_samples(model: VAE, n: int, seed: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return decode(model, torch.randn(n, model.latent_dim, generator=g).to(device))


@torch.no_grad()
def posterior_samples(model: VAE, x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n decodes of z ~ q(z|x) for one image x (1, C, H, W)."""
    model.eval()
    mu, logvar = model.encode(x)
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, model.latent_dim, generator=g).to(x.device)
    return decode(model, mu + eps * torch.exp(0.5 * logvar))


@torch.no_grad()
def interpolate(model: VAE, x1: torch.Tensor, x2: torch.Tensor, steps: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded points on the line between the two posterior means, a = 0, 0.1, ..., 1, and the
    pixel-space blend (1 - a) x1 + a x2 for comparison. x1, x2: (1, C, H, W)."""
    model.eval()
    a = torch.linspace(0, 1, steps, device=x1.device).view(-1, 1)
    z1, z2 = model.encode(x1)[0], model.encode(x2)[0]
    latent = decode(model, (1 - a) * z1 + a * z2)
    blend = (1 - a.view(-1, 1, 1, 1)) * x1 + a.view(-1, 1, 1, 1) * x2
    return latent, blend


def decoded_distances(recon: torch.Tensor, x: torch.Tensor) -> dict[str, float]:
    """Where a model's reconstructions of x lie (RMS per pixel, pixels in [0, 1]): from their own originals, from
    other originals (each against the next image's), from the mean image of x, and from a black image; with the
    mean brightness of both. A posterior that collapsed decodes every image alike, ideally the mean image; a
    decoder that collapsed too may decode something darker."""
    mean = x.mean(dim=0, keepdim=True)

    def rms(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(((a - b) ** 2).mean().sqrt())

    return {
        "to_originals": rms(recon, x),
        "to_other_originals": rms(recon, x.roll(1, dims=0)),
        "to_mean_image": rms(recon, mean),
        "to_black": rms(recon, 0 * recon),
        "brightness": float(recon.mean()),
        "data_brightness": float(x.mean()),
    }


def pixel_mse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean squared difference per pixel, pixels in [0, 1]: the one pixel range every study reports."""
    return float(((a.float() - b.float()) ** 2).mean())


def pixel_spread(x: torch.Tensor) -> float:
    """Mean over pixels of the standard deviation across images: how much a set of images varies."""
    return float(x.float().std(dim=0).mean())
