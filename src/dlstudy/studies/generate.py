"""The generate study (NCTU DL 2020 HW2): variational autoencoders on face images, their negative
ELBO in nats, reconstructions, samples and interpolations, and the effect of the KL weight beta
over a grid of models and betas."""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlstudy import plots
from dlstudy.analysis.architecture import layer_table
from dlstudy.analysis.generative import (active_units, interpolate, pixel_mse, pixel_spread, posterior_samples,
                                         prior_samples, reconstruct, score)
from dlstudy.answers import generate as answers
from dlstudy.data.images import examples_across_classes, load_images, subsample, to_uint8, to_unit_tensor
from dlstudy.defaults.generate import DEFAULTS as DEFAULTS, QUICK as QUICK  # every key commented there
from dlstudy.errors import InputError
from dlstudy.models.vae import VAE, ELBOLoss, build_vae
from dlstudy.report import Report
from dlstudy.runs import atomic_write_bytes, load_weights
from dlstudy.studies.protocol import Results, section
from dlstudy.train import TRAINING_BYTES_PER_PARAMETER, memory_bytes, resolve_device, train_variant

log = logging.getLogger("dlstudy")

NAME, TITLE = "generate", "Variational autoencoders for faces, and what the KL weight does"

OBJECTIVE = ("test_neg_elbo", "minimize")  # a sweep's default: nats on the held-out 30 %
PRUNE_ON = ("test_neg_elbo", "minimize")  # the per-epoch value a sweep's pruner watches
# the numbers metrics.json holds: what a sweep's --metric may name
METRICS = ("test_neg_elbo", "test_reconstruction", "test_kl", "train_neg_elbo", "active_units", "reconstruction_pixel_mse",
           "test_pixel_spread", "test_pixel_variance", "beta", "latent_dim", "image_size", "channels", "n_train",
           "n_test", "seconds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--beta", type=float, action="append", metavar="B",
                        help="KL weight(s) for the grid (repeatable; default 0, 1, 100)")
    parser.add_argument("--size", type=int, metavar="PIXELS", help="image side after resizing (default 32)")


def flag_overrides(args: argparse.Namespace) -> dict:
    out: dict = {}
    if getattr(args, "beta", None):
        out["grid"] = {"betas": args.beta}
        if len(args.beta) == 1:
            out["main"] = {"beta": args.beta[0]}
    if getattr(args, "size", None) is not None:
        out["data"] = {"image_size": args.size}
    return out


def check_config(cfg: dict) -> None:
    resolve_device(cfg["device"])
    g, loss, main = cfg["grid"], cfg["loss"], cfg["main"]
    if not g["models"] or not g["betas"]:
        raise InputError("grid.models and grid.betas need at least one entry each, e.g. [conv] and [1]")
    bad = [b for b in g["betas"] if not isinstance(b, (int, float)) or b < 0]
    if bad:
        raise InputError(f"beta must be >= 0 (the KL weight), got {bad}")
    size = cfg["data"]["image_size"]
    if not isinstance(size, int) or size < 4:
        raise InputError(f"data.image_size must be a whole number of pixels >= 4, got {size}")
    for kind in g["models"]:  # unknown kinds, sizes too small, and too large for this machine's memory
        with torch.device("meta"):  # shapes and sizes, without allocating a full-size model
            model = build_vae(kind, in_shape=(3, size, size), model_cfg=cfg["model"])
        need = TRAINING_BYTES_PER_PARAMETER * sum(p.numel() for p in model.parameters())
        if need > memory_bytes():
            raise InputError(f"data.image_size {size}: the {kind} VAE would need {need / 2**30:.0f} GiB to train (weights, "
                             f"gradients and Adam's state) of this machine's {memory_bytes() / 2**30:.0f} GiB; "
                             "choose a smaller data.image_size")
    if main["model"] not in g["models"] or float(main["beta"]) not in [float(b) for b in g["betas"]]:
        raise InputError(f"main variant {main['model']} at beta {main['beta']} is not in the grid "
                         f"(models {g['models']}, betas {g['betas']}); set main.model and main.beta to one of them")
    if loss["likelihood"] not in ("bernoulli", "gaussian"):
        raise InputError(f"loss.likelihood must be bernoulli or gaussian, not '{loss['likelihood']}'")
    if loss["warmup"] not in ("none", "linear", "cyclical"):
        raise InputError(f"loss.warmup must be none, linear or cyclical, not '{loss['warmup']}'")
    if loss["sigma"] <= 0 or loss["warmup_epochs"] < 1:
        raise InputError("loss.sigma must be > 0 and loss.warmup_epochs >= 1")
    if not 0 < cfg["data"]["test_fraction"] < 1:
        raise InputError(f"data.test_fraction must lie in (0, 1), got {cfg['data']['test_fraction']}")


