"""Binary and multi-class classification scores, one place for every study."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, roc_auc_score


def binary_scores(
    y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5, *, prefix: str = ""
) -> dict[str, float | None]:
    """accuracy, balanced accuracy, F1 at the threshold and ROC AUC, each key after `prefix`."""
    pred = (prob >= threshold).astype(int)
    both = len(np.unique(y_true)) == 2
    return {
        prefix + k: v
        for k, v in {
            "accuracy": float(accuracy_score(y_true, pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, pred)),
            "f1": float(f1_score(y_true, pred, zero_division=0)),
            "roc_auc": float(roc_auc_score(y_true, prob)) if both else None,  # undefined with one class
        }.items()
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def class_report(y: np.ndarray, pred: np.ndarray, names: list[str]) -> tuple[list[dict], float]:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    labels = list(range(len(names)))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    rows = [
        {"class": n, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, n in enumerate(names)
    ]
    return rows, float(f1_score(y, pred, labels=labels, average="macro", zero_division=0))


TTA_VIEWS = ("flip", "ten_crop")  # test-time averaging, reported beside the plain score, never selected on


@torch.no_grad()
def predict_proba(model, x: torch.Tensor, device, batch_size: int = 512, *, tta: str | None = None) -> np.ndarray:
    """Class probabilities (N, classes). tta (test-time averaging): "flip" averages each image's with its
    mirror image's, "ten_crop" over the four corner and the centre crops and their mirrors."""
    from dlstudy.data.augment import ten_crop

    assert tta in (None, *TTA_VIEWS), f"tta must be None or one of {TTA_VIEWS}, not {tta!r}"
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(device)
        views = [xb, xb.flip(-1)] if tta == "flip" else ten_crop(xb) if tta == "ten_crop" else [xb]
        out.append(torch.stack([torch.softmax(model(v).float(), 1) for v in views]).mean(0).cpu())
    return torch.cat(out).numpy()


def predictions_csv(probs: np.ndarray, names: list[str], labels: np.ndarray | None) -> bytes:
    """id,label,emotion,probability[,true_label] through a real CSV writer: class names may hold commas."""
    import csv
    import io

    pred = probs.argmax(1)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "label", "emotion", "probability"] + (["true_label"] if labels is not None else []))
    for i, p in enumerate(pred):
        writer.writerow([i, p, names[p], f"{probs[i, p]:.4f}"] + ([labels[i]] if labels is not None else []))
    return buf.getvalue().encode()


def baselines(x: np.ndarray, y: np.ndarray, parts: dict, *, balanced: bool) -> tuple[list[dict], dict]:
    """The training majority class and logistic regression (class-balanced if asked) on the same
    features, fitted on parts["fit"], selected on parts["val"], scored on parts["test"]: (a row of scores
    each, name -> its probabilities on the test items, for paired comparisons)."""
    from sklearn.linear_model import LogisticRegression

    fit_, val, test = parts["fit"], parts["val"], parts["test"]
    majority = int(np.bincount(y[fit_], minlength=2).argmax())
    logistic = LogisticRegression(max_iter=2000, class_weight="balanced" if balanced else None)
    logistic.fit(x[fit_], y[fit_])
    probabilities = {"majority": np.full(len(test), float(majority)), "logistic": logistic.predict_proba(x[test])[:, 1]}
    rows = [
        {"model": "majority", **binary_scores(y[test], probabilities["majority"], prefix="test_")},
        {
            "model": "logistic",
            "train_accuracy": logistic.score(x[fit_], y[fit_]),
            "val_balanced_accuracy": binary_scores(y[val], logistic.predict_proba(x[val])[:, 1])["balanced_accuracy"],
            **binary_scores(y[test], probabilities["logistic"], prefix="test_"),
        },
    ]
    return rows, probabilities
