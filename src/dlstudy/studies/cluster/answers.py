"""Answers to the cluster questions (1-6) from the numbers of a cluster run."""

from __future__ import annotations

import numpy as np


# what the variant table's columns mean, for the reader of question 1
GRID_WORDS = (
    "Each row clusters one encoder's features after the reduction chain ('a>b' applies a then b; 'l2' scales each "
    "vector to unit length). Autoencoders ('pool', 'dense:D') learn by reconstructing the images; 'simclr' learns by "
    "telling two augmented views of an image from the views of other images (NT-Xent); 'byol' by predicting what a "
    "slowly following copy of itself makes of the other view; 'timm:...' is a frozen pretrained network. 'scan' trains "
    "clustering heads "
    "so that each image and its {k} nearest neighbours agree; neighbour accuracy is the share of those neighbours with "
    "the image's own label. The first row is KMeans on raw pixels. Accuracy uses the best one-to-one matching of "
    "clusters to labels; public accuracy matches on a fixed half, private applies that matching to the other half, so "
    "the selected (highlighted) variant's private accuracy is the honest number. Reconstruction MSE is per pixel in "
    "[0, 1]; seconds share an encoder's training among its rows."
)


def grid(rows: list[dict], best: dict, raw: dict, vs_raw=None, reconstruction=None) -> str:
    """The selected variant and, by a paired test on the private images, whether it beats raw-pixel KMeans; then
    which autoencoder reconstructs best, by a paired test of the per-image errors (`reconstruction`)."""
    ae = {r["encoder"]: r["reconstruction_mse"] for r in rows if r.get("reconstruction_mse") is not None}
    against = f"; {vs_raw.sentence()}" if vs_raw is not None else f" (raw-pixel KMeans: {raw['private_accuracy']:.3f})"
    out = (
        f"The best combination, chosen on the public half, is {best['encoder']} + {best['reduction']} + "
        f"{best['clustering']}: accuracy {best['accuracy']:.3f}, private {best['private_accuracy']:.3f}{against}."
    )
    if len(ae) > 1:
        acc = {e: max(r["public_accuracy"] for r in rows if r["encoder"] == e) for e in ae}
        lowest, clusters_best = min(ae, key=ae.get), max(acc, key=acc.get)
        same = (
            "also has the autoencoders' highest public accuracy"
            if lowest == clusters_best
            else f"does not have the autoencoders' highest public accuracy ({clusters_best} has)"
        )
        listed = " Reconstruction MSE per pixel in [0, 1]: " + ", ".join(f"{e} {v:.4f}" for e, v in ae.items())
        if reconstruction is not None and not reconstruction.differs:
            said = reconstruction.sentence(higher_is_better=False)
            out += f"{listed}. No autoencoder reconstructs measurably better: {said}."
        else:
            said = f" ({reconstruction.sentence(higher_is_better=False)})" if reconstruction is not None else ""
            out += f"{listed}. The autoencoder that reconstructs best is {lowest}{said}; it {same}, a description only."
    return out


def reconstructions(errors: dict[str, float], variance: float) -> str:
    """Each autoencoder's error against the images' own pixel variance (both per pixel in [0, 1]): the share
    of the between-image variation its reconstructions keep; at or below zero, no better than the mean image."""
    parts = []
    for e, v in errors.items():
        kept = 1 - v / max(variance, 1e-12)
        parts.append(
            f"{e}: squared error {v:.4f} per pixel, "
            + (
                f"{kept:.0%} of the pixel variance kept"
                if kept > 0
                else "no better than drawing the mean image (it needs more training)"
            )
        )
    return f"Against a pixel variance of {variance:.4f} across the images (pixels in [0, 1]): {'; '.join(parts)}."


def label_spread(agreement: dict | None, recall: dict[int, dict], names: list[str], *, view: str) -> str:
    """How the labels spread over the 2-D embedding (`agreement`: metrics.map_agreement of the map), then over
    the selected variant's clusters."""
    said = ""
    if agreement is not None:
        per = agreement["per_label"]
        best, worst = max(per, key=per.get), min(per, key=per.get)
        a, b = agreement["closest_pair"]
        said = (
            f"In the 2-D embedding ({view}), {agreement['overall']:.0%} of each point's 10 nearest neighbours share its "
            f"label: {names[best]} keeps together best ({per[best]:.0%}), {names[worst]} spreads most "
            f"({per[worst]:.0%}), and {names[a]} and {names[b]} mix most. "
        )
    best = max(recall, key=lambda c: recall[c]["recall"])
    worst = min(recall, key=lambda c: recall[c]["recall"])
    return said + (
        f"In the selected variant's clusters, {names[best]} is the most cleanly grouped ({recall[best]['recall']:.0%} "
        f"of its images in its matched cluster) and {names[worst]} the most spread ({recall[worst]['recall']:.0%}, "
        f"over {recall[worst]['clusters']} clusters holding at least 10% of it each)."
    )


