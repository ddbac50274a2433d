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
from dlstudy.analysis.cluster_grid import Grid, check_grid, parse_k, slug
from dlstudy.analysis.label_free import SCORES, prototypes, rank_agreement
from dlstudy.analysis.clustering import assign_new, id_label_csv
from dlstudy.analysis.metrics import (apply_matching, best_matching, class_recall, clustering_scores, error_auc,
                                      map_agreement)
from dlstudy.analysis.reduction import two_d_views
from dlstudy.analysis.scan import mine_neighbours
from dlstudy.answers import cluster as answers
from dlstudy.data.images import (ImageSet, figure_indices, group_labels, load_data, n_clusters_for, read_numpy, to_uint8,
                                 to_unit_tensor)
from dlstudy.defaults.cluster import DEFAULTS as DEFAULTS, QUICK as QUICK  # every key commented there
from dlstudy.errors import InputError
from dlstudy.models.encoders import build_encoder, check_encoders, encode, training_for
from dlstudy.report import Report, pivot
from dlstudy.runs import atomic_write_bytes, load_weights
from dlstudy.studies.protocol import Results, section
from dlstudy.train import resolve_device, train_variant

log = logging.getLogger("dlstudy")

NAME, TITLE = "cluster", "Image clustering: encoder, dimension reduction, clustering"

OBJECTIVE = ("private_accuracy", "maximize")  # a sweep's default: the matching of clusters to labels on the held-out half
PRUNE_ON = ("loss", "minimize")  # the per-epoch value a sweep's pruner watches
LABELLED = ("accuracy", "private_accuracy", "nmi", "ari")  # scored for a variant, raw KMeans and the best autoencoder
METRICS = (*LABELLED, "public_accuracy", "reconstruction_mse", "silhouette", "neighbour_consistency", "size_entropy",
           "n_labelled", *(f"{who}_{s}" for who in ("raw_kmeans", "best_autoencoder") for s in LABELLED),  # for --metric
           "label_free_pick_accuracy", "label_free_pick_private_accuracy", "n_images", "n_clusters", "seconds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", help="labels file (.npy, .csv, .txt) for the images in --data; -1 or empty: unlabelled")
    parser.add_argument("--val-data", metavar="PATH", help="a labelled sample to cluster with the data and score (valX.npy)")
    parser.add_argument("--val-labels", metavar="PATH", help="the labels of --val-data (valY.npy)")
    parser.add_argument("--clusters", metavar="K", help="number of clusters: K, 'auto' (2-20) or a range such as 2-20 "
                        "(chosen by silhouette, shown as a curve); default: the number of labels, else 2")


def flag_overrides(args: argparse.Namespace) -> dict:
    out: dict = {}
    for flag, key in (("labels", "labels"), ("val_data", "val_path"), ("val_labels", "val_labels")):
        if getattr(args, flag, None):
            out.setdefault("data", {})[key] = getattr(args, flag)
    if (k := getattr(args, "clusters", None)) is not None:
        out["clustering"] = {"n_clusters": int(k) if str(k).isdigit() else k}
    return out


def check_config(cfg: dict) -> None:
    """What can be checked before any data is read or folder made."""
    resolve_device(cfg["device"])
    check_grid(cfg)
    check_encoders(cfg)
    if bool(cfg["data"]["val_path"]) != bool(cfg["data"]["val_labels"]):
        raise InputError("--val-data and --val-labels go together: the sample and its labels")


