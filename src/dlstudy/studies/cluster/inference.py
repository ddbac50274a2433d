"""How sure the cluster study's words are. Images are independent, so each is drawn on its own. Every choice is
made on the public half of the labelled images (or without labels) and every comparison is scored on the private
half, paired over the same images; the report's comparisons are corrected together (Holm, in the protocol)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import normalized_mutual_info_score, roc_auc_score

from dlstudy.analysis.metrics import (
    apply_matching,
    best_matching,
    cluster_accuracy,
    leaderboard_halves,
    private_correct,
)
from dlstudy.analysis.uncertainty import (
    RECOMPUTED,
    Comparison,
    Items,
    bootstrap_ci,
    compare,
    constant,
    mean_of,
    per_resample,
    unpaired,
)


def key(row: dict) -> str:
    return f"{row['encoder']}|{row['reduction']}|{row['clustering']}"


def cluster_intervals(labels: np.ndarray, clusters: np.ndarray, *, seed: int) -> dict:
    """95 % intervals of the selected variant's scores, bootstrapped over the labelled images: accuracy and NMI
    recomputed on each resample (the matching too), private accuracy over the private half with the public half's
    matching fixed. Plain resampling: accuracy's spread includes the class shares' own."""
    known = labels >= 0
    y, c = labels[known], clusters[known]
    _, right = private_correct(labels, clusters)
    accuracy = per_resample(lambda rows: cluster_accuracy(y[rows], c[rows]))
    nmi = per_resample(lambda rows: normalized_mutual_info_score(y[rows], c[rows]))
    return {
        "accuracy_ci95": list(bootstrap_ci(accuracy, len(y), seed=seed, resamples=RECOMPUTED)),
        "private_accuracy_ci95": list(bootstrap_ci(mean_of(right), len(right), seed=seed)),
        "nmi_ci95": list(bootstrap_ci(nmi, len(y), seed=seed, resamples=RECOMPUTED)),
    }


def paired(rows: list[dict], assignments: dict, labels: np.ndarray, *, best: int, free: int, seed: int) -> dict:
    """The selected variant against raw-pixel KMeans, the label-free pick and its own encoder's worst reduction
    chain by public accuracy (chosen where the selection was made), each scored on the same private images."""

    def named(row):
        return (
            "KMeans on raw pixels"
            if row is rows[0]
            else " + ".join(row[c] for c in ("encoder", "reduction", "clustering"))
        )

    chosen = rows[1:][best]
    mine = [r for r in rows[1:] if r["encoder"] == chosen["encoder"] and r["clustering"] == chosen["clustering"]]
    others = {"raw": rows[0], "label_free": rows[1:][free], "reduction": min(mine, key=lambda r: r["public_accuracy"])}
    y, ours = private_correct(labels, assignments[key(chosen)])
    items = Items(n=len(y), name="private images")
    out = {}
    for role, row in others.items():
        if row is not chosen:
            _, theirs = private_correct(labels, assignments[key(row)])
            what = "private accuracy"
            out[f"vs:{role}"] = compare(
                named(chosen), named(row), mean_of(ours), mean_of(theirs), items, what=what, seed=seed
            )
    return out


def reconstruction(errors: dict[str, np.ndarray | None], *, seed: int) -> dict[str, Comparison]:
    """The autoencoder with the lowest mean reconstruction error on the public half against the runner-up there,
    paired over the private half's images (the half that did not choose them)."""
    ae = {spec: e for spec, e in errors.items() if e is not None}
    if len(ae) < 2:
        return {}
    public, private = leaderboard_halves(len(next(iter(ae.values()))))
    lowest, runner_up = sorted(ae, key=lambda s: float(ae[s][public].mean()))[:2]
    a, b = mean_of(ae[lowest][private]), mean_of(ae[runner_up][private])
    items = Items(n=len(private), name="private images")
    return {"reconstruction": compare(lowest, runner_up, a, b, items, what="MSE", seed=seed)}


def error_tests(results, *, seed: int) -> dict[str, Comparison]:
    """Question 5's tests on the first autoencoder's best chain: the two shown images' classes' mean errors
    (unpaired, each class's images drawn on their own), and whether the error ranks wrongly clustered images
    first (ROC AUC against chance's 0.5)."""
    spec = next((s for s in results.errors if results.errors[s] is not None), None)
    if spec is None or not results.labelled or len(results.figure_indices) < 2:
        return {}
    labels, clusters, known = results.data.labels, results.best_of(spec), results.known
    right = apply_matching(clusters, best_matching(labels[known], clusters[known])) == labels
    errors = results.errors[spec]
    a, b = (results.name(i) for i in results.figure_indices[:2])
    by_name = {results.class_names[c]: errors[known & (labels == c)] for c in np.unique(labels[known])}
    out = {}
    if a != b:
        out["classes"] = unpaired(f"class {a}", f"class {b}", by_name[a], by_name[b], what="mean error", seed=seed)
    wrong, e = ~right[known], errors[known]
    if 0 < wrong.sum() < len(wrong):

        def auc(rows):
            return float(roc_auc_score(wrong[rows], e[rows])) if 0 < wrong[rows].sum() < len(rows) else float("nan")

        out["error_auc"] = compare(
            "reconstruction error",
            "chance",
            per_resample(auc),
            constant(0.5),
            len(e),
            what="ROC AUC for a wrong cluster",
            seed=seed,
            resamples=RECOMPUTED,
        )
    return out
