"""The cluster study's run: every encoder trained, every reduction chain and clustering method scored,
the variant selected (on public labels, or label-free); and predict."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlstudy.analysis.architecture import layer_table
from dlstudy.analysis.cluster_grid import Grid, Trained, parse_k, slug
from dlstudy.analysis.clustering import assign_new, id_label_csv
from dlstudy.analysis.label_free import prototypes
from dlstudy.analysis.metrics import apply_matching, best_matching, clustering_scores
from dlstudy.analysis.reduction import two_d_views
from dlstudy.data.images import (
    ImageSet,
    figure_indices,
    group_labels,
    load_data,
    n_clusters_for,
    read_numpy,
    to_unit_tensor,
)
from dlstudy.errors import InputError
from dlstudy.models.encoders import build_encoder, encode, training_for
from dlstudy.runs import atomic_write_bytes, fingerprint, load_weights
from dlstudy.studies.cluster import inference
from dlstudy.studies.cluster.config import Config
from dlstudy.studies.protocol import Results
from dlstudy.train import resolve_device, train_variant

log = logging.getLogger("dlstudy")

LABELLED = ("accuracy", "private_accuracy", "nmi", "ari")  # scored for a variant, raw KMeans and the best autoencoder
TERMINAL_COLUMNS = [
    "encoder",
    "reduction",
    "clustering",
    "reduced_dim",
    "reconstruction_mse",
    "label_free",
    "accuracy",
    "public_accuracy",
    "private_accuracy",
    "nmi",
    "seconds",
]


@dataclass(kw_only=True)
class ClusterResults(Results):
    data: ImageSet  # labels -1: unlabelled
    x: torch.Tensor  # (N, C, H, W) in [-1, 1], what the encoders saw
    rows: list[dict]  # the raw-pixel baseline, then every variant
    best: int  # index of the selected variant among rows[1:]
    free: int  # index of the label-free pick among rows[1:]
    assignments: dict[str, np.ndarray]  # "encoder|chain|method" -> cluster per image
    encoders: dict[str, torch.nn.Module]
    trained: dict[str, Trained]  # encoder spec -> its history, features and reconstruction errors
    curve: list[dict]  # the k curve, when k was chosen
    protos: list[dict]  # per cluster: size, prototypes, outliers
    views: tuple[np.ndarray, dict]  # the selected encoder's 2-D views: (image indices shown, title -> (n, 2))
    layers: dict[str, list[dict]]
    figure_indices: list[int]
    device: torch.device

    histories = property(lambda self: {spec: t.history for spec, t in self.trained.items()})
    latents = property(lambda self: {spec: t.latents for spec, t in self.trained.items()})
    errors = property(lambda self: {spec: t.errors for spec, t in self.trained.items()})
    known = property(lambda self: self.data.labels >= 0 if self.data.labels is not None else None)
    labelled = property(lambda self: self.data.labels is not None and bool(self.known.any()))
    class_names = property(lambda self: self.data.label_names())

    def name(self, i: int) -> str:
        return self.class_names[self.data.labels[i]] if self.labelled and self.data.labels[i] >= 0 else f"#{i}"

    def best_of(self, spec: str | None = None) -> np.ndarray:
        """The clusters of the selected variant, or of encoder `spec`'s best chain by public accuracy."""
        row = (
            self.rows[self.best + 1]
            if spec is None
            else max((x for x in self.rows[1:] if x["encoder"] == spec), key=lambda x: x["public_accuracy"])
        )
        return self.assignments[f"{row['encoder']}|{row['reduction']}|{row['clustering']}"]


def train_encoder(run, cfg: Config, spec: str, model, x: torch.Tensor, *, device, remaining: int) -> list[dict]:
    """One encoder of the grid trained on the images (its time budget shared with the `remaining - 1` after it):
    its history."""
    loss, settings, epochs_key = training_for(model, cfg)
    options = dict(device=device, settings=settings, remaining=remaining, epochs_key=epochs_key)
    return train_variant(run, cfg, model, loss, f"encoder-{slug(spec)}", train=(x,), **options).history_


