"""The cluster study (NTU ML 2020 HW9): an encoder -> dimension reduction -> clustering, over a grid of
encoders, reduction chains and clustering methods, beside KMeans on raw pixels.

Encoders are the reports' convolutional autoencoders ('pool', 'dense:<size>'), a SimCLR or BYOL encoder
('simclr', 'byol') trained self-supervised on the same images, or a frozen pretrained timm network
('timm:<name>'); clustering is a scikit-learn method or SCAN,
which trains clustering heads on the features' nearest neighbours.

config.py holds the schema and defaults, experiment.py the run, sections.py the report (one section per
homework question, and two for reading clusters without labels), answers.py the sentences."""

from __future__ import annotations

import argparse

from dlstudy.analysis.cluster_grid import check_grid
from dlstudy import budget as budgets
from dlstudy.errors import InputError
from dlstudy.models.encoders import check_encoders
from dlstudy.studies.cluster.config import QUICK, Config
from dlstudy.studies.cluster.experiment import LABELLED, fit, predict
from dlstudy.studies.cluster.sections import CARD, SECTIONS
from dlstudy.train import resolve_device

__all__ = ["CARD", "QUICK", "SECTIONS", "Config", "fit", "predict"]

NAME, TITLE = "cluster", "Image clustering: encoder, dimension reduction, clustering"

FULL_STUDY = "dlstudy cluster --data trainX.npy --val-data valX.npy --val-labels valY.npy (HW9's files)"
# what follows training, kept out of a time budget (a share, and epochs of the first training):
# the reductions (t-SNE, UMAP), the clusterings of every grid cell, the label-free pick and maps;
# measured on CIFAR-10's 10,000 images: 178 s after encoder epochs of 5.4 s
AFTER_TRAINING, AFTER_TRAINING_EPOCHS = 0.1, 35
OBJECTIVE = (
    "private_accuracy",
    "maximize",
)  # a sweep's default: the matching of clusters to labels on the held-out half
PRUNE_ON = ("loss", "minimize")  # the per-epoch value a sweep's pruner watches
METRICS = (
    *LABELLED,
    "public_accuracy",
    "reconstruction_mse",
    "silhouette",
    "neighbour_consistency",
    "size_entropy",
    "n_labelled",
    *(f"{who}_{s}" for who in ("raw_kmeans", "best_autoencoder") for s in LABELLED),  # for --metric
    "label_free_pick_accuracy",
    "label_free_pick_private_accuracy",
    "n_images",
    "n_clusters",
    "seconds",
    *budgets.METRICS,
)


FLAGS = {
    "data.labels": "--labels",
    "data.val_path": "--val-data",
    "data.val_labels": "--val-labels",
    "clustering.n_clusters": "--clusters",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--labels", help="labels file (.npy, .csv, .txt) for the images in --data; -1 or empty: unlabelled"
    )
    parser.add_argument(
        "--val-data", metavar="PATH", help="a labelled sample to cluster with the data and score (valX.npy)"
    )
    parser.add_argument("--val-labels", metavar="PATH", help="the labels of --val-data (valY.npy)")
    parser.add_argument(
        "--clusters",
        metavar="K",
        help="number of clusters: K, 'auto' (2-20) or a range such as 2-20 "
        "(chosen by silhouette, shown as a curve); default: the number of labels, else 2",
    )


def flag_overrides(args: argparse.Namespace) -> dict:
    out: dict = {}
    for flag, key in (("labels", "labels"), ("val_data", "val_path"), ("val_labels", "val_labels")):
        if getattr(args, flag, None):
            out.setdefault("data", {})[key] = getattr(args, flag)
    if (k := getattr(args, "clusters", None)) is not None:
        out["clustering"] = {"n_clusters": int(k) if str(k).isdigit() else k}
    return out


def check_config(cfg: Config) -> None:
    """What can be checked before any data is read or folder made."""
    resolve_device(cfg.device)
    check_grid(cfg)
    check_encoders(cfg)
    if bool(cfg.data.val_path) != bool(cfg.data.val_labels):
        raise InputError("--val-data and --val-labels go together: the sample and its labels")


def summary(metrics: dict) -> str:
    if metrics.get("accuracy") is None:
        return f"{metrics['n_images']} images, {metrics['n_clusters']} clusters (no labels)"
    private = metrics.get("private_accuracy")  # leads: the public half chose the variant, so its accuracy flatters it
    lead = (
        f"accuracy {metrics['accuracy']:.3f}"
        if private is None
        else (f"private-half accuracy {private:.3f} (both halves {metrics['accuracy']:.3f})")
    )
    return (
        f"{lead} vs raw-pixel KMeans {metrics['raw_kmeans_accuracy']:.3f}; "
        f"{metrics['best_encoder']} + {metrics['best_reduction']} + {metrics['best_clustering']}"
    )