# the report: one section per homework question, and two for reading clusters without labels -------
@section("Two autoencoder families crossed with reductions: reconstruction and accuracy", question=1)
def variant_grid(report: Report, r: ClusterResults, cfg: dict) -> None:
    shape, n_lab = r.data.images.shape, r.metrics.get("n_labelled")
    report.paragraph(f"{len(r.data)} images of {shape[1]}x{shape[2]} with {shape[3]} channel(s) from {r.data.source}; "
                     f"{r.metrics['n_clusters']} clusters" + (f"; scores on the {n_lab} labelled images." if n_lab else "."))
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
    if not r.labelled:
        report.answer(answers.unlabelled(r.rows[r.best + 1], len(r.rows) - 1))
        return
    report.figure(plots.bars({f"{x['encoder']} | {x['reduction']} | {x['clustering']}": x["accuracy"]
                              for x in r.rows[1:]}, baseline=r.rows[0]["accuracy"],
                             baseline_label="KMeans on raw pixels", xlabel="accuracy"), "grid_accuracy",
                  "Accuracy of every variant; bars left of the red line do worse than clustering raw pixels.")
    report.answer(answers.grid(r.rows, r.rows[r.best + 1], r.rows[0]))


@section("Choosing without labels: label-free scores and the number of clusters")
def without_labels(report: Report, r: ClusterResults, cfg: dict) -> None:
    key = ["encoder", "reduction", "clustering", "label_free", "silhouette", "neighbour_consistency", "size_entropy",
           "accuracy"]
    report.table([{c: x.get(c) for c in key} for x in r.rows], caption="Label-free scores of every variant",
                 highlight=r.free + 1)
    agreement = {s: rank_agreement(r.rows[1:], s) for s in ("label_free", *SCORES)} if r.labelled else {}
    report.paragraph(answers.label_free(r.rows[1:], r.free, r.best, agreement))
    if r.curve:
        report.figure(plots.lines([c["k"] for c in r.curve], {key: [c[key] for c in r.curve] for key in r.curve[0]
                                                               if key != "k"}, xlabel="k (clusters)"), "k_curve",
                      "Label-free scores (and majority-vote accuracy, where labels exist) of KMeans for each k on the "
                      "label-free pick's features; the chosen k has the highest silhouette.")
        report.paragraph(answers.k_choice(r.curve, r.metrics["n_clusters"]))


@section("The clusters, read without labels")
def cluster_portraits(report: Report, r: ClusterResults, cfg: dict) -> None:
    rows = [[*p["prototypes"], *p["outliers"]] for p in r.protos]
    captions = [[f"#{p['cluster']} ({p['size']})"] + [""] * (len(p["prototypes"]) - 1) + ["outlier"] * len(p["outliers"])
                for p in r.protos]
    report.figure(plots.image_rows([r.data.images[row] for row in rows], captions=captions, max_cols=12),
                  "prototypes", "One row per cluster (its number and size): the images nearest its centre in the "
                  "clustered features, then its farthest members. A cluster reads by its prototypes; its outliers "
                  "show where it blurs into others.")


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
    if not r.labelled:
        return
    labels, clusters = r.data.labels[r.known], r.best_of()[r.known]
    report.figure(plots.confusion_figure(contingency(labels, clusters), r.class_names, title="labels x clusters",
                                         columns=[f"cluster {c}" for c in np.unique(clusters)]), "label_spread",
                  "How each label's images fall over the selected variant's clusters: a clean grouping has one "
                  "dark cell per row.")
    report.answer(answers.label_spread(class_recall(labels, clusters), r.class_names))


@section("The best recipe over reduction dimensions, public and private", question=4)
def dimensions(report: Report, r: ClusterResults, cfg: dict) -> None:
    if not r.labelled:
        return
    best = r.rows[r.best + 1]
    mine = [x for x in r.rows[1:] if x["encoder"] == best["encoder"]]
    report.table(pivot(mine, "reduction", "clustering", "private_accuracy", column_name="{} private"),
                 caption=f"Private accuracy of '{best['encoder']}' per reduction chain and clustering")
    report.answer(answers.dimensions(r.rows[1:], best))


