"""The classify study's report: one section per homework question (19-23), each ending in its answer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from dlstudy import plots
from dlstudy.analysis.explanations import SALIENCY
from dlstudy.report import Report
from dlstudy.studies.classify import answers
from dlstudy.studies.classify.config import Config
from dlstudy.studies.classify.experiment import ClassifyResults
from dlstudy.studies.protocol import section


@section("Data")
def data(report: Report, r: ClassifyResults, cfg: Config) -> None:
    m, t = r.metrics, r.prep.tensors
    report.paragraph(
        f"{m['data']}: {m['n_train']} training and {m['n_val']} validation {r.noun} (a stratified "
        f"{cfg.data.val_fraction:.0%} of Training, for early stopping and the history), "
        f"{m['n_public']} public and {m['n_private']} private test {r.noun}, "
        f"{m['image_size']}x{m['image_size']} with {m['channels']} channel(s)."
    )
    report.table(
        [{"class": n, **{k: int((t[k][1] == i).sum()) for k in t}} for i, n in enumerate(r.names)],
        caption="Images per class and split",
    )
    report.table(
        r.prep.sharpness_table,
        caption="Sharpness (median mean-absolute difference of neighbouring "
        f"pixels, pixels in [0, 1]) and the Gaussian blur applied to match the training {r.noun}",
    )
    report.paragraph(answers.sharpness_sentence(r.prep.sharpness_table, match=cfg.data.match_sharpness), note=True)


@section("The CNN architecture with its layer sizes", question=19)
def architecture(report: Report, r: ClassifyResults, cfg: Config) -> None:
    report.table(
        r.layers,
        caption=f"Layers in the order they run on a real batch; output shape (channels x height x "
        f"width) for one {r.one}",
        collapse=True,
    )
    m = r.metrics
    report.answer(
        answers.architecture(
            parameters=m["parameters"],
            convs=len(r.model.conv_layers()),
            size=m["image_size"],
            channels=m["channels"],
            classes=len(r.names),
            hidden=cfg.model.hidden,
            last_map=r.model.last_map,
            grid=r.model.grid,
            head=next(layer.weight.numel() for layer in r.model.classifier if isinstance(layer, torch.nn.Linear)),
        )
    )


@section("Training and validation accuracy and loss per epoch", question=20)
def training(report: Report, r: ClassifyResults, cfg: Config) -> None:
    t, m = r.prep.tensors, r.metrics
    sets = {"": "train (augmented, dropout on)", "val_": "validation"}
    sets.update({f"{k}_": k for k in ("public", "private") if k in t})
    report.figure(
        plots.history(r.history, ("loss", "accuracy"), sets),
        "history",
        "Loss and accuracy per epoch. The training curve is measured on augmented batches in training mode, "
        "so it can lie below validation early on.",
    )
    rows = [{"split": k, "images": len(t[k][1]), "accuracy": m[f"{k}_accuracy"]} for k in t]
    rows.append(
        {
            "split": f"majority class '{m['majority_class']}' ({m['scored_on']})",
            "images": len(t[m["scored_on"]][1]),
            "accuracy": m["majority_class_accuracy"],
        }
    )
    report.table(rows, caption="Accuracy of the final model (the best validation epoch when early stopping is on)")
    report.answer(answers.training(r.history, m, replace(r.curve, rise=r.family["overfits"])))


@section("The confusion matrix: which classes are confused", question=21)
def confusion_matrix(report: Report, r: ClassifyResults, cfg: Config) -> None:
    scored = r.metrics["scored_on"]
    report.figure(
        plots.confusion_figure(r.conf, r.names, title=scored),
        "confusion",
        f"Confusion matrix on {scored}, counts and row-normalised rates: off-diagonal cells are mistakes.",
    )
    report.table(
        r.per_class + [{"class": "macro average", "f1": r.metrics["macro_f1"]}],
        caption="Per-class scores",
        first=["class", "recall", "f1"],
    )
    y, p = r.y_scored, r.probs[scored]
    wrong = np.flatnonzero(p.argmax(1) != y)
    worst = wrong[np.argsort(-p[wrong].max(1))][: cfg.explain.mistakes]
    if len(worst):
        report.figure(
            plots.image_rows(
                [r.shown[worst]],
                captions=[[f"{r.names[y[i]]} -> {r.names[p[i].argmax()]}\np={p[i].max():.2f}" for i in worst]],
            ),
            "mistakes",
            "The most confident mistakes: true -> predicted, with the predicted probability.",
        )
    report.answer(answers.confused(r.conf, r.names))


@section("Saliency maps: what the model looks at", question=22)
def saliency_maps(report: Report, r: ClassifyResults, cfg: Config) -> None:
    x, y = r.saliency, r.y_scored
    chosen = x.chosen
    report.figure(
        plots.image_rows(
            [r.shown[chosen]] + [plots.heat_images(v.numpy()) for v in x.maps.values()],
            row_titles=[r.one] + [m.replace("_", " ") for m in x.maps],
            captions=[[r.names[y[i]] for i in chosen]],
        ),
        "saliency",
        "The same images under each method (rows), each map scaled to its own 99th percentile: "
        + "; ".join(SALIENCY[m].about.format(samples=cfg.explain.samples) for m in x.maps)
        + ". Bright pixels change the true class's score most.",
    )
    report.paragraph(answers.integrated_gradients(x.ig_delta, cfg.explain.samples))
    report.table(
        [{"method": m, "rank correlation after re-initialising": v} for m, v in x.randomisation.items()],
        caption="Model-randomisation check: the maps of a copy whose last conv block and classifier are "
        "re-initialised, against the trained model's (Spearman, mean over the images)",
    )
    report.paragraph(answers.randomisation(x.randomisation))
    curves, fill = x.deletion, cfg.explain.deletion_fill
    series = {k: [d[k] for d in curves["most"]] for k in curves["most"][0] if k != "removed"}
    least = {f"{k}, least first": k for k in curves["least"][0] if k not in ("removed", "random")}
    series.update({name: [d[k] for d in curves["least"]] for name, k in least.items()})
    report.figure(
        plots.lines(
            [d["removed"] for d in curves["most"]],
            series,
            dashed=least,
            xlabel="share of pixels removed (solid: most salient first; dashed: least salient first)",
        ),
        "deletion",
        f"Accuracy on {x.deletion_images} scored {r.noun} as pixels are removed in the order of "
        "each map, against random order; a removed pixel takes "
        f"{answers.FILL_SAID[fill]}. "
        "A faithful map makes the solid curve fall below random and keeps the dashed one above it.",
    )
    report.table(
        answers.deletion_areas(curves),
        caption="Mean accuracy over each deletion curve (the area under it), "
        "and the gap between least and most salient first",
    )
    report.paragraph(answers.deletion(curves, fill, r.family))
    by_class = {
        r.names[c]: dict(zip(x.regions, x.shares[y[chosen] == c].mean(0).tolist()))
        for c in sorted(set(y[chosen].tolist()))
    }
    report.table(
        [{"class": c, **v} for c, v in by_class.items()],
        caption="Share of the vanilla gradient in fixed regions of the image, per class",
    )
    report.answer(answers.saliency(by_class, x.regions, x.areas))


@section("What activates the convolution filters", question=23)
def filters(report: Report, r: ClassifyResults, cfg: Config) -> None:
    f, k = r.filters, int(cfg.explain.example) % len(r.y_scored)
    label = f"conv layer {f.index + 1} of {f.n_convs} ({f.width} filters)"
    report.figure(
        plots.image_rows(
            plots.chunks(plots.to_display(f.inputs), 8), captions=plots.chunks([f"filter {i}" for i in f.filters], 8)
        ),
        "filters",
        f"Inputs that most activate filters of {label}, by gradient ascent from noise with weight decay and "
        "periodic blur: the patterns each filter looks for.",
    )
    maps = f.maps
    report.figure(
        plots.image_rows(
            [r.shown[[k]]] + plots.chunks(plots.to_display(maps[:, None]), 8), captions=[[r.names[r.y_scored[k]]]]
        ),
        "feature_maps",
        f"The first {len(maps)} feature maps ({maps.shape[-1]}x{maps.shape[-2]} px) of conv layer "
        f"{f.maps_layer + 1} of {f.n_convs} for one {r.one}"
        + ("" if f.maps_layer == f.index else f" (layer {f.index + 1}'s maps are too small to show)")
        + ".",
    )
    report.answer(answers.filters(f.gains, label, float((maps > 0).mean())))


SECTIONS = [data, architecture, training, confusion_matrix, saliency_maps, filters]
CARD = [
    ("public accuracy", "public_accuracy", "majority_class_accuracy"),
    ("macro F1", "macro_f1", None),
    ("validation accuracy", "val_accuracy", None),
    ("epochs", "epochs", None),
]
