"""Answers to the generate questions (13-18) from the numbers of a generate run."""

from __future__ import annotations


def architecture(*, n_train: int, n_test: int, size: int, channels: int, models: dict[str, dict]) -> str:
    nets = "; ".join(
        f"the {kind} VAE has {m['parameters']:,} parameters and a {m['latent_dim']}-d latent code"
        for kind, m in models.items()
    )
    return (
        f"{n_train} training and {n_test} test images, resized to {size}x{size} with {channels} channel(s) and "
        f"scaled to [0, 1]; {nets}. Each encoder outputs a mean and a log-variance; the decoder maps a code back "
        "to pixel logits (tables above, measured on a real batch)."
    )


def learning_curve(history: list[dict], name: str, *, end=None) -> str:
    """Where the negative ELBO went, its parts at the end, the train-test gap, and whether the test curve was still
    falling in the last epoch: `end`, the last epoch's per-image test nats against the epoch before's, paired over
    the same images (and corrected with the report's other tests)."""
    first, last = history[0], history[-1]
    if end is None:
        ending = "too short to say whether it still falls (one epoch)"
    elif end.differs and end.difference < 0:
        ending = f"still falling in the last epoch ({end.difference:+.2f} nats; {end.test}): more epochs would help"
    else:
        ending = f"not measurably falling in the last epoch ({end.difference:+.2f} nats; {end.test})"
    gap = last["test_neg_elbo"] - last["neg_elbo"]
    return (
        f"{name}: the training negative ELBO falls from {first['neg_elbo']:.1f} to {last['neg_elbo']:.1f} nats "
        f"in {len(history)} epochs (test {last['test_neg_elbo']:.1f}, {gap:+.1f} against training), of which "
        f"reconstruction {last['test_reconstruction']:.1f} and KL {last['test_kl']:.1f} on the test images; "
        f"the test curve is {ending}."
    )


def reconstructions(*, nats: float, mse: float, variance: float) -> str:
    """`mse`: reconstructions against originals, `variance`: the test images' own mean pixel variance, both
    with pixels in [0, 1]; their ratio is the share of the between-image variation the model keeps."""
    kept = 1 - mse / max(variance, 1e-12)
    return (
        f"Reconstructing a test image costs {nats:.1f} nats; per pixel (in [0, 1]) the squared error is "
        f"{mse:.4f} against a pixel variance of {variance:.4f} across the test images, so the reconstructions keep "
        f"{kept:.0%} of what varies between images; the rest, fine detail, is what the blur loses."
    )


def prior_samples(*, samples_spread: float, test_spread: float) -> str:
    ratio = samples_spread / max(test_spread, 1e-12)
    verdict = (
        "they vary about as much as real images"
        if ratio >= 0.7
        else "they vary less than real images: the decoder maps much of the prior to similar images"
        if ratio >= 0.3
        else "they barely vary: the decoder maps the prior to nearly one image"
    )
    return (
        f"Decodes of z ~ N(0, I) have a pixel standard deviation across samples of {samples_spread:.3f} against "
        f"{test_spread:.3f} across test images ({ratio:.0%}): {verdict} (this report's own descriptive bands, not a "
        "test: at least 70 % of the test images' spread is 'about as much', 30-70 % 'less', below 30 % 'barely')."
    )


def interpolation(*, latent_mid: float, blend_mid: float, nearest: dict[str, float]) -> str:
    """Whether the latent path stays near the data: its middle decode's distance to the nearest training image
    against the endpoints' decodes' (RMS per pixel); beside it, the model's own bound of the two halfway images."""
    ends = max(nearest["start"], nearest["end"])
    near = nearest["middle"] <= ends
    where = (
        "no further from the training images than the endpoints' decodes: on this one path, the middle stays as near "
        "the data as its ends (a single path, so a description, not a test)"
        if near
        else f"{nearest['middle'] / max(ends, 1e-9):.1f}x as far from any training image as the endpoints' decodes: "
        "on this one path the middle lies further from the data than its ends (a single path: a description, not a test)"
    )
    return (
        f"Halfway along, the latent path decodes to an image {nearest['middle']:.3f} (RMS per pixel) from its nearest "
        f"training image, against {nearest['start']:.3f} and {nearest['end']:.3f} for the two ends: {where}. The "
        f"model's own bound scores it {latent_mid:.1f} nats and the pixel blend {blend_mid:.1f}."
    )