@section("Two images of different classes: reconstruction error against clustering", question=5)
def two_images(report: Report, r: ClusterResults, cfg: dict) -> None:
    spec = next((s for s in r.errors if r.errors[s] is not None), None)
    if spec is None or not r.labelled or len(r.figure_indices) < 2:
        return
    labels, clusters = r.data.labels, r.best_of(spec)
    right = apply_matching(clusters, best_matching(labels[r.known], clusters[r.known])) == labels
    pair = [{"index": int(i), "name": r.name(i), "error": float(r.errors[spec][i]), "right": bool(right[i])}
            for i in r.figure_indices[:2]]
    report.paragraph(f"Autoencoder '{spec}', clustered by its best chain; images as in the reconstruction figure.")
    report.answer(answers.two_images(pair, error_auc(r.errors[spec][r.known], ~right[r.known])))


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
    labels = r.data.labels[show] if r.labelled else None
    report.figure(plots.scatter_maps(panels, labels, r.class_names), "latent_maps",
                  f"The selected encoder's features in 2-D ({len(show)} points), coloured by label (grey: unlabelled): "
                  "compact, separate colours are classes the features tell apart.")
    if labels is not None and (labels >= 0).sum() > 10:
        report.answer(answers.maps({t: map_agreement(xy[labels >= 0], labels[labels >= 0]) for t, xy in panels.items()},
                                   r.class_names))


SECTIONS = [variant_grid, without_labels, cluster_portraits, reconstructions, label_spread, dimensions, two_images,
            latent_maps]
TERMINAL_COLUMNS = ["encoder", "reduction", "clustering", "reduced_dim", "reconstruction_mse", "label_free",
                    "accuracy", "public_accuracy", "private_accuracy", "nmi", "seconds"]
CARD = [("private accuracy", "private_accuracy", "raw_kmeans_private_accuracy"), ("NMI", "nmi", "raw_kmeans_nmi"),
        ("label-free pick's accuracy", "label_free_pick_accuracy", "accuracy"), ("clusters", "n_clusters", None)]


@dataclass(kw_only=True)
class ClusterResults(Results):
    data: ImageSet  # labels -1: unlabelled
    x: torch.Tensor  # (N, C, H, W) in [-1, 1], what the encoders saw
    rows: list[dict]  # the raw-pixel baseline, then every variant
    best: int  # index of the selected variant among rows[1:]
    free: int  # index of the label-free pick among rows[1:]
    assignments: dict[str, np.ndarray]  # "encoder|chain|method" -> cluster per image
    encoders: dict[str, torch.nn.Module]
    trained: dict  # spec -> (history, latents, per-image reconstruction MSE in [0, 1], chain -> features, base row)
    curve: list[dict]  # the k curve, when k was chosen
    protos: list[dict]  # per cluster: size, prototypes, outliers
    views: tuple[np.ndarray, dict]  # the selected encoder's 2-D views: (image indices shown, title -> (n, 2))
    layers: dict[str, list[dict]]
    figure_indices: list[int]
    device: torch.device

    histories = property(lambda self: {spec: t[0] for spec, t in self.trained.items()})
    latents = property(lambda self: {spec: t[1] for spec, t in self.trained.items()})
    errors = property(lambda self: {spec: t[2] for spec, t in self.trained.items()})
    known = property(lambda self: self.data.labels >= 0 if self.data.labels is not None else None)
    labelled = property(lambda self: self.data.labels is not None and bool(self.known.any()))
    class_names = property(lambda self: self.data.label_names())

    def name(self, i: int) -> str:
        return self.class_names[self.data.labels[i]] if self.labelled and self.data.labels[i] >= 0 else f"#{i}"

    def best_of(self, spec: str | None = None) -> np.ndarray:
        """The clusters of the selected variant, or of encoder `spec`'s best chain by public accuracy."""
        row = self.rows[self.best + 1] if spec is None else max(
            (x for x in self.rows[1:] if x["encoder"] == spec), key=lambda x: x["public_accuracy"])
        return self.assignments[f"{row['encoder']}|{row['reduction']}|{row['clustering']}"]