def dimensions(rows: list[dict], best: dict, vs_worst=None) -> str:
    """Every reduction chain of the selected encoder and method; whether the chain matters, by a paired test on the
    private images of the selected chain against the one with the lowest public accuracy (both chosen on the public
    half, so the test half judges a choice it did not make)."""
    mine = [r for r in rows if r["encoder"] == best["encoder"] and r["clustering"] == best["clustering"]]
    listed = ", ".join(
        f"{r['reduction']} ({r['reduced_dim']}-d) {r['public_accuracy']:.3f}/{r['private_accuracy']:.3f}" for r in mine
    )
    if vs_worst is None:
        verdict = "one chain only, nothing to compare" if len(mine) == 1 else "no labels to compare them on"
    elif vs_worst.differs:
        verdict = f"the reduction matters: {vs_worst.sentence()}"
    else:
        verdict = f"no effect of the reduction that the private half can tell: {vs_worst.sentence()}"
    return (
        f"For {best['encoder']} + {best['clustering']}, public/private accuracy per reduction: {listed}. Against the "
        f"chain with the lowest public accuracy, on the private half: {verdict}."
    )


def two_images(pair: list[dict], classes: dict[str, np.ndarray], tests: dict) -> str:
    """Two images of different classes, then what one image each cannot tell: each class's mean reconstruction
    error over all its images (`tests['classes']`, unpaired), and whether the error ranks wrongly clustered images
    first (`tests['error_auc']`); each word only when its test, corrected with the report's others, says so."""
    a, b = pair
    said = (
        f"Image {a['index']} ({a['name']}) has reconstruction error {a['error']:.4f} and is "
        f"{'rightly' if a['right'] else 'wrongly'} clustered; image {b['index']} ({b['name']}) has {b['error']:.4f} "
        f"and is {'rightly' if b['right'] else 'wrongly'} clustered."
    )
    test = tests.get("classes")
    if test is not None:
        ea, eb = classes[a["name"]], classes[b["name"]]
        verdict = (
            f"the model finds the {a['name'] if test.difference > 0 else b['name']} harder"
            if test.differs
            else "no difference between the two classes that these images can tell"
        )
        said += (
            f" Over all their images, class {a['name']} has mean error {ea.mean():.4f} ({len(ea)} images) and class "
            f"{b['name']} {eb.mean():.4f} ({len(eb)}): {verdict} ({test.test})."
        )
    auc = tests.get("error_auc")
    if auc is None:
        return said
    ranks = auc.differs and auc.difference > 0
    link = "ranks wrongly clustered images first" if ranks else "does not predict a wrong cluster beyond chance"
    return said + f" Over all images, reconstruction error {link} (ROC AUC {0.5 + auc.difference:.2f}; {auc.test})."


def maps(agreement: dict[str, dict], names: list[str]) -> str:
    parts = []
    for title, a in agreement.items():
        per = a["per_label"]
        best, worst = max(per, key=per.get), min(per, key=per.get)
        i, j = a["closest_pair"]
        parts.append(
            f"{title}: {a['overall']:.0%} of each point's 10 nearest map neighbours share its label; "
            f"{names[best]} separates best ({per[best]:.0%}), {names[worst]} least ({per[worst]:.0%}), and "
            f"{names[i]} and {names[j]} overlap most"
        )
    return "; ".join(parts) + "."


def unlabelled(best: dict, n_variants: int) -> str:
    return (
        f"Without labels no accuracy can be measured; of the {n_variants} variants the label-free score chose "
        f"{best['encoder']} + {best['reduction']} + {best['clustering']} (silhouette {best['silhouette']:.3f}, "
        f"neighbour consistency {best['neighbour_consistency']:.3f}, size entropy {best['size_entropy']:.3f})."
    )


def label_free(rows: list[dict], free: int, best: int, agreement: dict[str, float | None], vs_pick=None) -> str:
    """What the label-free pick is, and, with labels, how far it and each score can be trusted."""
    pick = rows[free]
    said = (
        f"Without labels the pick is {pick['encoder']} + {pick['reduction']} + {pick['clustering']}: the highest "
        f"neighbour consistency in its encoder's own features ({pick['label_free']:.3f} of each image's 10 nearest "
        "neighbours share its cluster) among clusterings that are not degenerate (size entropy at least 0.5)."
    )
    if not agreement:
        return said
    trust = ", ".join(f"{k.replace('_', ' ')} {v:+.2f}" for k, v in agreement.items() if v is not None)
    if vs_pick is None:
        verdict = "it is the variant chosen with labels"
    elif vs_pick.differs and vs_pick.difference > 0:
        verdict = f"below the variant chosen with labels, do not trust it blindly here: {vs_pick.sentence()}"
    else:
        verdict = f"as good as the variant chosen with labels as far as this data can tell: {vs_pick.sentence()}"
    return (
        said + f" Its accuracy is {pick['accuracy']:.3f} against {rows[best]['accuracy']:.3f} for the variant "
        f"chosen with labels; {verdict}. Rank correlation of each score with accuracy over the variants: {trust}."
    )


def k_choice(curve: list[dict], k: int) -> str:
    row = next(c for c in curve if c["k"] == k)
    said = (
        f"Over k = {curve[0]['k']}..{curve[-1]['k']} the silhouette peaks at k = {k} ({row['silhouette']:.3f}), "
        "so the grid ran with that k."
    )
    if "majority_accuracy" in row:
        top = max(curve, key=lambda c: c["majority_accuracy"])
        said += (
            f" With labels, majority-vote accuracy (fair when k exceeds the classes) is {row['majority_accuracy']:.3f} "
            f"at k = {k} and highest, {top['majority_accuracy']:.3f}, at k = {top['k']}."
        )
    return said
