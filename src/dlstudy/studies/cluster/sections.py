"""The cluster study's report: one section per homework question (1-6), and two for reading clusters
without labels, each ending in its answer."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics.cluster import contingency_matrix as contingency

from dlstudy import plots
from dlstudy.analysis.cluster_grid import slug
from dlstudy.analysis.label_free import SCORES, rank_agreement
from dlstudy.analysis.metrics import apply_matching, best_matching, class_recall, map_agreement
from dlstudy.analysis.scan import mine_neighbours
from dlstudy.data.images import to_uint8
from dlstudy.report import Report, pivot
from dlstudy.studies.cluster import answers
from dlstudy.studies.cluster.config import Config
from dlstudy.studies.cluster.experiment import ClusterResults
from dlstudy.studies.protocol import section


@section("Two autoencoder families crossed with reductions: reconstruction and accuracy", question=1)
def variant_grid(report: Report, r: ClusterResults, cfg: Config) -> None:
    shape, n_lab = r.data.images.shape, r.metrics.get("n_labelled")
    report.paragraph(
        f"{len(r.data)} images of {shape[1]}x{shape[2]} with {shape[3]} channel(s) from {r.data.source}; "
        f"{r.metrics['n_clusters']} clusters" + (f"; scores on the {n_lab} labelled images." if n_lab else ".")
    )
    report.paragraph(answers.GRID_WORDS.format(k=cfg.scan.n_neighbors))
    key = [
        "encoder",
        "reduction",
        "clustering",
        "reconstruction_mse",
        "accuracy",
        "public_accuracy",
        "private_accuracy",
    ]
    report.table(r.rows, highlight=r.best + 1, first=key, caption="Every variant")
    for name, layers in r.layers.items():
        report.table(layers, caption=f"Encoder '{name}': layers, output shape for one image, parameters", collapse=True)
    # autoencoders train on [-1, 1] pixels: / 4 gives the tables' [0, 1] MSE
    curves = {
        f"{spec} ({r.encoders[spec].objective})": [
            {**h, "loss": h["loss"] / (4 if r.encoders[spec].reconstructs else 1)} for h in hist
        ]
        for spec, hist in r.histories.items()
        if hist  # a pretrained encoder is frozen: no curve
    }
    if curves:
        report.figure(
            plots.curves(curves, ["loss"], ylabel="training loss", share_y=False),
            "training",
            "Training loss per epoch of each encoder, in the tables' units.",
        )
    if not r.labelled:
        report.answer(answers.unlabelled(r.rows[r.best + 1], len(r.rows) - 1))
        return
    report.figure(
        plots.bars(
            {f"{x['encoder']} | {x['reduction']} | {x['clustering']}": x["accuracy"] for x in r.rows[1:]},
            baseline=r.rows[0]["accuracy"],
            baseline_label="KMeans on raw pixels",
            xlabel="accuracy",
        ),
        "grid_accuracy",
        "Accuracy of every variant; bars left of the red line do worse than clustering raw pixels.",
    )
    report.answer(
        answers.grid(r.rows, r.rows[r.best + 1], r.rows[0], r.family.get("vs:raw"), r.family.get("reconstruction"))
    )


@section("Choosing without labels: label-free scores and the number of clusters")
def without_labels(report: Report, r: ClusterResults, cfg: Config) -> None:
    key = [
        "encoder",
        "reduction",
        "clustering",
        "label_free",
        "silhouette",
        "neighbour_consistency",
        "size_entropy",
        "accuracy",
    ]
    report.table(
        [{c: x.get(c) for c in key} for x in r.rows], caption="Label-free scores of every variant", highlight=r.free + 1
    )
    agreement = {s: rank_agreement(r.rows[1:], s) for s in ("label_free", *SCORES)} if r.labelled else {}
    report.paragraph(answers.label_free(r.rows[1:], r.free, r.best, agreement, r.family.get("vs:label_free")))
    if r.curve:
        report.figure(
            plots.lines(
                [c["k"] for c in r.curve],
                {key: [c[key] for c in r.curve] for key in r.curve[0] if key != "k"},
                xlabel="k (clusters)",
            ),
            "k_curve",
            "Label-free scores (and majority-vote accuracy, where labels exist) of KMeans for each k on the "
            "label-free pick's features; the chosen k has the highest silhouette.",
        )
        report.paragraph(answers.k_choice(r.curve, r.metrics["n_clusters"]))


@section("The clusters, read without labels")
def cluster_portraits(report: Report, r: ClusterResults, cfg: Config) -> None:
    rows = [[*p["prototypes"], *p["outliers"]] for p in r.protos]
    captions = [
        [f"#{p['cluster']} ({p['size']})"] + [""] * (len(p["prototypes"]) - 1) + ["outlier"] * len(p["outliers"])
        for p in r.protos
    ]
    report.figure(
        plots.image_rows([r.data.images[row] for row in rows], captions=captions, max_cols=12),
        "prototypes",
        "One row per cluster (its number and size): the images nearest its centre in the "
        "clustered features, then its farthest members. A cluster reads by its prototypes; its outliers "
        "show where it blurs into others.",
    )


@section("Originals next to their reconstructions", question=2)
def reconstructions(report: Report, r: ClusterResults, cfg: Config) -> None:
    idx = r.figure_indices
    errors = {}
    for spec, model in r.encoders.items():
        if not model.reconstructs:
            continue
        with torch.no_grad():
            recon = to_uint8((model(r.x[idx].to(r.device)) + 1) / 2)
        report.figure(
            plots.image_rows(
                [r.data.images[idx], recon],
                row_titles=["original", spec],
                captions=[[r.name(i) for i in idx], [f"MSE {r.errors[spec][i]:.4f}" for i in idx]],
            ),
            f"reconstructions_{slug(spec)}",
            f"Originals over reconstructions by '{spec}', with each "
            "image's squared error per pixel in [0, 1]: what the code keeps, and what it smooths away.",
        )
        errors[spec] = float(r.errors[spec].mean())
    if errors:
        report.answer(answers.reconstructions(errors, float((r.data.images / 255.0).var(axis=0).mean())))


@section("How the true labels spread over the 2-D embedding", question=3)
def label_spread(report: Report, r: ClusterResults, cfg: Config) -> None:
    if not r.labelled:
        return
    labels, clusters = r.data.labels[r.known], r.best_of()[r.known]
    report.figure(
        plots.confusion_figure(
            contingency(labels, clusters),
            r.class_names,
            title="labels x clusters",
            columns=[f"cluster {c}" for c in np.unique(clusters)],
        ),
        "label_spread",
        "How each label's images fall over the selected variant's clusters: a clean grouping has one "
        "dark cell per row.",
    )
    (show, views), spec = r.views, r.metrics["best_encoder"]
    title, xy = list(views.items())[-1]  # the last view: the nonlinear map where there is one
    mapped = r.data.labels[show]
    keep = mapped >= 0
    if keep.sum() > 10:
        report.figure(
            plots.scatter_maps({f"{title} of '{spec}' features": xy}, mapped, r.class_names),
            "label_embedding",
            f"The selected encoder's features in 2-D ({title}, {len(show)} points), coloured by label.",
        )
    spread = map_agreement(xy[keep], mapped[keep]) if keep.sum() > 10 else None
    view = f"{title} of '{spec}' features"
    report.answer(answers.label_spread(spread, class_recall(labels, clusters), r.class_names, view=view))


@section("The best recipe over reduction dimensions, public and private", question=4)
def dimensions(report: Report, r: ClusterResults, cfg: Config) -> None:
    if not r.labelled:
        return
    best = r.rows[r.best + 1]
    mine = [x for x in r.rows[1:] if x["encoder"] == best["encoder"]]
    report.table(
        pivot(mine, "reduction", "clustering", "private_accuracy", column_name="{} private"),
        caption=f"Private accuracy of '{best['encoder']}' per reduction chain and clustering",
    )
    report.answer(answers.dimensions(r.rows[1:], best, r.family.get("vs:reduction")))


@section("Two images of different classes: reconstruction error against clustering", question=5)
def two_images(report: Report, r: ClusterResults, cfg: Config) -> None:
    spec = next((s for s in r.errors if r.errors[s] is not None), None)
    if spec is None or not r.labelled or len(r.figure_indices) < 2:
        return
    labels, clusters = r.data.labels, r.best_of(spec)
    right = apply_matching(clusters, best_matching(labels[r.known], clusters[r.known])) == labels
    pair = [
        {"index": int(i), "name": r.name(i), "error": float(r.errors[spec][i]), "right": bool(right[i])}
        for i in r.figure_indices[:2]
    ]
    report.paragraph(f"Autoencoder '{spec}', clustered by its best chain; images as in the reconstruction figure.")
    errors, known = r.errors[spec], r.known
    classes = {r.class_names[c]: errors[known & (labels == c)] for c in np.unique(labels[known])}
    report.answer(answers.two_images(pair, classes, r.family))


@section("PCA and t-SNE maps of the latent codes", question=6)
def latent_maps(report: Report, r: ClusterResults, cfg: Config) -> None:
    queries = r.figure_indices[: cfg.figures.neighbour_rows]
    for spec, z in r.latents.items():
        rows = [[q, *nearest] for q, nearest in zip(queries, mine_neighbours(z, 8, rows=queries))]
        report.figure(
            plots.image_rows([r.data.images[row] for row in rows], captions=[[r.name(j) for j in row] for row in rows]),
            f"neighbours_{slug(spec)}",
            f"Nearest neighbours by '{spec}' features: each row an image, then its "
            "8 nearest others by cosine similarity; same-class neighbours are what clustering builds on.",
        )
    (show, views), spec = r.views, r.metrics["best_encoder"]
    panels = {f"{title} of '{spec}' features": xy for title, xy in views.items()}
    labels = r.data.labels[show] if r.labelled else None
    report.figure(
        plots.scatter_maps(panels, labels, r.class_names),
        "latent_maps",
        f"The selected encoder's features in 2-D ({len(show)} points), coloured by label (grey: unlabelled): "
        "compact, separate colours are classes the features tell apart.",
    )
    if labels is not None and (labels >= 0).sum() > 10:
        report.answer(
            answers.maps(
                {t: map_agreement(xy[labels >= 0], labels[labels >= 0]) for t, xy in panels.items()}, r.class_names
            )
        )


SECTIONS = [
    variant_grid,
    without_labels,
    cluster_portraits,
    reconstructions,
    label_spread,
    dimensions,
    two_images,
    latent_maps,
]
CARD = [
    ("private accuracy", "private_accuracy", "raw_kmeans_private_accuracy"),
    ("NMI", "nmi", "raw_kmeans_nmi"),
    ("label-free pick's accuracy", "label_free_pick_accuracy", "accuracy"),
    ("clusters", "n_clusters", None),
]
