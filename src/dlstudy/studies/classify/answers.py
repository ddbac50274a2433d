"""Answers to the classify questions (19-23) from the numbers of a classify run."""

from __future__ import annotations

import numpy as np

from dlstudy.report import extreme

# how the training sentence names each test-time averaging (the views of analysis.classification.TTA_VIEWS)
# what a removed pixel of the deletion curves takes (explain.deletion_fill), for the caption and the sentence
FILL_SAID = {"blur": "the value of a blurred copy of the image", "black": "the black of the darkest pixel"}
TTA_SAID = {"flip": "when each image is averaged with its mirror image", "ten_crop": "over ten crops and their mirrors"}


def architecture(
    *,
    parameters: int,
    convs: int,
    size: int,
    channels: int,
    classes: int,
    hidden: list[int],
    last_map: int,
    grid: int,
    head: int,
) -> str:
    """The network in one breath, and where its parameters are: the first linear layer reads the last map
    averaged to a grid (never larger than the map: a copied map would only repeat numbers)."""
    pooled = "keeps it as it is" if grid == last_map else f"averages it to {grid}x{grid}"
    return (
        f"{convs} convolution layers (3x3, batch norm, LeakyReLU; max-pooling halves the map after each block) "
        f"turn a {channels}x{size}x{size} image into a {last_map}x{last_map} map; the head {pooled}, and fully "
        f"connected layers of {', '.join(map(str, hidden)) or 'no hidden'} units map it to {classes} class scores: "
        f"{parameters:,} parameters in all, {head / parameters:.0%} of them in the first linear layer."
    )


def training(history: list[dict], metrics: dict, curve=None) -> str:
    """The history in numbers; the gap between training and validation accuracy is called a gap (nearly every net
    has one); 'overfits' only when `curve` (analysis.uncertainty.Curve, corrected with the report's other tests)
    finds the last epoch's validation loss above the best epoch's on images the best was not chosen on."""
    best = max(range(len(history)), key=lambda i: history[i]["val_accuracy"])
    last = history[-1]
    low, high = metrics.get("val_accuracy_ci95") or (metrics["val_accuracy"],) * 2
    gap = metrics["train_accuracy"] - metrics["val_accuracy"]
    fit = (
        f"a generalisation gap of {gap:+.3f} between training and validation accuracy (validation "
        f"{metrics['val_accuracy']:.3f}, 95 % interval {low:.3f} to {high:.3f})"
    )
    if curve is not None and curve.overfits:
        fit += (
            f"; and the net overfits: validation loss is lowest in epoch {curve.best + 1} and higher in the last "
            f"while training loss falls ({curve.rise.difference:+.4f}; {curve.rise.test})"
        )
    elif curve is not None:
        fit += (
            f"; no overfitting a test can tell (validation loss, last epoch against epoch {curve.best + 1}: "
            f"{curve.rise.difference:+.4f}; {curve.rise.test})"
        )
    scored = metrics["scored_on"]
    keys = {f"{scored}_accuracy_{views}_tta": said for views, said in TTA_SAID.items()}
    averaged = "; ".join(f"{metrics[k]:.3f} {said}" for k, said in keys.items() if metrics.get(k) is not None)
    averaged = f" ({averaged})" if averaged else ""
    return (
        f"Over {len(history)} epochs validation accuracy peaks at {history[best]['val_accuracy']:.3f} in epoch "
        f"{best + 1} and ends at {last['val_accuracy']:.3f}; the final model scores {metrics['train_accuracy']:.3f} on "
        f"the training images (without augmentation) and {metrics[f'{scored}_accuracy']:.3f} on {scored}{averaged}, against "
        f"{metrics['majority_class_accuracy']:.3f} for always answering '{metrics['majority_class']}': {fit}."
    )


def confused(counts: np.ndarray, names: list[str], top: int = 3) -> str:
    """The most confused pairs (row-normalised rates off the diagonal) and the best and worst recall."""
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    pairs = sorted(
        ((rates[i, j], i, j) for i in range(len(names)) for j in range(len(names)) if i != j and counts[i, j]),
        reverse=True,
    )[:top]
    recall = dict(enumerate(np.diag(rates)))
    said = "; ".join(
        f"{names[i]} is taken for {names[j]} in {r:.0%} of cases ({counts[i, j]} of {counts[i].sum()})"
        for r, i, j in pairs
    )
    return (
        "Most confused (the largest rates, ranked, not tested against each other): "
        f"{said}. Recall is highest for {extreme(recall, names, highest=True)} and "
        f"lowest for {extreme(recall, names, highest=False)}."
    )


def saliency(shares: dict[str, dict[str, float]], regions: list[str], areas: list[float]) -> str:
    """`shares`: class -> region -> share of the attribution (each class's shares sum to one); `areas`: each
    region's share of the image, what a map that looked everywhere alike would give it."""
    mean = {r: float(np.mean([s[r] for s in shares.values()])) for r in regions}
    area = dict(zip(regions, areas))
    lead = {r: max(shares, key=lambda c: shares[c][r]) for r in regions[:-1]}
    parts = ", ".join(
        f"{mean[r]:.0%} on the {r} ({area[r]:.0%} of the image, {mean[r] / max(area[r], 1e-9):.1f}x its share)"
        for r in regions
    )
    most = "; ".join(
        f"the {r} draws most for {c} ({shares[c][r]:.0%}, the largest share, untested)" for r, c in lead.items()
    )
    return f"Averaged over the classes, the vanilla gradient puts {parts} (fixed regions, shares sum to one); {most}."