# the report: one section per homework question ---------------------------------------------------
@section("Preprocessing and the network architecture", question=13)
def architecture(report: Report, r: GenerateResults, cfg: dict) -> None:
    m = r.metrics
    report.paragraph(f"{m['n_train']} training and {m['n_test']} test images from {m['data']} "
                     f"({cfg['data']['test_fraction']:.0%} held out with seed {cfg['seed']}), resized to "
                     f"{m['image_size']}x{m['image_size']} with {m['channels']} channel(s), pixels in [0, 1].")
    for kind, rows in r.layers.items():
        report.table(rows, caption=f"The {kind} VAE: layers in the order they run, output shape for one image "
                                   "(channels x height x width), parameters", collapse=True)
    report.answer(answers.architecture(n_train=m["n_train"], n_test=m["n_test"], size=m["image_size"],
                                       channels=m["channels"], models=r.sizes))


@section("The learning curve of the ELBO", question=14)
def learning_curves(report: Report, r: GenerateResults, cfg: dict) -> None:
    lik = ("Bernoulli likelihood (binary cross-entropy with pixel intensities as targets, as the course reports; for "
           "non-binary pixels this is a score, not a normalised density)" if cfg["loss"]["likelihood"] == "bernoulli"
           else f"Gaussian likelihood with standard deviation {cfg['loss']['sigma']:g}")
    report.paragraph(f"Negative ELBO per image in nats = reconstruction (-log p(x|z), {lik}) + KL(q(z|x) || N(0, I)), "
                     "always with weight 1, so variants trained with different beta are scored on the same bound.")
    report.figure(plots.curve_grid(r.histories, {"negative ELBO": "neg_elbo", "reconstruction": "reconstruction",
                                                 "KL": "kl"}, ylabel="nats per image"), "curves",
                  "One column per variant, one row per quantity, each on its own linear axis: training (during "
                  "training) and test per epoch. The KL row shows how much each beta lets the codes carry.")
    report.answer(answers.learning_curve(r.histories[variant_name(r.main_kind, r.main_beta)],
                                         f"{r.main_kind} VAE at beta {r.main_beta:g}"))


@section("Reconstructions of test images", question=15)
def reconstructions(report: Report, r: GenerateResults, cfg: dict) -> None:
    originals = r.x_test[r.shown].to(r.device)
    recon = reconstruct(r.main, originals)
    report.figure(plots.image_rows([to_uint8(originals), to_uint8(recon)], row_titles=["original", "reconstruction"]),
                  "reconstructions", "Test images over their reconstructions (the decoder's mean at the posterior "
                  "mean): what the codes keep, and the fine detail they lose.")
    m = r.metrics
    report.answer(answers.reconstructions(nats=m["test_reconstruction"], mse=m["reconstruction_pixel_mse"],
                                          variance=m["test_pixel_variance"]))