# the run -----------------------------------------------------------------------------------------
def fit(run, cfg: dict) -> ClusterResults:
    device = resolve_device(cfg["device"])
    data, n_main = load_data(cfg["data"], cfg["seed"])
    fixed, ks = parse_k(cfg["clustering"]["n_clusters"])
    k = n_clusters_for(fixed, data) if not ks else min(max(n_clusters_for(None, data), ks[0]), ks[-1])
    ks = [c for c in ks if 2 * c <= len(data)]  # the k curve stops where clusters would hold one image
    shown = figure_indices(list(cfg["figures"]["indices"]), data)  # checked before any training
    x = to_unit_tensor(data.images) * 2 - 1  # the autoencoders' tanh range
    encoders = {spec: build_encoder(spec, in_shape=tuple(x.shape[1:]), model_cfg=cfg["model"])
                for spec in cfg["grid"]["encoders"]}
    log.info("cluster: %d images %s from %s, K=%s, device %s", len(data), data.images.shape[1:], data.source,
             k if not ks else f"{ks[0]}-{ks[-1]}", device)
    grid = Grid(run=run, cfg=cfg, labels=data.labels)
    trained = {}  # spec -> (history, latents, errors, chain -> reduced features, its rows' shared columns)
    for spec, model in encoders.items():
        t0 = time.time()
        loss, settings = training_for(model, cfg)
        history = train_variant(run, cfg, model, loss, f"encoder-{slug(spec)}", train=(x,), device=device,
                                settings=settings).history_
        z, err = encode(model, x, device)
        trained[spec] = (history, z, err, *grid.reduce(spec, z, err, seconds=time.time() - t0))
    pixels = data.images.reshape(len(data), -1) / 255.0
    rows, assignments = grid.evaluate(k, pixels, trained)
    curve = []
    if ks:  # the k curve on the features of the label-free pick, then the grid again at the chosen k
        pick = max(rows[1:], key=lambda r: r["label_free"])
        chosen, curve = grid.choose_k(trained[pick["encoder"]][3][pick["reduction"]], trained[pick["encoder"]][1], ks)
        if chosen != k:
            k = chosen
            rows, assignments = grid.evaluate(k, pixels, trained)
    return select(run, cfg, data=data, n_main=n_main, x=x, figure_indices=shown, rows=rows, assignments=assignments,
                  encoders=encoders, trained=trained, device=device, k=k, curve=curve)


def select(run, cfg: dict, *, data: ImageSet, rows: list[dict], assignments: dict, k: int, trained: dict,
           n_main: int, **rest) -> ClusterResults:
    """With labels the leaderboard way (best public accuracy; the private half untouched), else the label-free pick."""
    variants, labelled = rows[1:], data.labels is not None and bool((data.labels >= 0).any())
    free = max(range(len(variants)), key=lambda i: variants[i]["label_free"])
    best = max(range(len(variants)), key=lambda i: variants[i]["public_accuracy"]) if labelled else free
    row = variants[best]
    clusters = assignments[f"{row['encoder']}|{row['reduction']}|{row['clustering']}"]
    run.write_bytes("predictions.csv", id_label_csv(clusters[:n_main]))  # the --data images, not the sample
    mapping = best_matching(data.labels[data.labels >= 0], clusters[data.labels >= 0]) if labelled else {}
    run.save_arrays("predict.npz", latents=trained[row["encoder"]][1], clusters=clusters,
                    mapping=np.array(sorted(mapping.items()), dtype=np.int64).reshape(-1, 2))
    metrics = {
        **{key: row.get(key) for key in ("accuracy", "public_accuracy", "private_accuracy", "nmi", "ari", "reconstruction_mse",
                                         "silhouette", "neighbour_consistency", "size_entropy", "n_labelled")},
        **{f"raw_kmeans_{key}": rows[0].get(key) for key in LABELLED},
        **{f"label_free_pick_{key}": variants[free].get(key) for key in ("accuracy", "private_accuracy")},
        "label_free_pick": " + ".join(variants[free][c] for c in ("encoder", "reduction", "clustering")),
        "n_images": len(data), "n_clusters": k, "image_shape": list(data.images.shape[1:]),
        "best_encoder": row["encoder"], "best_reduction": row["reduction"], "best_clustering": row["clustering"],
        "selected_by": "public accuracy" if labelled else "label-free score (no labels)", "data": data.source,
    }
    reconstructing = [v for v in variants if rest["encoders"][v["encoder"]].reconstructs]
    if labelled and reconstructing:  # the reports' road, for comparison with the selected one
        ae = max(reconstructing, key=lambda v: v["public_accuracy"])
        metrics.update({"best_autoencoder": f"{ae['encoder']} + {ae['reduction']} + {ae['clustering']}",
                        **{f"best_autoencoder_{key}": ae[key] for key in LABELLED}})
    layers = {spec: layer_table(m, rest["x"][:2].to(rest["device"])) for spec, m in rest["encoders"].items()}
    _, z, _, features, _ = trained[row["encoder"]]
    views = two_d_views(z, {c: f for c, f in features.items() if f.shape[1] == 2}, points=cfg["figures"]["map_points"],
                        seed=cfg["seed"])
    return ClusterResults(metrics=metrics, data=data, rows=rows, best=best, assignments=assignments, layers=layers,
                          views=views, table=rows, columns=TERMINAL_COLUMNS, trained=trained, free=free,
                          protos=prototypes(features[row["reduction"]], clusters), **rest)


