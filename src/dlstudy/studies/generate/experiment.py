"""The generate study's run: every VAE of the grid at every KL weight, scored in nats; and predict."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlstudy.analysis.architecture import layer_table
from dlstudy.analysis.generative import (
    active_units,
    interpolate,
    pixel_mse,
    pixel_spread,
    prior_samples,
    reconstruct,
    score,
)
from dlstudy.analysis.uncertainty import bootstrap_ci, mean_of
from dlstudy.data.images import examples_across_classes, load_images, subsample, to_unit_tensor
from dlstudy.errors import InputError
from dlstudy.models.vae import VAE, ELBOLoss, build_vae
from dlstudy.runs import atomic_write_bytes, load_weights
from dlstudy.studies.generate import inference
from dlstudy.studies.generate.config import Config
from dlstudy.studies.protocol import Results
from dlstudy.train import resolve_device, train_variant

log = logging.getLogger("dlstudy")


# the default data are MNIST digits, standing in for the anime faces: the title says what was learned
DIGITS_TITLE = "Variational autoencoders on the MNIST digits (standing in for the faces), and what the KL weight does"


@dataclass(kw_only=True)
class GenerateResults(Results):
    rows: list[dict]  # one per (model, beta)
    models: dict  # (kind, beta) -> trained VAE
    histories: dict[str, list[dict]]
    layers: dict[str, list[dict]]  # kind -> layer table
    sizes: dict[str, dict]  # kind -> parameters, latent_dim
    x_test: torch.Tensor  # (N, C, H, W) in [0, 1]
    shown: np.ndarray  # the test images the example figures use, spread over the classes where there are labels
    main_kind: str
    main_beta: float
    device: torch.device

    @property
    def main(self) -> VAE:
        return self.models[(self.main_kind, self.main_beta)]

    @property
    def main_row(self) -> dict:
        return next(r for r in self.rows if r["model"] == self.main_kind and r["beta"] == self.main_beta)


def variant_name(kind: str, beta: float) -> str:
    return f"vae-{kind}-beta{float(beta):g}"


def split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


COLUMNS = [
    "model",
    "beta",
    "train_neg_elbo",
    "test_neg_elbo",
    "test_reconstruction",
    "test_kl",
    "active_units",
    "seconds",
]  # the terminal's table


def fit(run, cfg: Config) -> GenerateResults:
    device = resolve_device(cfg.device)
    d, size = cfg.data, cfg.data.image_size
    data = subsample(load_images(d.path, size=(size, size), skip_bad=d.skip_bad), d.limit, cfg.seed)
    x = to_unit_tensor(data.images, size, source=data.source)
    tr, te = split(len(x), d.test_fraction, cfg.seed)
    log.info(
        "generate: %d training and %d test images %s from %s; device %s",
        len(tr),
        len(te),
        tuple(x.shape[1:]),
        data.source,
        device,
    )
    rows, models, histories, nats = train_grid(run, cfg, x[tr], x[te], device=device)
    main_kind, main_beta = cfg.main.model, float(cfg.main.beta)
    main = next(r for r in rows if r["model"] == main_kind and r["beta"] == main_beta)
    labels = data.labels[te] if data.labels is not None else None
    shown = examples_across_classes(labels, cfg.figures.n, cfg.seed, total=len(te))
    classes = None if labels is None else [data.class_names[c] if data.class_names else int(c) for c in labels[shown]]
    metrics = {
        **{k: main[k] for k in ("test_neg_elbo", "test_reconstruction", "test_kl", "active_units", "train_neg_elbo")},
        "beta": main_beta,
        "model": main_kind,
        "latent_dim": main["latent_dim"],
        "image_size": size,
        "channels": int(x.shape[1]),
        "likelihood": cfg.loss.likelihood,
        "n_train": len(tr),
        "n_test": len(te),
        "data": data.source,
        "grid": rows,
        "example_classes": classes,
    }
    numbers = answer_numbers(
        models, kind=main_kind, beta=main_beta, x_test=x[te], shown=shown, cfg=cfg, device=device, x_train=x[tr]
    )
    metrics.update(numbers)
    metrics.update(nats_intervals(nats[(main_kind, main_beta)], seed=cfg.seed))
    kinds = {k: next(m for (kk, _), m in models.items() if kk == k) for k in cfg.grid.models}
    return GenerateResults(
        title=None if cfg.data.path else DIGITS_TITLE,
        metrics=metrics,
        rows=rows,
        models=models,
        histories=histories,
        x_test=x[te],
        shown=shown,
        device=device,
        layers={k: layer_table(m, x[te][:2].to(device)) for k, m in kinds.items()},
        sizes={
            k: {"parameters": sum(p.numel() for p in m.parameters()), "latent_dim": m.latent_dim}
            for k, m in kinds.items()
        },
        main_kind=main_kind,
        family=inference.family(models, nats, main_kind, main_beta, cfg=cfg, device=device),
        main_beta=main_beta,
        table=rows,
        columns=COLUMNS,
    )


def train_grid(run, cfg: Config, x_train: torch.Tensor, x_test: torch.Tensor, *, device):
    """Every VAE at every KL weight: (a row of scores each, (kind, beta) -> model, variant name -> history,
    (kind, beta) -> each test image's nats: negative ELBO and reconstruction)."""
    rows, models, histories, nats = [], {}, {}, {}
    for kind in cfg.grid.models:
        for beta in map(float, cfg.grid.betas):
            name = variant_name(kind, beta)
            torch.manual_seed(cfg.seed)
            model = build_vae(kind, in_shape=tuple(x_train.shape[1:]), model_cfg=cfg.model)
            t0 = time.time()
            loss = ELBOLoss(beta=beta, **cfg.loss.model_dump())
            left = len(cfg.grid.models) * len(cfg.grid.betas) - len(histories)  # share the time budget
            trainer = train_variant(
                run, cfg, model, loss, name, train=(x_train,), device=device, test=(x_test,), remaining=left
            )
            models[(kind, beta)], histories[name] = model, trainer.history_
            summary, nats[(kind, beta)] = scores(model, x_train, x_test, cfg, device)
            nats[(kind, beta)]["epochs"] = trainer.item_losses_.get("test")  # each epoch's per-image nats
            rows.append(
                {
                    "model": kind,
                    "beta": beta,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "epochs": trainer.epoch_,
                    **summary,
                    "latent_dim": model.latent_dim,
                    "seconds": round(time.time() - t0, 1),
                }
            )
    return rows, models, histories, nats


def scores(model: VAE, x_train: torch.Tensor, x_test: torch.Tensor, cfg: Config, device) -> tuple[dict, dict]:
    """The means a grid row holds, and the test images' own nats (for intervals and paired tests)."""
    lik = {"likelihood": cfg.loss.likelihood, "sigma": cfg.loss.sigma}
    train, test = score(model, x_train, device, **lik), score(model, x_test, device, **lik)
    summary = {
        "train_neg_elbo": float(train["neg_elbo"].mean()),
        "test_neg_elbo": float(test["neg_elbo"].mean()),
        "test_reconstruction": float(test["reconstruction"].mean()),
        "test_kl": float(test["kl"].mean()),
        "active_units": active_units(test["mu"]),
    }
    per_image = {k: np.asarray(test[k], dtype=np.float64) for k in ("neg_elbo", "reconstruction", "kl", "mu")}
    return summary, per_image


def nats_intervals(per_image: dict, *, seed: int) -> dict:
    """95 % bootstrap intervals of the mean test nats (negative ELBO and reconstruction) over the test images."""
    return {
        f"test_{k}_ci95": list(bootstrap_ci(mean_of(per_image[k]), len(per_image[k]), seed=seed))
        for k in ("neg_elbo", "reconstruction")
    }


def pair(x_test: torch.Tensor, shown: np.ndarray, cfg: Config, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The interpolation's two test images: two of the examples, so two classes where there are labels."""
    i, j = (int(shown[int(k) % len(shown)]) for k in cfg.figures.pair)
    return x_test[i : i + 1].to(device), x_test[j : j + 1].to(device)


def answer_numbers(
    models: dict,
    *,
    kind: str,
    beta: float,
    x_test: torch.Tensor,
    shown: np.ndarray,
    cfg: Config,
    device,
    x_train: torch.Tensor,
) -> dict:
    """The numbers questions 15-18 are answered with, kept in metrics.json: reconstruction error against
    the test images' own variance, how much prior samples vary (per beta of the main model kind, the
    samples the report shows), and the model's bound halfway along the latent path and the pixel blend."""
    main, seed = models[(kind, beta)], cfg.seed
    recon = reconstruct(main, x_test.to(device)).cpu()
    latent, blend = interpolate(main, *pair(x_test, shown, cfg, device))
    mid = score(
        main,
        torch.cat([latent[5:6], blend[5:6]]),
        device,
        likelihood=cfg.loss.likelihood,
        sigma=cfg.loss.sigma,
        samples=10,
        seed=seed,
    )["neg_elbo"]  # a = 0.5
    return {
        "reconstruction_pixel_mse": pixel_mse(recon, x_test),
        "test_pixel_variance": float(x_test.var(dim=0).mean()),
        "test_pixel_spread": pixel_spread(x_test),
        "prior_sample_spread": {
            f"{b:g}": pixel_spread(prior_samples(m, cfg.figures.samples, seed, device).cpu())
            for (k, b), m in sorted(models.items())
            if k == kind
        },
        "interpolation_mid_neg_elbo": {"latent": float(mid[0]), "pixels": float(mid[1])},
        "interpolation_nearest_training": nearest_training(latent[[0, 5, -1]].cpu(), x_train),
    }


def nearest_training(frames: torch.Tensor, x_train: torch.Tensor) -> dict:
    """How far the latent path's start, middle and end decodes lie from the nearest training image (root mean
    squared pixel difference, pixels in [0, 1]): a path that leaves the data has a middle far from all of them."""
    distance = torch.cdist(frames.flatten(1).float(), x_train.flatten(1).float()).min(dim=1).values
    rms = (distance / frames[0].numel() ** 0.5).tolist()
    return dict(zip(("start", "middle", "end"), rms))


def predict(
    root: Path, cfg: Config, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto"
) -> dict:
    """Each new image's negative ELBO under the main variant, a density score: higher means less
    like the training faces. Averaged over 10 draws of z."""
    dev = resolve_device(device)
    size = metrics["image_size"]
    data = load_images(data_path, size=(size, size), skip_bad=cfg.data.skip_bad)
    x = to_unit_tensor(data.images, size, source=data.source)
    if x.shape[1] != metrics["channels"]:
        raise InputError(
            f"{data_path}: images have {x.shape[1]} channel(s) but the run was trained on "
            f"{metrics['channels']}; convert them first"
        )
    model = build_vae(metrics["model"], in_shape=tuple(x.shape[1:]), model_cfg=cfg.model)
    load_weights(model, root, variant_name(metrics["model"], metrics["beta"]))
    s = score(model.to(dev), x, dev, likelihood=cfg.loss.likelihood, sigma=cfg.loss.sigma, samples=10, seed=cfg.seed)
    lines = ["id,neg_elbo,reconstruction,kl"] + [
        f"{i},{s['neg_elbo'][i]:.3f},{s['reconstruction'][i]:.3f},{s['kl'][i]:.3f}" for i in range(len(x))
    ]
    atomic_write_bytes(out, ("\n".join(lines) + "\n").encode())
    return {
        "n_images": len(x),
        "predictions": str(out),
        "mean_neg_elbo": float(s["neg_elbo"].mean()),
        "train_run_test_neg_elbo": metrics["test_neg_elbo"],
    }