@section("Images decoded from samples of the prior", question=16)
def samples(report: Report, r: GenerateResults, cfg: dict) -> None:
    drawn = prior_samples(r.main, cfg["figures"]["samples"], cfg["seed"], r.device)
    report.figure(plots.image_rows([to_uint8(drawn)]), "prior_samples",
                  f"{len(drawn)} decodes of z drawn from the prior N(0, I): new images, not reconstructions.")
    post = to_uint8(posterior_samples(r.main, r.x_test[r.shown[:1]].to(r.device), cfg["figures"]["posterior_samples"],
                                      cfg["seed"]))
    report.figure(plots.image_rows([np.concatenate([to_uint8(r.x_test[r.shown[:1]]), post])],
                                   captions=[["test image"] + ["z ~ q(z|x)"] * len(post)]), "posterior_samples",
                  "Samples around one test image's posterior: how much the code of one image is allowed to vary.")
    spread = r.metrics["prior_sample_spread"]
    report.answer(answers.prior_samples(samples_spread=spread[f"{r.main_beta:g}"], test_spread=r.metrics["test_pixel_spread"]))


@section("Interpolation between two real images", question=17)
def interpolation(report: Report, r: GenerateResults, cfg: dict) -> None:
    x1, x2 = pair(r.x_test, r.shown, cfg, r.device)
    latent, blend = interpolate(r.main, x1, x2)
    a = [f"a={v:.1f}" for v in np.linspace(0, 1, 11)]
    ends = [to_uint8(x1), to_uint8(x2)]
    report.figure(plots.image_rows([np.concatenate([ends[0], to_uint8(latent), ends[1]]),
                                    np.concatenate([ends[0], to_uint8(blend), ends[1]])],
                                   row_titles=["latent", "pixels"], captions=[["x1"] + a + ["x2"]]), "interpolation",
                  "Decoded points on the line between two test images' posterior means (top) against the pixel blend "
                  "(1 - a) x1 + a x2 (bottom): the top row should stay one plausible image, the bottom is a double exposure.")
    mid = r.metrics["interpolation_mid_neg_elbo"]
    report.answer(answers.interpolation(latent_mid=mid["latent"], blend_mid=mid["pixels"]))


@section("KL weight 0, 1 and 100: what changes and why", question=18)
def kl_weight(report: Report, r: GenerateResults, cfg: dict) -> None:
    key = ["model", "beta", "test_neg_elbo", "test_reconstruction", "test_kl", "active_units"]
    report.table(r.rows, highlight=r.rows.index(r.main_row), first=key,
                 caption="Every variant (highlighted: the main one). Active units: latent dimensions whose posterior "
                         "mean has variance above 0.01 across the test images.")
    betas = sorted(b for (k, b) in r.models if k == r.main_kind)
    originals = r.x_test[r.shown].to(r.device)
    report.figure(plots.image_rows([to_uint8(originals)] + [to_uint8(reconstruct(r.models[(r.main_kind, b)], originals))
                                                            for b in betas],
                                   row_titles=["original"] + [f"beta {b:g}" for b in betas]), "beta_reconstructions",
                  f"Reconstructions of the same test images by the {r.main_kind} VAE at each beta: sharper at small "
                  "beta, blurrier as beta grows.")
    drawn = {b: prior_samples(r.models[(r.main_kind, b)], 10, cfg["seed"], r.device) for b in betas}  # the first 10 of each
    report.figure(plots.image_rows([to_uint8(drawn[b]) for b in betas], row_titles=[f"beta {b:g}" for b in betas]),
                  "beta_prior_samples", f"Prior samples from the {r.main_kind} VAE at each beta (the same z for every "
                  "row).")
    report.answer(answers.kl_weight(r.rows, r.main_kind, {float(b): v for b, v in r.metrics["prior_sample_spread"].items()}))


SECTIONS = [architecture, learning_curves, reconstructions, samples, interpolation, kl_weight]
CARD = [("test negative ELBO (nats)", "test_neg_elbo", None), ("reconstruction (nats)", "test_reconstruction", None),
        ("KL (nats)", "test_kl", None), ("active units", "active_units", "latent_dim")]


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


