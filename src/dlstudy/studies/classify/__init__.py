"""The classify study (NTU ML HW3): a CNN for facial expressions (FER2013) and the explanations the
course reports show: training history, confusion matrix, saliency maps, filter visualisation,
feature maps and the model's most confident mistakes.

config.py holds the schema and defaults, experiment.py the run, sections.py the report (one section per
homework question), answers.py the sentences that answer them."""

from __future__ import annotations

import argparse
import warnings

from dlstudy.analysis.classification import TTA_VIEWS
from dlstudy import budget as budgets
from dlstudy.errors import InputError
from dlstudy.studies.classify.config import QUICK, Config
from dlstudy.studies.classify.experiment import build_model, fit, predict
from dlstudy.studies.classify.sections import CARD, SECTIONS
from dlstudy.train import resolve_device

__all__ = ["CARD", "QUICK", "SECTIONS", "Config", "fit", "predict"]

NAME, TITLE = "classify", "Facial expressions (FER2013) or any labelled images: a CNN, and what it looks at"

FULL_STUDY = "dlstudy classify --data fer2013.csv"
# what follows training, kept out of a time budget (a share, and epochs of the first training):
# test-time averaging, seven saliency methods, deletion curves and filter images;
# measured on FER2013: 132 s after training where an epoch took 34 s
AFTER_TRAINING, AFTER_TRAINING_EPOCHS = 0.02, 4
OBJECTIVE = ("public_accuracy", "maximize")  # a sweep's default: PublicTest, never seen in training or selection
PRUNE_ON = ("val_loss", "minimize")  # the per-epoch value a sweep's pruner watches
# the numbers metrics.json holds (None where a split is absent): what a sweep's --metric may name
METRICS = (
    "public_accuracy",
    "private_accuracy",
    "val_accuracy",
    "train_accuracy",
    "macro_f1",
    "majority_class_accuracy",
    *(f"{split}_accuracy_{views}_tta" for split in ("public", "private") for views in TTA_VIEWS),
    "epochs",
    "parameters",
    "n_train",
    "n_val",
    "n_public",
    "n_private",
    "image_size",
    "channels",
    "train_sharpness",
    "input_mean",
    "input_std",
    "seconds",
    *budgets.METRICS,
)


FLAGS = {"train.epochs": "--epochs"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, metavar="N", help=f"training epochs (default {Config().train.epochs})")


def flag_overrides(args: argparse.Namespace) -> dict:
    return {"train": {"epochs": args.epochs}} if getattr(args, "epochs", None) is not None else {}


def check_config(cfg: Config) -> None:
    """What the schema cannot see alone: the device, and the keys that must agree with each other."""
    resolve_device(cfg.device)
    e, n_convs = cfg.explain, sum(cfg.model.convs)
    if not -n_convs <= e.layer < n_convs:
        raise InputError(f"explain.layer {e.layer}: the model has {n_convs} conv layers (use 0..{n_convs - 1} or -1)")
    width = cfg.model.channels[e.layer % n_convs] if len(cfg.model.channels) == n_convs else None
    bad = [f for f in e.filter_indices if width and f >= width]
    if bad:
        raise InputError(f"explain.filter_indices {bad}: this layer's filters are 0..{(width or 1) - 1}")
    try:  # the model's own asserts (one entry per block, a size the pooling can halve) as input errors
        with warnings.catch_warnings():  # a throwaway model: torch's warnings about it (a zero width) are noise
            warnings.simplefilter("ignore")
            build_model(cfg, channels=cfg.data.channels, size=cfg.data.image_size or 48, n_classes=7)
    except (AssertionError, ValueError, RuntimeError) as exc:
        raise InputError(
            f"model.channels / model.convs / model.hidden do not make a network: {str(exc)[:120]}"
        ) from None


def summary(metrics: dict) -> str:
    main = "public" if metrics["public_accuracy"] is not None else "val"
    return (
        f"{main} accuracy {metrics[f'{main}_accuracy']:.3f} (macro F1 {metrics['macro_f1']:.3f}) vs majority class "
        f"{metrics['majority_class_accuracy']:.3f}; {metrics['epochs']} epochs, {metrics['parameters']:,} parameters"
    )
