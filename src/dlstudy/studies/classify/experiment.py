"""The classify study's run: train the CNN, score every split, explain the scored images; and predict."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlstudy import plots
from dlstudy.analysis.architecture import layer_table
from dlstudy.analysis.classification import TTA_VIEWS, class_report, confusion, predict_proba, predictions_csv
from dlstudy.analysis.uncertainty import (
    RECOMPUTED,
    Comparison,
    Curve,
    bootstrap_ci,
    compare,
    mean_of,
    overfitting,
    per_resample,
)
from dlstudy.analysis.explanations import FilterResults, SaliencyResults, explain_filters, explain_predictions
from dlstudy.data.expressions import EMOTIONS, Prepared, load_expressions, load_new_faces, prepare_splits
from dlstudy.data.images import load_labels, to_unit_tensor
from dlstudy.data.sharpness import match_groups
from dlstudy.errors import InputError
from dlstudy.models.cnn import ExpressionCNN, expression_loss
from dlstudy.runs import atomic_write_bytes, load_weights
from dlstudy.budget import climb
from dlstudy.studies.classify.config import LADDER, Config
from dlstudy.studies.protocol import Results
from dlstudy.train import Trainer, precision, resolve_device, train_variant

log = logging.getLogger("dlstudy")


def build_model(cfg: Config, *, channels: int, size: int, n_classes: int) -> ExpressionCNN:
    m = cfg.model
    return ExpressionCNN(
        in_channels=channels,
        num_classes=n_classes,
        image_size=size,
        channels=tuple(m.channels),
        convs=tuple(m.convs),
        hidden=tuple(m.hidden),
        conv_dropout=m.conv_dropout,
        dropout=m.dropout,
        negative_slope=m.negative_slope,
    )


@dataclass(kw_only=True)
class ClassifyResults(Results):
    model: ExpressionCNN
    prep: Prepared  # tensors per split, sizes, normalisation, sharpness
    names: list[str]
    history: list[dict]
    probs: dict[str, np.ndarray]  # split -> (N, classes)
    conf: np.ndarray
    per_class: list[dict]
    layers: list[dict]
    saliency: SaliencyResults  # question 22's maps and checks
    filters: FilterResults  # question 23's inputs and feature maps
    curve: Curve | None  # whether the net overfits, by a test (its rise, corrected, is in `family`); None: too few

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
        return self.prep.tensors[self.metrics["scored_on"]][1].numpy()

    @property
    def shown(self) -> np.ndarray:
        """The scored images as the user gave them (or the model's input, stretched for display)."""
        scored = self.metrics["scored_on"]
        original = self.prep.originals.get(scored)
        return original if original is not None else plots.to_display(self.prep.tensors[scored][0].numpy())


def fit(run, cfg: Config) -> ClassifyResults:
    device = resolve_device(cfg.device)
    splits = load_expressions(cfg.data.path, size=cfg.data.image_size, skip_bad=cfg.data.skip_bad, seed=cfg.seed)
    names, prep = splits.data.class_names, prepare_splits(cfg, splits)
    cfg = climb(run, cfg, LADDER, epoch_seconds=lambda rung: epoch_seconds(rung, prep, device=device))
    model, trainer, layers = train_cnn(run, cfg, prep, device=device, source=splits.data.source)
    t = prep.tensors
    probs = {k: predict_proba(model, x, device) for k, (x, _) in t.items()}
    metrics = measure(cfg, model, prep, probs, names=names, device=device)
    scored = metrics["scored_on"]
    y_scored, pred_scored = t[scored][1].numpy(), probs[scored].argmax(1)
    per_class, metrics["macro_f1"] = class_report(y_scored, pred_scored, names)
    metrics.update(score_intervals(t, probs, scored=scored, seed=cfg.seed))
    metrics.update(epochs=trainer.epoch_, data=splits.data.source)
    run.write_bytes(f"predictions_{scored}.csv", predictions_csv(probs[scored], names, y_scored))
    table = [{"split": k, "images": len(t[k][1]), "accuracy": metrics[f"{k}_accuracy"]} for k in t]
    table.append(
        {
            "split": f"majority class ({metrics['majority_class']})",
            "images": len(y_scored),
            "accuracy": metrics["majority_class_accuracy"],
        }
    )
    faces, x_scored, e = list(names) == list(EMOTIONS), t[scored][0], cfg.explain
    k = int(e.example) % len(y_scored)
    train_loss = [h["loss"] for h in trainer.history_]
    curve = overfitting(np.stack(trainer.item_losses_["val"]), train_loss, seed=cfg.seed)
    saliency = explain_predictions(model, x_scored, y_scored, e, faces=faces, seed=cfg.seed, device=device)
    return ClassifyResults(
        family={**({"overfits": curve.rise} if curve else {}), **deletion_tests(saliency.deletion, seed=cfg.seed)},
        curve=curve,
        metrics=metrics,
        model=model,
        prep=prep,
        names=names,
        history=trainer.history_,
        probs=probs,
        conf=confusion(y_scored, pred_scored, len(names)),
        per_class=per_class,
        layers=layers,
        table=table,
        saliency=saliency,
        filters=explain_filters(model, x_scored[k : k + 1], e, seed=cfg.seed, device=device),
        title=f"{'Facial expression' if faces else 'Image'} classification with a CNN, and what it looks at",
        config=cfg,
    )


def deletion_tests(curves: dict, *, seed: int) -> dict[str, Comparison]:
    """Each map's deletion curves against random order's on the same images (each image's mean accuracy over the
    curve, paired): most salient first should fall faster, least salient first stay above."""
    per, random = curves["per_image"], curves["per_image"]["random"]
    out = {}
    for order in ("most", "least"):
        for method, values in per[order].items():
            if method != "random":
                out[f"deletion:{order}:{method}"] = compare(
                    method, "random order", mean_of(values), mean_of(random), len(random), what="", seed=seed
                )
    return out


def epoch_seconds(cfg: Config, prep: Prepared, *, device) -> float:
    """Seconds an epoch of cfg's CNN takes on this machine, from steps timed on a throwaway copy."""
    t = prep.tensors
    model = build_model(cfg, channels=t["train"][0].shape[1], size=prep.size, n_classes=prep.n_classes)
    trainer = Trainer(
        model, expression_loss(cfg, None, cfg.seed), **cfg.train.model_dump(), channels_last=True, device=device
    )
    return trainer.measure(t["train"], [t[k] for k in ("val", "public", "private") if k in t])[1]


def train_cnn(run, cfg: Config, prep: Prepared, *, device, source: str):
    """The CNN trained on prep's training split (early stopping on validation): (model, trainer, layer table)."""
    t = prep.tensors
    model = build_model(cfg, channels=t["train"][0].shape[1], size=prep.size, n_classes=prep.n_classes)
    model = model.to(memory_format=torch.channels_last)
    layers = layer_table(model, t["train"][0][:2])
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "classify: %d training, %d validation images %s from %s; %d parameters; device %s, %s",
        len(t["train"][1]),
        len(t["val"][1]),
        tuple(t["train"][0].shape[1:]),
        source,
        n_params,
        device,
        precision(device, cfg.train.amp),
    )
    counts = np.bincount(t["train"][1].numpy(), minlength=prep.n_classes)
    weights = None
    if cfg.loss.class_weights == "balanced":  # n / (k * n_c), as sklearn's 'balanced'
        weights = torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)
    evals = {k: t[k] for k in ("public", "private") if k in t}
    loss = expression_loss(cfg, weights, cfg.seed)
    trainer = train_variant(run, cfg, model, loss, "cnn", train=t["train"], val=t["val"], device=device, **evals)
    return model, trainer, layers


