"""The classify study (NTU ML HW3): a CNN for facial expressions (FER2013) and the explanations the
course reports show: training history, confusion matrix, saliency maps, filter visualisation,
feature maps and the model's most confident mistakes."""
from __future__ import annotations

import argparse
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlstudy import plots
from dlstudy.analysis.architecture import layer_table
from dlstudy.analysis.classification import TTA_VIEWS, class_report, confusion, predict_proba, predictions_csv
from dlstudy.analysis.explanations import DELETION_FILLS, SALIENCY_METHODS, explain_filters, explain_predictions
from dlstudy.answers import classify as answers
from dlstudy.data.expressions import EMOTIONS, load_expressions, load_new_faces, prepare_splits
from dlstudy.data.images import load_labels, to_unit_tensor
from dlstudy.data.sharpness import match_groups
from dlstudy.defaults.classify import DEFAULTS as DEFAULTS, QUICK as QUICK  # every key commented there
from dlstudy.errors import InputError
from dlstudy.models.cnn import ExpressionCNN, expression_loss
from dlstudy.report import Report
from dlstudy.runs import atomic_write_bytes, load_weights
from dlstudy.studies.protocol import Results, section
from dlstudy.train import precision, resolve_device, train_variant

log = logging.getLogger("dlstudy")

NAME, TITLE = "classify", "Facial expressions (FER2013) or any labelled images: a CNN, and what it looks at"