def reconstructions_by_beta(where: dict[float, dict[str, float]]) -> str:
    """A caption that follows the images: for each beta, whether each reconstruction keeps its own image (nearer
    its original than another image), and whether they are darker than a collapsed posterior's mean image (nearer
    a black image than the mean image)."""
    said = []
    for beta, d in sorted(where.items()):
        if d["to_black"] < d["to_mean_image"]:
            kind = (
                f"near-black (mean brightness {d['brightness']:.3f} against the data's {d['data_brightness']:.3f}): "
                "darker than the mean image a collapsed posterior should decode"
            )
        elif d["to_originals"] < d["to_other_originals"]:
            kind = "each keeps its own image, nearer its original than another image"
        else:
            kind = "no nearer its own original than another image: every image decodes alike"
        said.append(
            f"beta {beta:g}: {kind} (RMS per pixel {d['to_originals']:.3f} to its original, "
            f"{d['to_other_originals']:.3f} to another, {d['to_mean_image']:.3f} to the mean image)"
        )
    return "; ".join(said) + "."


def kl_weight(rows: list[dict], kind: str, spread: dict[float, float], comparisons: dict | None = None) -> str:
    """The KL-weight discussion, every claim from this run and its test (`comparisons`: '<what>:<beta>' against
    beta = 1, or the smallest beta without it): posterior collapse only when active units (Burda et al.'s
    definition: posterior-mean variance over the images above 0.01) fall at the largest beta by a paired test over
    the test images; prior holes only when the smallest beta's KL is higher by its test; and the text says so when
    the run disagrees with the textbook."""
    by = {r["beta"]: r for r in rows if r["model"] == kind}
    lo, hi = min(by), max(by)
    ref = 1.0 if 1.0 in by and hi > 1.0 else lo
    parts = [
        f"For the {kind} VAE, "
        + "; ".join(
            f"beta = {b:g}: KL {by[b]['test_kl']:.1f} nats, {by[b]['active_units']} of {by[b]['latent_dim']} units "
            f"active, reconstruction {by[b]['test_reconstruction']:.1f} nats"
            for b in sorted(by)
        )
        + "."
    ]
    if hi > ref:
        a_ref, a_hi = by[ref]["active_units"], by[hi]["active_units"]
        fewer = (comparisons or {}).get(f"active:{hi:g}")
        if a_hi < a_ref and fewer is not None and fewer.differs:
            test = (comparisons or {}).get(f"reconstruction:{hi:g}")
            worse = test is not None and test.differs and test.difference > 0  # more nats: worse
            said = f" ({test.sentence(higher_is_better=False)})" if test is not None else ""
            parts.append(
                f"At beta = {hi:g} the posterior collapses towards the prior: active units fall from {a_ref} "
                f"to {a_hi} ({fewer.test})"
                + (
                    ", and reconstruction gets worse, as expected"
                    if worse
                    else ", though reconstruction is not measurably worse"
                )
                + f"{said}."
            )
        else:
            tested = f"; {fewer.test}" if fewer is not None else ""
            parts.append(
                f"Unlike the textbook expectation, beta = {hi:g} shows no posterior collapse a test can tell in this "
                f"run: {a_hi} active units against {a_ref} at beta = {ref:g}{tested}."
            )
        varies = (comparisons or {}).get(f"spread:{hi:g}")
        if hi in spread and ref in spread and varies is not None:
            alike = varies.differs and varies.difference < 0  # less spread than beta = ref's, beyond the noise
            parts.append(
                f"Its prior samples {'look alike' if alike else 'still vary'} (pixel spread "
                f"{spread[hi]:.3f} against {spread[ref]:.3f}; 95 % interval of the difference in each sample's "
                f"distance from their mean image {varies.low:+.3f} to {varies.high:+.3f}, bootstrap over the samples)."
            )
    if lo < ref:
        further = (comparisons or {}).get(f"kl:{lo:g}")
        if further is not None and further.differs and further.difference > 0:
            parts.append(
                f"At beta = {lo:g} nothing holds the codes near N(0, I) (KL {by[lo]['test_kl']:.1f} against "
                f"{by[ref]['test_kl']:.1f} nats at beta = {ref:g}), so prior draws land where no code was "
                "trained" + (f" (pixel spread of its samples {spread[lo]:.3f})" if lo in spread else "") + "."
            )
        else:
            parts.append(
                f"Unlike the textbook expectation, beta = {lo:g} does not move the codes much further from "
                f"the prior (KL {by[lo]['test_kl']:.1f} against {by[ref]['test_kl']:.1f} nats)."
            )
    return " ".join(parts)