# predict -----------------------------------------------------------------------------------------
def predict(root: Path, cfg: dict, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto") -> dict:
    """New images to the run's clusters: the selected encoder's features, a vote of the nearest training ones."""
    dev = resolve_device(device)
    d = {**cfg["data"], "path": data_path, "labels": labels, "limit": 0, "val_path": None}
    data, _ = load_data({**d, "groups": []}, cfg["seed"])  # the run's groups apply to labels the new data has
    data = group_labels(data, d["groups"], d["group_names"]) if data.labels is not None and d["groups"] else data
    saved = read_numpy(root / "predict.npz", need=("latents", "clusters", "mapping"), hint="; rerun the study")
    spec, expected, mapping = metrics["best_encoder"], tuple(metrics["image_shape"]), saved["mapping"]
    if data.images.shape[1:] != expected:
        raise InputError(f"{data_path}: images are {data.images.shape[1:]} (H, W, C) but the run was trained on "
                         f"{expected}; resize or convert them first")
    x = to_unit_tensor(data.images) * 2 - 1
    model = build_encoder(spec, in_shape=tuple(x.shape[1:]), model_cfg=cfg["model"])
    z, _ = encode(load_weights(model, root, f"encoder-{slug(spec)}").to(dev), x, dev)
    clusters = assign_new(saved["latents"], saved["clusters"], z)
    atomic_write_bytes(out, id_label_csv(clusters))
    result = {"n_images": len(data), "predictions": str(out)}
    if data.labels is not None and len(mapping) and (data.labels >= 0).any():  # -1: unlabelled, not scored
        known = data.labels >= 0
        result["accuracy_with_run_matching"] = float(np.mean(apply_matching(clusters, dict(mapping.tolist()))[known]
                                                             == data.labels[known]))
        result["accuracy_best_matching"] = clustering_scores(data.labels, clusters)["accuracy"]
    return result


def summary(metrics: dict) -> str:
    if metrics.get("accuracy") is None:
        return f"{metrics['n_images']} images, {metrics['n_clusters']} clusters (no labels)"
    return (f"accuracy {metrics['accuracy']:.3f} (private {metrics['private_accuracy']:.3f}) vs raw-pixel KMeans "
            f"{metrics['raw_kmeans_accuracy']:.3f}; "
            f"{metrics['best_encoder']} + {metrics['best_reduction']} + {metrics['best_clustering']}")