def measure(cfg: Config, model, prep: Prepared, probs: dict, *, names: list[str], device) -> dict:
    """metrics.json's numbers: accuracy per split (and with test-time flips, reported beside, never selected),
    the majority class of the training split on the scored split, and what predict needs."""
    t = prep.tensors
    acc = {k: float(np.mean(probs[k].argmax(1) == t[k][1].numpy())) for k in probs}
    averaged = {
        f"{k}_accuracy_{views}_tta": float(
            np.mean(predict_proba(model, t[k][0], device, tta=views).argmax(1) == t[k][1].numpy())
        )
        if k in t and cfg.augment.flip
        else None  # both views include mirror images
        for k in ("public", "private")
        for views in TTA_VIEWS
    }
    scored = "public" if "public" in t else "val"
    majority = int(np.bincount(t["train"][1].numpy(), minlength=prep.n_classes).argmax())
    return {
        "public_accuracy": acc.get("public"),
        "private_accuracy": acc.get("private"),
        "val_accuracy": acc["val"],
        **averaged,
        "train_accuracy": acc["train"],
        "scored_on": scored,
        "majority_class_accuracy": float(np.mean(t[scored][1].numpy() == majority)),
        "majority_class": names[majority],
        "parameters": sum(p.numel() for p in model.parameters()),
        **{f"n_{k}": len(t[k][1]) if k in t else 0 for k in ("train", "val", "public", "private")},
        "image_size": prep.size,
        "channels": int(t["train"][0].shape[1]),
        "class_names": names,
        "input_mean": prep.mean,
        "input_std": prep.std,
        "train_sharpness": prep.target_sharpness,
        "blur_sigma": prep.sigmas,
    }


def score_intervals(t: dict, probs: dict, *, scored: str, seed: int) -> dict:
    """95 % intervals of each split's accuracy (plain resampling of its images: accuracy's spread includes the class
    shares' own) and of the scored split's macro F1 (resampled within each class: a per-class statistic)."""
    from sklearn.metrics import f1_score

    out = {}
    for k in ("val", "public", "private"):
        if k in t:
            y = t[k][1].numpy()
            out[f"{k}_accuracy_ci95"] = list(bootstrap_ci(mean_of(probs[k].argmax(1) == y), len(y), seed=seed))
    y, pred = t[scored][1].numpy(), probs[scored].argmax(1)
    labels = np.arange(probs[scored].shape[1])  # every class, as class_report's macro F1
    macro = per_resample(lambda rows: f1_score(y[rows], pred[rows], labels=labels, average="macro", zero_division=0))
    out["macro_f1_ci95"] = list(bootstrap_ci(macro, len(y), strata=y, seed=seed, resamples=RECOMPUTED))
    return out


def predict(
    root: Path, cfg: Config, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto"
) -> dict:
    dev = resolve_device(device)
    data, usage = load_new_faces(data_path, cfg.data.skip_bad)
    y = load_labels(labels)[0] if labels else data.labels
    if y is not None and len(y) != len(data):
        raise InputError(f"{labels or data_path}: {len(y)} labels for {len(data)} images; they must match")
    x = to_unit_tensor(data.images, metrics["image_size"], channels=metrics["channels"], source=data.source)
    sigmas = (
        match_groups(x, usage, metrics["train_sharpness"], source=data.source)
        if cfg.data.match_sharpness
        else {str(g): 0.0 for g in np.unique(usage)}
    )
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