OBJECTIVE = ("public_accuracy", "maximize")  # a sweep's default: PublicTest, never seen in training or selection
PRUNE_ON = ("val_loss", "minimize")  # the per-epoch value a sweep's pruner watches
# the numbers metrics.json holds (None where a split is absent): what a sweep's --metric may name
METRICS = ("public_accuracy", "private_accuracy", "val_accuracy", "train_accuracy", "macro_f1", "majority_class_accuracy",
           *(f"{split}_accuracy_{views}_tta" for split in ("public", "private") for views in TTA_VIEWS),
           "epochs", "parameters", "n_train", "n_val", "n_public", "n_private", "image_size", "channels",
           "train_sharpness", "input_mean", "input_std", "seconds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, metavar="N", help=f"training epochs (default {DEFAULTS['train']['epochs']})")


def flag_overrides(args: argparse.Namespace) -> dict:
    return {"train": {"epochs": args.epochs}} if getattr(args, "epochs", None) is not None else {}


def check_config(cfg: dict) -> None:
    resolve_device(cfg["device"])
    d, t, e = cfg["data"], cfg["train"], cfg["explain"]
    if not 0 < d["val_fraction"] < 0.5:
        raise InputError(f"data.val_fraction must lie in (0, 0.5), got {d['val_fraction']}")
    if d["channels"] not in (1, 3):
        raise InputError(f"data.channels must be 1 (grayscale) or 3 (RGB), got {d['channels']}")
    if d["image_size"] is not None and (not isinstance(d["image_size"], int) or d["image_size"] < 8):
        raise InputError(f"data.image_size must be a whole number of pixels >= 8 (or null), got {d['image_size']}")
    if not isinstance(t["epochs"], int) or t["epochs"] < 1:
        raise InputError(f"--epochs must be a whole number of at least 1, got {t['epochs']}")
    if cfg["loss"]["class_weights"] not in ("none", "balanced"):
        raise InputError(f"loss.class_weights must be none or balanced, not '{cfg['loss']['class_weights']}'")
    if not 0 <= cfg["loss"]["label_smoothing"] < 1:
        raise InputError(f"loss.label_smoothing must lie in [0, 1), got {cfg['loss']['label_smoothing']}")
    if e["deletion_fill"] not in DELETION_FILLS:
        raise InputError(f"explain.deletion_fill must be one of {', '.join(DELETION_FILLS)}, not '{e['deletion_fill']}'")
    unknown = [m for m in e["methods"] + e["randomise"] if m not in SALIENCY_METHODS]
    if unknown:
        raise InputError(f"explain.methods / explain.randomise: unknown {unknown}; choose from {', '.join(SALIENCY_METHODS)}")
    n_convs = sum(cfg["model"]["convs"]) if isinstance(cfg["model"]["convs"], list) else 0
    if n_convs and not -n_convs <= e["layer"] < n_convs:
        raise InputError(f"explain.layer {e['layer']}: the model has {n_convs} conv layers (use 0..{n_convs - 1} or -1)")
    width = cfg["model"]["channels"][e["layer"] % n_convs] if n_convs and len(cfg["model"]["channels"]) == n_convs else None
    bad = [f for f in e["filter_indices"] if not isinstance(f, int) or f < 0 or (width and f >= width)]
    if bad:
        raise InputError(f"explain.filter_indices {bad}: this layer's filters are 0..{(width or 1) - 1}")
    try:  # the model's own asserts (one entry per block, a size the pooling can halve) as input errors
        with warnings.catch_warnings():  # a throwaway model: torch's warnings about it (a zero width) are noise
            warnings.simplefilter("ignore")
            build_model(cfg, channels=d["channels"], size=d["image_size"] or 48, n_classes=7)
    except (AssertionError, ValueError, RuntimeError) as exc:
        raise InputError(f"model.channels / model.convs / model.hidden do not make a network: {str(exc)[:120]}") from None


def build_model(cfg: dict, *, channels: int, size: int, n_classes: int) -> ExpressionCNN:
    m = cfg["model"]
    return ExpressionCNN(in_channels=channels, num_classes=n_classes, image_size=size, channels=tuple(m["channels"]),
                         convs=tuple(m["convs"]), hidden=tuple(m["hidden"]), conv_dropout=m["conv_dropout"],
                         dropout=m["dropout"], negative_slope=m["negative_slope"])


# the report: one section per homework question ---------------------------------------------------
@section("Data")
def data(report: Report, r: ClassifyResults, cfg: dict) -> None:
    m, t = r.metrics, r.prep["tensors"]
    report.paragraph(f"{m['data']}: {m['n_train']} training and {m['n_val']} validation {r.noun} (a stratified "
                     f"{cfg['data']['val_fraction']:.0%} of Training, for early stopping and the history), "
                     f"{m['n_public']} public and {m['n_private']} private test {r.noun}, "
                     f"{m['image_size']}x{m['image_size']} with {m['channels']} channel(s).")
    report.table([{"class": n, **{k: int((t[k][1] == i).sum()) for k in t}} for i, n in enumerate(r.names)],
                 caption="Images per class and split")
    report.table(r.prep["sharpness_table"], caption="Sharpness (median mean-absolute difference of neighbouring "
                 f"pixels, pixels in [0, 1]) and the Gaussian blur applied to match the training {r.noun}")
    report.paragraph(answers.sharpness_sentence(r.prep["sharpness_table"], match=cfg["data"]["match_sharpness"]),
                     note=True)


@section("The CNN architecture with its layer sizes", question=19)
def architecture(report: Report, r: ClassifyResults, cfg: dict) -> None:
    report.table(r.layers, caption=f"Layers in the order they run on a real batch; output shape (channels x height x "
                 f"width) for one {r.one}", collapse=True)
    m = r.metrics
    report.answer(answers.architecture(parameters=m["parameters"], convs=len(r.model.conv_layers()), size=m["image_size"],
                                       channels=m["channels"], classes=len(r.names), hidden=cfg["model"]["hidden"]))


@section("Training and validation accuracy and loss per epoch", question=20)
def training(report: Report, r: ClassifyResults, cfg: dict) -> None:
    t, m = r.prep["tensors"], r.metrics
    sets = {"": "train (augmented, dropout on)", "val_": "validation"}
    sets.update({f"{k}_": k for k in ("public", "private") if k in t})
    report.figure(plots.history(r.history, ("loss", "accuracy"), sets), "history",
                  "Loss and accuracy per epoch. The training curve is measured on augmented batches in training mode, "
                  "so it can lie below validation early on.")
    rows = [{"split": k, "images": len(t[k][1]), "accuracy": m[f"{k}_accuracy"]} for k in t]
    rows.append({"split": f"majority class '{m['majority_class']}' ({m['scored_on']})", "images": len(t[m['scored_on']][1]),
                 "accuracy": m["majority_class_accuracy"]})
    report.table(rows, caption="Accuracy of the final model (the best validation epoch when early stopping is on)")
    report.answer(answers.training(r.history, m))


@section("The confusion matrix: which classes are confused", question=21)
def confusion_matrix(report: Report, r: ClassifyResults, cfg: dict) -> None:
    scored = r.metrics["scored_on"]
    report.figure(plots.confusion_figure(r.conf, r.names, title=scored), "confusion",
                  f"Confusion matrix on {scored}, counts and row-normalised rates: off-diagonal cells are mistakes.")
    report.table(r.per_class + [{"class": "macro average", "f1": r.metrics["macro_f1"]}], caption="Per-class scores",
                 first=["class", "recall", "f1"])
    y, p = r.y_scored, r.probs[scored]
    wrong = np.flatnonzero(p.argmax(1) != y)
    worst = wrong[np.argsort(-p[wrong].max(1))][: cfg["explain"]["mistakes"]]
    if len(worst):
        report.figure(plots.image_rows([r.shown[worst]], captions=[[f"{r.names[y[i]]} -> {r.names[p[i].argmax()]}\n"
                                                                    f"p={p[i].max():.2f}" for i in worst]]),
                      "mistakes", "The most confident mistakes: true -> predicted, with the predicted probability.")
    report.answer(answers.confused(r.conf, r.names))


@section("Saliency maps: what the model looks at", question=22)
def saliency_maps(report: Report, r: ClassifyResults, cfg: dict) -> None:
    x, y = r.saliency, r.y_scored
    chosen = x["chosen"]
    report.figure(plots.image_rows([r.shown[chosen]] + [plots.heat_images(v.numpy()) for v in x["maps"].values()],
                                   row_titles=[r.one] + [m.replace("_", " ") for m in x["maps"]],
                                   captions=[[r.names[y[i]] for i in chosen]]), "saliency",
                  "The same images under each method (rows), each map scaled to its own 99th percentile: the vanilla "
                  f"gradient of the course reports, SmoothGrad ({cfg['explain']['samples']} noisy copies), Integrated "
                  "Gradients (from a black image), Grad-CAM on the last conv layer (upsampled) and occlusion (6x6 "
                  "patches). Bright pixels change the true class's score most.")
    report.paragraph(answers.integrated_gradients(x["ig_delta"], cfg["explain"]["samples"]))
    report.table([{"method": m, "rank correlation after re-initialising": v} for m, v in x["randomisation"].items()],
                 caption="Model-randomisation check: the maps of a copy whose last conv block and classifier are "
                         "re-initialised, against the trained model's (Spearman, mean over the images)")
    report.paragraph(answers.randomisation(x["randomisation"]))
    curves, fill = x["deletion"], cfg["explain"]["deletion_fill"]
    series = {k: [d[k] for d in curves["most"]] for k in curves["most"][0] if k != "removed"}
    least = {f"{k}, least first": k for k in curves["least"][0] if k not in ("removed", "random")}
    series.update({name: [d[k] for d in curves["least"]] for name, k in least.items()})
    report.figure(plots.lines([d["removed"] for d in curves["most"]], series, dashed=least,
                              xlabel="share of pixels removed (solid: most salient first; dashed: least salient first)"),
                  "deletion", f"Accuracy on {x['deletion_images']} scored {r.noun} as pixels are removed in the order of "
                  "each map, against random order; a removed pixel takes "
                  f"{answers.FILL_SAID[fill]}. "
                  "A faithful map makes the solid curve fall below random and keeps the dashed one above it.")
    report.table(answers.deletion_areas(curves), caption="Mean accuracy over each deletion curve (the area under it), "
                 "and the gap between least and most salient first")
    report.paragraph(answers.deletion(curves, fill))
    by_class = {r.names[c]: dict(zip(x["regions"], x["shares"][y[chosen] == c].mean(0).tolist()))
                for c in sorted(set(y[chosen].tolist()))}
    report.table([{"class": c, **v} for c, v in by_class.items()],
                 caption="Share of the vanilla gradient in fixed regions of the image, per class")
    report.answer(answers.saliency(by_class, x["regions"]))


@section("What activates the convolution filters", question=23)
def filters(report: Report, r: ClassifyResults, cfg: dict) -> None:
    f, k = r.filters, int(cfg["explain"]["example"]) % len(r.y_scored)
    label = f"conv layer {f['index'] + 1} of {f['n_convs']} ({f['width']} filters)"
    report.figure(plots.image_rows(plots.chunks(plots.to_display(f["inputs"]), 8),
                                   captions=plots.chunks([f"filter {i}" for i in f["filters"]], 8)), "filters",
                  f"Inputs that most activate filters of {label}, by gradient ascent from noise with weight decay and "
                  "periodic blur: the patterns each filter looks for.")
    maps = f["maps"]
    report.figure(plots.image_rows([r.shown[[k]]] + plots.chunks(plots.to_display(maps[:, None]), 8),
                                   captions=[[r.names[r.y_scored[k]]]]), "feature_maps",
                  f"The first {len(maps)} feature maps ({maps.shape[-1]}x{maps.shape[-2]} px) of conv layer "
                  f"{f['maps_layer'] + 1} of {f['n_convs']} for one {r.one}" + (
                      "" if f["maps_layer"] == f["index"] else f" (layer {f['index'] + 1}'s maps are too small to show)")
                  + ".")
    report.answer(answers.filters(f["gains"], label, float((maps > 0).mean())))


SECTIONS = [data, architecture, training, confusion_matrix, saliency_maps, filters]
CARD = [("public accuracy", "public_accuracy", "majority_class_accuracy"), ("macro F1", "macro_f1", None),
        ("validation accuracy", "val_accuracy", None), ("epochs", "epochs", None)]


@dataclass(kw_only=True)
class ClassifyResults(Results):
    model: ExpressionCNN
    prep: dict  # tensors per split, sizes, normalisation, sharpness
    names: list[str]
    history: list[dict]
    probs: dict[str, np.ndarray]  # split -> (N, classes)
    conf: np.ndarray
    per_class: list[dict]
    layers: list[dict]
    saliency: dict  # question 22's maps and checks (analysis.explanations.explain_predictions)
    filters: dict  # question 23's inputs and feature maps (analysis.explanations.explain_filters)

    @property
    def faces(self) -> bool:
        return list(self.names) == list(EMOTIONS)  # the words follow the data: digits are not faces

    @property
    def noun(self) -> str:
        return "faces" if self.faces else "images"

    @property
    def one(self) -> str:
        return "face" if self.faces else "image"

    @property
    def y_scored(self) -> np.ndarray:
        return self.prep["tensors"][self.metrics["scored_on"]][1].numpy()

    @property
    def shown(self) -> np.ndarray:
        """The scored images as the user gave them (or the model's input, stretched for display)."""
        scored = self.metrics["scored_on"]
        original = self.prep["originals"].get(scored)
        return original if original is not None else plots.to_display(self.prep["tensors"][scored][0].numpy())


# the run -----------------------------------------------------------------------------------------
def fit(run, cfg: dict) -> ClassifyResults:
    device = resolve_device(cfg["device"])
    splits = load_expressions(cfg["data"]["path"], size=cfg["data"]["image_size"], skip_bad=cfg["data"]["skip_bad"],
                              seed=cfg["seed"])
    names = splits.data.class_names
    prep = prepare_splits(cfg, splits)
    t = prep["tensors"]
    model = build_model(cfg, channels=t["train"][0].shape[1], size=prep["size"], n_classes=prep["n_classes"])
    model = model.to(memory_format=torch.channels_last)
    layers = layer_table(model, t["train"][0][:2])
    n_params = sum(p.numel() for p in model.parameters())
    log.info("classify: %d training, %d validation images %s from %s; %d parameters; device %s, %s",
             len(t["train"][1]), len(t["val"][1]), tuple(t["train"][0].shape[1:]), splits.data.source, n_params, device,
             precision(device, cfg["train"]["amp"]))
    counts = np.bincount(t["train"][1].numpy(), minlength=prep["n_classes"])
    weights = None
    if cfg["loss"]["class_weights"] == "balanced":  # n / (k * n_c), as sklearn's 'balanced'
        weights = torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)
    evals = {k: t[k] for k in ("public", "private") if k in t}
    trainer = train_variant(run, cfg, model, expression_loss(cfg, weights, cfg["seed"]), "cnn", train=t["train"],
                            val=t["val"], device=device, **evals)
    probs = {k: predict_proba(model, x, device) for k, (x, _) in t.items()}
    acc = {k: float(np.mean(probs[k].argmax(1) == t[k][1].numpy())) for k in probs}
    averaged = {f"{k}_accuracy_{views}_tta": float(np.mean(predict_proba(model, t[k][0], device, tta=views).argmax(1)
                                                           == t[k][1].numpy()))
                if k in t and cfg["augment"]["flip"] else None  # both views include mirror images
                for k in ("public", "private") for views in TTA_VIEWS}  # reported beside, never selected
    scored = "public" if "public" in t else "val"
    y_scored, pred_scored = t[scored][1].numpy(), probs[scored].argmax(1)
    per_class, macro_f1 = class_report(y_scored, pred_scored, names)
    majority = int(counts.argmax())
    metrics = {
        "public_accuracy": acc.get("public"), "private_accuracy": acc.get("private"), "val_accuracy": acc["val"],
        **averaged,
        "train_accuracy": acc["train"], "macro_f1": macro_f1, "scored_on": scored,
        "majority_class_accuracy": float(np.mean(y_scored == majority)), "majority_class": names[majority],
        "epochs": trainer.epoch_, "parameters": n_params, "n_train": len(t["train"][1]), "n_val": len(t["val"][1]),
        "n_public": len(t["public"][1]) if "public" in t else 0, "n_private": len(t["private"][1]) if "private" in t else 0,
        "image_size": prep["size"], "channels": int(t["train"][0].shape[1]), "class_names": names,
        "input_mean": prep["mean"], "input_std": prep["std"], "train_sharpness": prep["target_sharpness"],
        "blur_sigma": prep["sigmas"], "data": splits.data.source,
    }
    run.write_bytes(f"predictions_{scored}.csv", predictions_csv(probs[scored], names, y_scored))
    table = [{"split": k, "images": len(t[k][1]), "accuracy": acc[k]} for k in t]
    table.append({"split": f"majority class ({names[majority]})", "images": len(y_scored),
                  "accuracy": metrics["majority_class_accuracy"]})
    faces, x_scored, e = list(names) == list(EMOTIONS), t[scored][0], cfg["explain"]
    k = int(e["example"]) % len(y_scored)
    return ClassifyResults(
        metrics=metrics, model=model, prep=prep, names=names, history=trainer.history_, probs=probs,
        conf=confusion(y_scored, pred_scored, len(names)), per_class=per_class, layers=layers, table=table,
        saliency=explain_predictions(model, x_scored, y_scored, e, faces=faces, seed=cfg["seed"], device=device),
        filters=explain_filters(model, x_scored[k : k + 1], e, seed=cfg["seed"], device=device),
        title=f"{'Facial expression' if faces else 'Image'} classification with a CNN, and what it looks at")