def filters(gains: list[float], layer: str, active_share: float) -> str:
    strong = sum(g > 2 for g in gains)
    return (
        f"Gradient ascent found inputs that drive {strong} of {len(gains)} filters of {layer} to more than twice "
        f"their response to noise (median {np.median(gains):.1f}x; 'twice' is this report's named bar, not a test); "
        f"in the example's feature maps {active_share:.0%} of the units are active (above zero)."
    )


def sharpness_sentence(table: list[dict], *, match: bool, tolerance: float = 1.25) -> str:
    """The distribution-shift warning: test splits whose median sharpness differs from the training
    median by more than `tolerance` in either direction, and what was done about it."""
    train = next(r["median_sharpness"] for r in table if r["split"] == "train")
    shifted = [
        r
        for r in table
        if r["split"] not in ("train", "val") and not 1 / tolerance <= r["median_sharpness"] / train <= tolerance
    ]
    if not shifted:
        return (
            f"Train and test images are about equally sharp (every test median within {tolerance - 1:.0%} of the "
            "training median): no sharpness shift."
        )
    parts = ", ".join(f"{r['split']} {r['median_sharpness'] / train:.1f}x" for r in shifted)
    if any(r["blur_sigma"] for r in shifted):
        return (
            f"Sharpness shift: test median sharpness against the training median is {parts}. The sharper test "
            "images were blurred with the Gaussian that matches their median to the training median "
            "(data.match_sharpness is on)."
        )
    return (
        f"Sharpness shift: test median sharpness against the training median is {parts}. A CNN trained on one "
        "sharpness reads the other as a different distribution; the test images are scored as given "
        "(set data.match_sharpness to true to blur sharper test images to the training median)."
    )


RANDOMISED = 0.5  # a rank correlation at or above this after re-initialising means the maps did not change


def randomisation_passes(check: dict[str, float]) -> dict[str, bool]:
    """The sanity check per method: its maps must change when the top layers are re-initialised."""
    return {m: rho < RANDOMISED for m, rho in check.items()}


def randomisation(check: dict[str, float]) -> str:
    passes = randomisation_passes(check)
    parts = [
        f"{m.replace('_', ' ')} {'changes' if ok else 'does NOT change'} (rank correlation {check[m]:.2f})"
        for m, ok in passes.items()
    ]
    verdict = (
        "every method checked depends on what the model learned"
        if all(passes.values())
        else "a method whose maps survive re-initialisation shows the input more than the model: read its maps "
        "with care"
    )
    return (
        f"With the last conv block and the classifier re-initialised, {'; '.join(parts)}: {verdict} "
        f"(the check of Adebayo et al. 2018; this report's named bar: it fails at a rank correlation of {RANDOMISED} "
        "or more)."
    )


def integrated_gradients(delta: np.ndarray, steps: int) -> str:
    return (
        f"Integrated Gradients starts from a black image and takes {steps} steps; its convergence delta (how "
        f"far the attributions' sum is from the score's change) is {float(np.median(delta)):.3g} in the median "
        f"image and {float(np.max(delta)):.3g} at most"
        + (
            ": small (this report's named bar: a median under 0.1), so the path integral is well approximated."
            if float(np.median(delta)) < 0.1
            else ": large (this report's named bar: a median of 0.1 or more), so more steps (explain.samples) would help."
        )
    )


def deletion_areas(curves: dict[str, list[dict]]) -> list[dict]:
    """Per method, the mean accuracy over its deletion curve (the area under it) with the most salient
    pixels removed first and with the least salient first, and the gap between the two (larger: the map
    ranks better what the prediction needs). Random order is one curve, so its gap is 0."""

    def area(order: str, key: str) -> float:
        return float(np.mean([r[key] for r in curves[order]]))

    return [
        {
            "method": k,
            "most salient first": area("most", k),
            "least salient first": area("least", k),
            "gap": area("least", k) - area("most", k),
        }
        for k in curves["most"][0]
        if k != "removed"
    ]


def deletion(curves: dict, fill: str, family: dict) -> str:
    """Whether each map's order removes what the prediction needs: its curve against random order's on the
    same images (`family`: 'deletion:most:<method>' and 'deletion:least:<method>', paired over the images)."""
    rows = {r["method"]: r for r in deletion_areas(curves)}
    chance = rows.pop("random")["most salient first"]
    parts = []
    for method, r in rows.items():
        most, least = family[f"deletion:most:{method}"], family[f"deletion:least:{method}"]
        faster = most.differs and most.difference < 0
        above = least.differs and least.difference > 0
        parts.append(
            f"{method.replace('_', ' ')} {r['most salient first']:.3f} most salient first "
            f"({'falls faster than' if faster else 'no faster than'} random: {most.test}) and "
            f"{r['least salient first']:.3f} least salient first "
            f"({'stays above' if above else 'not above'} random: {least.test})"
        )
    return (
        f"Mean accuracy over the deletion curves, where removed pixels take {FILL_SAID[fill]} (random order "
        f"{chance:.3f}; each map against random order paired over the {len(curves['per_image']['random'])} images): "
        f"{'; '.join(parts)}. A map that ranks what the prediction needs does both."
    )
