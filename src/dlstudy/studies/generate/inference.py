"""How sure the generate study's words are. Test images are independent, so each is drawn on its own; the KL
weights are compared with beta = 1 (or the smallest beta) paired over the same test images, prior samples as two
separate groups, and the main curve's last epoch with the one before, paired over the images. The report's
comparisons are corrected together (Holm, in the protocol)."""

from __future__ import annotations

import numpy as np
import torch

from dlstudy.analysis.generative import ACTIVE, prior_samples
from dlstudy.analysis.uncertainty import Comparison, Items, Statistic, compare, mean_of, unpaired
from dlstudy.studies.generate.config import Config


def family(models: dict, nats: dict, kind: str, beta: float, *, cfg: Config, device) -> dict[str, Comparison]:
    """The report's comparative statements: the KL weights against the reference, and the main curve's end."""
    out = beta_tests(models, nats, kind, cfg=cfg, device=device)
    end = curve_end(nats[(kind, beta)]["epochs"], seed=cfg.seed)
    return {**out, "curve_end": end} if end is not None else out


def beta_tests(models: dict, nats: dict, kind: str, *, cfg: Config, device) -> dict[str, Comparison]:
    """Each KL weight against beta = 1 (or the smallest beta): its reconstruction and KL nats and its active units
    paired over the same test images, and how far its prior samples lie from their own mean image (over the
    samples, unpaired). Named '<what>:<beta>', for the report's family."""
    betas = sorted(b for k, b in nats if k == kind)
    ref = 1.0 if 1.0 in betas else betas[0]
    out: dict[str, Comparison] = {}
    spread = {
        b: sample_spread(prior_samples(models[(kind, b)], cfg.figures.samples, cfg.seed, device).cpu()) for b in betas
    }
    for b in (b for b in betas if b != ref):
        ours, theirs = nats[(kind, b)], nats[(kind, ref)]
        named = {"a": f"beta = {b:g}", "b": f"beta = {ref:g}"}
        for what in ("reconstruction", "kl"):
            stat_a, stat_b = mean_of(ours[what]), mean_of(theirs[what])
            out[f"{what}:{b:g}"] = compare(
                **named, stat_a=stat_a, stat_b=stat_b, items=len(ours[what]), what=f"{what} nats", seed=cfg.seed
            )
        active_a, active_b = active_units_of(ours["mu"]), active_units_of(theirs["mu"])
        n = len(ours["mu"])
        out[f"active:{b:g}"] = compare(
            **named, stat_a=active_a, stat_b=active_b, items=n, what="active units", seed=cfg.seed
        )
        samples = {k: Items(n=len(spread[v]), name=f"prior samples at {named[k]}") for k, v in (("a", b), ("b", ref))}
        out[f"spread:{b:g}"] = unpaired(
            **{"a_name": named["a"], "b_name": named["b"]},
            a=spread[b],
            b=spread[ref],
            items_a=samples["a"],
            items_b=samples["b"],
            what="sample spread",
            seed=cfg.seed,
        )
    return out


def active_units_of(mu: np.ndarray, threshold: float = ACTIVE) -> Statistic:
    """Active units (Burda et al. 2016: a posterior mean whose variance over the images exceeds `threshold`) on each
    resample of the images."""
    mu = np.asarray(mu, dtype=np.float64)
    squares = mu**2

    def statistic(w: np.ndarray) -> np.ndarray:
        total = w.sum(axis=1, keepdims=True)
        mean, second = (w @ mu) / total, (w @ squares) / total
        return ((second - mean**2) > threshold).sum(axis=1).astype(np.float64)

    return statistic


def curve_end(losses: list[np.ndarray] | None, *, seed: int) -> Comparison | None:
    """The last epoch's test negative ELBO against the epoch before, paired over the test images."""
    if not losses or len(losses) < 2:
        return None
    last, before = losses[-1], losses[-2]
    return compare(
        "the last epoch",
        "the epoch before",
        mean_of(last),
        mean_of(before),
        len(last),
        what="test negative ELBO",
        seed=seed,
    )


def sample_spread(samples: torch.Tensor) -> np.ndarray:
    """Each prior sample's RMS distance from the samples' mean image: how much the decodes vary."""
    return ((samples - samples.mean(dim=0, keepdim=True)) ** 2).mean(dim=(1, 2, 3)).sqrt().numpy()
