"""Answers to the cluster questions (1-6) from the numbers of a cluster run."""

from __future__ import annotations

NOISE = 0.01  # accuracy differences below this are within the spread across seeds we measured

# what the variant table's columns mean, for the reader of question 1
GRID_WORDS = (
    "Each row clusters one encoder's features after the reduction chain ('a>b' applies a then b; 'l2' scales each "
    "vector to unit length). Autoencoders ('pool', 'dense:D') learn by reconstructing the images; 'simclr' learns by "
    "telling two augmented views of an image from the views of other images (NT-Xent). 'scan' trains clustering heads "
    "so that each image and its {k} nearest neighbours agree; neighbour accuracy is the share of those neighbours with "
    "the image's own label. The first row is KMeans on raw pixels. Accuracy uses the best one-to-one matching of "
    "clusters to labels; public accuracy matches on a fixed half, private applies that matching to the other half, so "
    "the selected (highlighted) variant's private accuracy is the honest number. Reconstruction MSE is per pixel in "
    "[0, 1]; seconds share an encoder's training among its rows."
)


def grid(rows: list[dict], best: dict, raw: dict) -> str:
    beat = best["private_accuracy"] - raw["private_accuracy"]
    words = "above" if beat > NOISE else "not clearly above"
    ae = {r["encoder"]: r["reconstruction_mse"] for r in rows if r.get("reconstruction_mse") is not None}
    out = (
        f"The best combination, chosen on the public half, is {best['encoder']} + {best['reduction']} + "
        f"{best['clustering']}: accuracy {best['accuracy']:.3f}, private {best['private_accuracy']:.3f}, {words} "
        f"KMeans on raw pixels ({raw['private_accuracy']:.3f}, {beat:+.3f})."
    )
    if len(ae) > 1:
        acc = {e: max(r["accuracy"] for r in rows if r["encoder"] == e) for e in ae}
        lowest, clusters_best = min(ae, key=ae.get), max(acc, key=acc.get)
        same = "also clusters best" if lowest == clusters_best else f"does not cluster best ({clusters_best} does)"
        out += (
            " Reconstruction MSE per pixel in [0, 1]: "
            + ", ".join(f"{e} {v:.4f}" for e, v in ae.items())
            + f"; the autoencoder that reconstructs best, {lowest}, {same}."
        )
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


def label_spread(recall: dict[int, dict], names: list[str]) -> str:
    best = max(recall, key=lambda c: recall[c]["recall"])
    worst = min(recall, key=lambda c: recall[c]["recall"])
    return (
        f"In the selected variant's clusters, {names[best]} is the most cleanly grouped ({recall[best]['recall']:.0%} "
        f"of its images in its matched cluster) and {names[worst]} the most spread ({recall[worst]['recall']:.0%}, "
        f"over {recall[worst]['clusters']} clusters holding at least 10% of it each)."
    )


def dimensions(rows: list[dict], best: dict) -> str:
    mine = [r for r in rows if r["encoder"] == best["encoder"] and r["clustering"] == best["clustering"]]
    top = max(mine, key=lambda r: r["public_accuracy"])
    spread = max(r["private_accuracy"] for r in mine) - min(r["private_accuracy"] for r in mine)
    listed = ", ".join(
        f"{r['reduction']} ({r['reduced_dim']}-d) {r['public_accuracy']:.3f}/{r['private_accuracy']:.3f}" for r in mine
    )
    verdict = "the reduction matters" if spread > 3 * NOISE else "the reduction barely matters"
    return (
        f"For {best['encoder']} + {best['clustering']}, public/private accuracy per reduction: {listed}; best "
        f"{top['reduction']}, and private accuracy spans {spread:.3f}: {verdict}."
    )


def two_images(pair: list[dict], auc: float | None) -> str:
    a, b = pair
    harder = a if a["error"] > b["error"] else b
    said = (
        f"Image {a['index']} ({a['name']}) has reconstruction error {a['error']:.4f} and is "
        f"{'rightly' if a['right'] else 'wrongly'} clustered; image {b['index']} ({b['name']}) has {b['error']:.4f} "
        f"and is {'rightly' if b['right'] else 'wrongly'} clustered: the model finds the {harder['name']} harder."
    )
    if auc is None:
        return said
    link = "predicts" if auc >= 0.6 else "barely predicts" if auc >= 0.55 else "does not predict"
    return said + f" Over all images, reconstruction error {link} a wrong cluster (ROC AUC {auc:.2f})."


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


def label_free(rows: list[dict], free: int, best: int, agreement: dict[str, float | None]) -> str:
    """What the label-free pick is, and, with labels, how far it and each score can be trusted."""
    pick = rows[free]
    said = (
        f"Without labels the pick is {pick['encoder']} + {pick['reduction']} + {pick['clustering']}: the highest "
        f"neighbour consistency in its encoder's own features ({pick['label_free']:.3f} of each image's 10 nearest "
        "neighbours share its cluster) among clusterings that are not degenerate (size entropy at least 0.5)."
    )
    if not agreement:
        return said
    gap = rows[best]["accuracy"] - pick["accuracy"]
    trust = ", ".join(f"{k.replace('_', ' ')} {v:+.2f}" for k, v in agreement.items() if v is not None)
    verdict = (
        "as good as the best"
        if gap <= NOISE
        else ("close to the best" if gap <= 3 * NOISE else "clearly below the best: do not trust it blindly here")
    )
    return (
        said + f" Its accuracy is {pick['accuracy']:.3f} against {rows[best]['accuracy']:.3f} for the variant "
        f"chosen with labels ({gap:+.3f}): {verdict}. Rank correlation of each score with accuracy over the "
        f"variants: {trust}."
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
