"""The generate study (NCTU DL 2020 HW2): variational autoencoders on face images, their negative
ELBO in nats, reconstructions, samples and interpolations, and the effect of the KL weight beta
over a grid of models and betas.

config.py holds the schema and defaults, experiment.py the run, sections.py the report (one section per
homework question), answers.py the sentences that answer them."""

from __future__ import annotations

import argparse

import torch

from dlstudy import budget as budgets
from dlstudy.errors import InputError
from dlstudy.models.vae import build_vae
from dlstudy.studies.generate.config import QUICK, Config
from dlstudy.studies.generate.experiment import fit, predict
from dlstudy.studies.generate.sections import CARD, SECTIONS
from dlstudy.train import TRAINING_BYTES_PER_PARAMETER, memory_bytes, resolve_device

__all__ = ["CARD", "QUICK", "SECTIONS", "Config", "fit", "predict"]

NAME, TITLE = "generate", "Variational autoencoders for faces, and what the KL weight does"

FULL_STUDY = "dlstudy generate --data FACES_FOLDER (the anime faces)"
# what follows training, kept out of a time budget (a share, and epochs of the first training):
# the bound on every test image, samples, interpolations and the beta tests
AFTER_TRAINING, AFTER_TRAINING_EPOCHS = 0.1, 2
OBJECTIVE = ("test_neg_elbo", "minimize")  # a sweep's default: nats on the held-out 30 %
PRUNE_ON = ("test_neg_elbo", "minimize")  # the per-epoch value a sweep's pruner watches
# the numbers metrics.json holds: what a sweep's --metric may name
METRICS = (
    "test_neg_elbo",
    "test_reconstruction",
    "test_kl",
    "train_neg_elbo",
    "active_units",
    "reconstruction_pixel_mse",
    "test_pixel_spread",
    "test_pixel_variance",
    "beta",
    "latent_dim",
    "image_size",
    "channels",
    "n_train",
    "n_test",
    "seconds",
    *budgets.METRICS,
)


FLAGS = {"grid.betas": "--beta", "main.beta": "--beta", "data.image_size": "--size"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--beta",
        type=float,
        action="append",
        metavar="B",
        help="KL weight(s) for the grid (repeatable; default 0, 1, 100)",
    )
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


def check_config(cfg: Config) -> None:
    """What the schema cannot see alone: the device, models too large for this machine, the main variant."""
    resolve_device(cfg.device)
    g, main, size = cfg.grid, cfg.main, cfg.data.image_size
    for kind in g.models:  # sizes too small, and too large for this machine's memory
        with torch.device("meta"):  # shapes and sizes, without allocating a full-size model
            model = build_vae(kind, in_shape=(3, size, size), model_cfg=cfg.model)
        need = TRAINING_BYTES_PER_PARAMETER * sum(p.numel() for p in model.parameters())
        if need > memory_bytes():
            raise InputError(
                f"data.image_size {size}: the {kind} VAE would need {need / 2**30:.0f} GiB to train (weights, "
                f"gradients and Adam's state) of this machine's {memory_bytes() / 2**30:.0f} GiB; "
                "choose a smaller data.image_size"
            )
    if main.model not in g.models or main.beta not in g.betas:
        raise InputError(
            f"main variant {main.model} at beta {main.beta} is not in the grid "
            f"(models {g.models}, betas {g.betas}); set main.model and main.beta to one of them"
        )


def summary(metrics: dict) -> str:
    return (
        f"{metrics['model']} VAE, beta {metrics['beta']:g}: test negative ELBO {metrics['test_neg_elbo']:.1f} nats "
        f"(reconstruction {metrics['test_reconstruction']:.1f} + KL {metrics['test_kl']:.1f}), "
        f"{metrics['active_units']} of {metrics['latent_dim']} units active"
    )