# the run -----------------------------------------------------------------------------------------
def variant_name(kind: str, beta: float) -> str:
    return f"vae-{kind}-beta{float(beta):g}"


def split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def fit(run, cfg: dict) -> GenerateResults:
    device = resolve_device(cfg["device"])
    d, size = cfg["data"], cfg["data"]["image_size"]
    data = subsample(load_images(d["path"], size=(size, size), skip_bad=d["skip_bad"]), d["limit"], cfg["seed"])
    x = to_unit_tensor(data.images, size, source=data.source)
    tr, te = split(len(x), d["test_fraction"], cfg["seed"])
    log.info("generate: %d training and %d test images %s from %s; device %s", len(tr), len(te), tuple(x.shape[1:]),
             data.source, device)
    rows, models, histories = [], {}, {}
    for kind in cfg["grid"]["models"]:
        for beta in map(float, cfg["grid"]["betas"]):
            name = variant_name(kind, beta)
            torch.manual_seed(cfg["seed"])
            model = build_vae(kind, in_shape=tuple(x.shape[1:]), model_cfg=cfg["model"])
            t0 = time.time()
            trainer = train_variant(run, cfg, model, ELBOLoss(beta=beta, **cfg["loss"]), name, train=(x[tr],),
                                    device=device, test=(x[te],))
            models[(kind, beta)], histories[name] = model, trainer.history_
            rows.append({"model": kind, "beta": beta, "parameters": sum(p.numel() for p in model.parameters()),
                         "epochs": trainer.epoch_, **scores(model, x[tr], x[te], cfg, device),
                         "latent_dim": model.latent_dim, "seconds": round(time.time() - t0, 1)})
    main_kind, main_beta = cfg["main"]["model"], float(cfg["main"]["beta"])
    main = next(r for r in rows if r["model"] == main_kind and r["beta"] == main_beta)
    labels = data.labels[te] if data.labels is not None else None
    shown = examples_across_classes(labels, cfg["figures"]["n"], cfg["seed"], total=len(te))
    metrics = {
        **{k: main[k] for k in ("test_neg_elbo", "test_reconstruction", "test_kl", "active_units", "train_neg_elbo")},
        "beta": main_beta, "model": main_kind, "latent_dim": main["latent_dim"], "image_size": size,
        "channels": int(x.shape[1]), "likelihood": cfg["loss"]["likelihood"], "n_train": len(tr), "n_test": len(te),
        "data": data.source, "grid": rows,
        "example_classes": None if labels is None else [data.class_names[c] if data.class_names else int(c)
                                                        for c in labels[shown]],
    }
    metrics.update(answer_numbers(models, kind=main_kind, beta=main_beta, x_test=x[te], shown=shown, cfg=cfg, device=device))
    kinds = {k: next(m for (kk, _), m in models.items() if kk == k) for k in cfg["grid"]["models"]}
    return GenerateResults(
        metrics=metrics, rows=rows, models=models, histories=histories, x_test=x[te], shown=shown, device=device,
        layers={k: layer_table(m, x[te][:2].to(device)) for k, m in kinds.items()},
        sizes={k: {"parameters": sum(p.numel() for p in m.parameters()), "latent_dim": m.latent_dim}
               for k, m in kinds.items()},
        main_kind=main_kind, main_beta=main_beta, table=rows,
        columns=["model", "beta", "train_neg_elbo", "test_neg_elbo", "test_reconstruction", "test_kl", "active_units",
                 "seconds"])


def scores(model: VAE, x_train: torch.Tensor, x_test: torch.Tensor, cfg: dict, device) -> dict:
    lik = {"likelihood": cfg["loss"]["likelihood"], "sigma": cfg["loss"]["sigma"]}
    train, test = score(model, x_train, device, **lik), score(model, x_test, device, **lik)
    return {"train_neg_elbo": float(train["neg_elbo"].mean()), "test_neg_elbo": float(test["neg_elbo"].mean()),
            "test_reconstruction": float(test["reconstruction"].mean()), "test_kl": float(test["kl"].mean()),
            "active_units": active_units(test["mu"])}