def fit(run, cfg: Config) -> ClusterResults:
    device = resolve_device(cfg.device)
    data, n_main = load_data(cfg.data, cfg.seed)
    fixed, ks = parse_k(cfg.clustering.n_clusters)
    k = n_clusters_for(fixed, data) if not ks else min(max(n_clusters_for(None, data), ks[0]), ks[-1])
    ks = [c for c in ks if 2 * c <= len(data)]  # the k curve stops where clusters would hold one image
    shown = figure_indices(list(cfg.figures.indices), data)  # checked before any training
    x = to_unit_tensor(data.images) * 2 - 1  # the autoencoders' tanh range
    encoders = {
        spec: build_encoder(spec, in_shape=tuple(x.shape[1:]), model_cfg=cfg.model) for spec in cfg.grid.encoders
    }
    log.info(
        "cluster: %d images %s from %s, K=%s, device %s",
        len(data),
        data.images.shape[1:],
        data.source,
        k if not ks else f"{ks[0]}-{ks[-1]}",
        device,
    )
    grid = Grid(run=run, cfg=cfg, labels=data.labels)
    encoded = {}  # every encoder trains first, then the reductions run: a time budget plans the trainings together
    trainable = [spec for spec, model in encoders.items() if model.trains]
    for spec, model in encoders.items():
        t0 = time.time()
        remaining = len(trainable) - trainable.index(spec) if model.trains else 0
        history = train_encoder(run, cfg, spec, model, x, device=device, remaining=remaining) if remaining else []
        encoded[spec] = (history, *encode(model.to(device), x, device), time.time() - t0)
    trained = {}
    for spec, (history, z, err, seconds) in encoded.items():
        features, columns = grid.reduce(spec, z, err, seconds=seconds)
        trained[spec] = Trained(
            history=history, latents=z, errors=err, features=features, columns=columns, seconds=seconds
        )
    pixels = data.images.reshape(len(data), -1) / 255.0
    rows, assignments = grid.evaluate(k, pixels, trained)
    curve = []
    if ks:  # the k curve on the features of the label-free pick, then the grid again at the chosen k
        pick = max(rows[1:], key=lambda r: r["label_free"])
        best = trained[pick["encoder"]]
        chosen, curve = grid.choose_k(best.features[pick["reduction"]], best.latents, ks)
        if chosen != k:
            k = chosen
            rows, assignments = grid.evaluate(k, pixels, trained)
    return select(
        run,
        cfg,
        data=data,
        n_main=n_main,
        x=x,
        figure_indices=shown,
        rows=rows,
        assignments=assignments,
        encoders=encoders,
        trained=trained,
        device=device,
        k=k,
        curve=curve,
    )


def select(
    run,
    cfg: Config,
    *,
    data: ImageSet,
    rows: list[dict],
    assignments: dict,
    k: int,
    trained: dict[str, Trained],
    n_main: int,
    x: torch.Tensor,
    encoders: dict,
    device,
    curve: list[dict],
    figure_indices: list[int],
) -> ClusterResults:
    """With labels the leaderboard way (best public accuracy; the private half untouched), else the label-free pick."""
    variants, labelled = rows[1:], data.labels is not None and bool((data.labels >= 0).any())
    free = max(range(len(variants)), key=lambda i: variants[i]["label_free"])
    best = max(range(len(variants)), key=lambda i: variants[i]["public_accuracy"]) if labelled else free
    row = variants[best]
    clusters = assignments[f"{row['encoder']}|{row['reduction']}|{row['clustering']}"]
    run.write_bytes("predictions.csv", id_label_csv(clusters[:n_main]))  # the --data images, not the sample
    mapping = best_matching(data.labels[data.labels >= 0], clusters[data.labels >= 0]) if labelled else {}
    run.save_arrays(
        "predict.npz",
        latents=trained[row["encoder"]].latents,
        clusters=clusters,
        mapping=np.array(sorted(mapping.items()), dtype=np.int64).reshape(-1, 2),
    )
    metrics = cluster_metrics(rows, best=best, free=free, labelled=labelled, encoders=encoders)
    if labelled:
        metrics.update(inference.cluster_intervals(data.labels, clusters, seed=cfg.seed))
    metrics.update(n_images=len(data), n_clusters=k, image_shape=list(data.images.shape[1:]), data=data.source)
    metrics["encoder_seconds"] = {spec: round(t.seconds, 1) for spec, t in trained.items()}  # training + encoding
    layers = {spec: layer_table(m, x[:2].to(device)) for spec, m in encoders.items()}
    z, features = trained[row["encoder"]].latents, trained[row["encoder"]].features
    views = two_d_views(
        z, {c: f for c, f in features.items() if f.shape[1] == 2}, points=cfg.figures.map_points, seed=cfg.seed
    )
    family = inference.paired(rows, assignments, data.labels, best=best, free=free, seed=cfg.seed) if labelled else {}
    family.update(inference.reconstruction({s: t.errors for s, t in trained.items()}, seed=cfg.seed))
    results = ClusterResults(
        family=family,
        metrics=metrics,
        data=data,
        rows=rows,
        best=best,
        assignments=assignments,
        layers=layers,
        views=views,
        table=rows,
        columns=TERMINAL_COLUMNS,
        trained=trained,
        free=free,
        protos=prototypes(features[row["reduction"]], clusters),
        x=x,
        encoders=encoders,
        device=device,
        curve=curve,
        figure_indices=figure_indices,
    )
    results.family.update(inference.error_tests(results, seed=cfg.seed))
    return results