# predict -----------------------------------------------------------------------------------------
def predict(root: Path, cfg: dict, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto") -> dict:
    dev = resolve_device(device)
    data, usage = load_new_faces(data_path, cfg["data"]["skip_bad"])
    y = load_labels(labels) if labels else data.labels
    if y is not None and len(y) != len(data):
        raise InputError(f"{labels or data_path}: {len(y)} labels for {len(data)} images; they must match")
    x = to_unit_tensor(data.images, metrics["image_size"], channels=metrics["channels"], source=data.source)
    sigmas = match_groups(x, usage, metrics["train_sharpness"], source=data.source) if cfg["data"]["match_sharpness"] \
        else {str(g): 0.0 for g in np.unique(usage)}
    x = (x - metrics["input_mean"]) / metrics["input_std"]
    names = metrics["class_names"]
    model = build_model(cfg, channels=metrics["channels"], size=metrics["image_size"], n_classes=len(names))
    load_weights(model, root, "cnn")
    probs = predict_proba(model.to(dev), x, dev)
    atomic_write_bytes(Path(out), predictions_csv(probs, names, y))
    result = {"n_images": len(data), "predictions": str(out), "blur_sigma": sigmas}
    if y is not None:
        result["accuracy"] = float(np.mean(probs.argmax(1) == y))
    return result


def summary(metrics: dict) -> str:
    main = "public" if metrics["public_accuracy"] is not None else "val"
    return (f"{main} accuracy {metrics[f'{main}_accuracy']:.3f} (macro F1 {metrics['macro_f1']:.3f}) vs majority class "
            f"{metrics['majority_class_accuracy']:.3f}; {metrics['epochs']} epochs, {metrics['parameters']:,} parameters")