def pair(x_test: torch.Tensor, shown: np.ndarray, cfg: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The interpolation's two test images: two of the examples, so two classes where there are labels."""
    i, j = (int(shown[int(k) % len(shown)]) for k in cfg["figures"]["pair"])
    return x_test[i : i + 1].to(device), x_test[j : j + 1].to(device)


def answer_numbers(models: dict, *, kind: str, beta: float, x_test: torch.Tensor, shown: np.ndarray, cfg: dict,
                   device) -> dict:
    """The numbers questions 15-18 are answered with, kept in metrics.json: reconstruction error against
    the test images' own variance, how much prior samples vary (per beta of the main model kind, the
    samples the report shows), and the model's bound halfway along the latent path and the pixel blend."""
    main, seed = models[(kind, beta)], cfg["seed"]
    recon = reconstruct(main, x_test.to(device)).cpu()
    latent, blend = interpolate(main, *pair(x_test, shown, cfg, device))
    mid = score(main, torch.cat([latent[5:6], blend[5:6]]), device, likelihood=cfg["loss"]["likelihood"],
                sigma=cfg["loss"]["sigma"], samples=10, seed=seed)["neg_elbo"]  # a = 0.5
    return {"reconstruction_pixel_mse": pixel_mse(recon, x_test), "test_pixel_variance": float(x_test.var(dim=0).mean()),
            "test_pixel_spread": pixel_spread(x_test),
            "prior_sample_spread": {f"{b:g}": pixel_spread(prior_samples(m, cfg["figures"]["samples"], seed, device).cpu())
                                    for (k, b), m in sorted(models.items()) if k == kind},
            "interpolation_mid_neg_elbo": {"latent": float(mid[0]), "pixels": float(mid[1])}}


# predict -----------------------------------------------------------------------------------------
def predict(root: Path, cfg: dict, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto") -> dict:
    """Each new image's negative ELBO under the main variant, a density score: higher means less
    like the training faces. Averaged over 10 draws of z."""
    dev = resolve_device(device)
    size = metrics["image_size"]
    data = load_images(data_path, size=(size, size), skip_bad=cfg["data"]["skip_bad"])
    x = to_unit_tensor(data.images, size, source=data.source)
    if x.shape[1] != metrics["channels"]:
        raise InputError(f"{data_path}: images have {x.shape[1]} channel(s) but the run was trained on "
                         f"{metrics['channels']}; convert them first")
    model = build_vae(metrics["model"], in_shape=tuple(x.shape[1:]), model_cfg=cfg["model"])
    load_weights(model, root, variant_name(metrics["model"], metrics["beta"]))
    s = score(model.to(dev), x, dev, likelihood=cfg["loss"]["likelihood"], sigma=cfg["loss"]["sigma"], samples=10,
              seed=cfg["seed"])
    lines = ["id,neg_elbo,reconstruction,kl"] + [f"{i},{s['neg_elbo'][i]:.3f},{s['reconstruction'][i]:.3f},{s['kl'][i]:.3f}"
                                                 for i in range(len(x))]
    atomic_write_bytes(out, ("\n".join(lines) + "\n").encode())
    return {"n_images": len(x), "predictions": str(out), "mean_neg_elbo": float(s["neg_elbo"].mean()),
            "train_run_test_neg_elbo": metrics["test_neg_elbo"]}


def summary(metrics: dict) -> str:
    return (f"{metrics['model']} VAE, beta {metrics['beta']:g}: test negative ELBO {metrics['test_neg_elbo']:.1f} nats "
            f"(reconstruction {metrics['test_reconstruction']:.1f} + KL {metrics['test_kl']:.1f}), "
            f"{metrics['active_units']} of {metrics['latent_dim']} units active")