SELECTED = (
    "accuracy",
    "public_accuracy",
    "private_accuracy",
    "nmi",
    "ari",
    "reconstruction_mse",
    "silhouette",
    "neighbour_consistency",
    "size_entropy",
    "n_labelled",
)  # the selected variant's numbers in metrics.json


def cluster_metrics(rows: list[dict], *, best: int, free: int, labelled: bool, encoders: dict) -> dict:
    """The selected variant's numbers beside raw KMeans', the label-free pick's, and the best autoencoder's."""
    variants, row = rows[1:], rows[1:][best]
    metrics = {
        **{key: row.get(key) for key in SELECTED},
        **{f"raw_kmeans_{key}": rows[0].get(key) for key in LABELLED},
        **{f"label_free_pick_{key}": variants[free].get(key) for key in ("accuracy", "private_accuracy")},
        "label_free_pick": " + ".join(variants[free][c] for c in ("encoder", "reduction", "clustering")),
        "best_encoder": row["encoder"],
        "best_reduction": row["reduction"],
        "best_clustering": row["clustering"],
        "selected_by": "public accuracy" if labelled else "label-free score (no labels)",
    }
    reconstructing = [v for v in variants if encoders[v["encoder"]].reconstructs]
    if labelled and reconstructing:  # the reports' road, for comparison with the selected one
        ae = max(reconstructing, key=lambda v: v["public_accuracy"])
        metrics["best_autoencoder"] = f"{ae['encoder']} + {ae['reduction']} + {ae['clustering']}"
        metrics.update({f"best_autoencoder_{key}": ae[key] for key in LABELLED})
    if not (chosen := encoders[row["encoder"]]).trains:  # predict checks that the pretrained weights are still these
        facts = fingerprint(chosen.weights)  # the resolved path, size and SHA-256
        metrics.update(encoder_weights=facts["path"], encoder_weights_sha256=facts["sha256"])
    return metrics


def predict(
    root: Path, cfg: Config, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto"
) -> dict:
    """New images to the run's clusters: the selected encoder's features, a vote of the nearest training ones."""
    dev = resolve_device(device)
    d = cfg.data.model_copy(update={"path": data_path, "labels": labels, "limit": 0, "val_path": None, "groups": []})
    data, _ = load_data(d, cfg.seed)  # the run's groups apply to labels the new data has
    g = cfg.data
    data = group_labels(data, g.groups, g.group_names) if data.labels is not None and g.groups else data
    saved = read_numpy(root / "predict.npz", need=("latents", "clusters", "mapping"), hint="; rerun the study")
    spec, expected, mapping = metrics["best_encoder"], tuple(metrics["image_shape"]), saved["mapping"]
    if data.images.shape[1:] != expected:
        raise InputError(
            f"{data_path}: images are {data.images.shape[1:]} (H, W, C) but the run was trained on "
            f"{expected}; resize or convert them first"
        )
    x = to_unit_tensor(data.images) * 2 - 1
    model = build_encoder(spec, in_shape=tuple(x.shape[1:]), model_cfg=cfg.model)
    if not model.trains and fingerprint(model.weights)["sha256"] != metrics["encoder_weights_sha256"]:
        raise InputError(
            f"{model.weights}: not the weights this run clustered with (their SHA-256 differs); give those"
        )
    z, _ = encode((load_weights(model, root, f"encoder-{slug(spec)}") if model.trains else model).to(dev), x, dev)
    clusters = assign_new(saved["latents"], saved["clusters"], z)
    atomic_write_bytes(out, id_label_csv(clusters))
    result = {"n_images": len(data), "predictions": str(out)}
    if data.labels is not None and len(mapping) and (data.labels >= 0).any():  # -1: unlabelled, not scored
        known = data.labels >= 0
        result["accuracy_with_run_matching"] = float(
            np.mean(apply_matching(clusters, dict(mapping.tolist()))[known] == data.labels[known])
        )
        result["accuracy_best_matching"] = clustering_scores(data.labels, clusters)["accuracy"]
    return result
