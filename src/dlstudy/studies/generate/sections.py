"""The generate study's report: one section per homework question (13-18), each ending in its answer."""

from __future__ import annotations

import numpy as np

from dlstudy import plots
from dlstudy.analysis.generative import decoded_distances, interpolate, posterior_samples, prior_samples, reconstruct
from dlstudy.data.images import to_uint8
from dlstudy.report import Report
from dlstudy.studies.generate import answers
from dlstudy.studies.generate.config import Config
from dlstudy.studies.generate.experiment import GenerateResults, pair, variant_name
from dlstudy.studies.protocol import section


@section("Preprocessing and the network architecture", question=13)
def architecture(report: Report, r: GenerateResults, cfg: Config) -> None:
    m = r.metrics
    report.paragraph(
        f"{m['n_train']} training and {m['n_test']} test images from {m['data']} "
        f"({cfg.data.test_fraction:.0%} held out with seed {cfg.seed}), resized to "
        f"{m['image_size']}x{m['image_size']} with {m['channels']} channel(s), pixels in [0, 1]."
    )
    for kind, rows in r.layers.items():
        report.table(
            rows,
            caption=f"The {kind} VAE: layers in the order they run, output shape for one image "
            "(channels x height x width), parameters",
            collapse=True,
        )
    report.answer(
        answers.architecture(
            n_train=m["n_train"], n_test=m["n_test"], size=m["image_size"], channels=m["channels"], models=r.sizes
        )
    )


@section("The learning curve of the ELBO", question=14)
def learning_curves(report: Report, r: GenerateResults, cfg: Config) -> None:
    lik = (
        "Bernoulli likelihood (binary cross-entropy with pixel intensities as targets, as the course reports; for "
        "non-binary pixels this is a score, not a normalised density)"
        if cfg.loss.likelihood == "bernoulli"
        else f"Gaussian likelihood with standard deviation {cfg.loss.sigma:g}"
    )
    report.paragraph(
        f"Negative ELBO per image in nats = reconstruction (-log p(x|z), {lik}) + KL(q(z|x) || N(0, I)), "
        "always with weight 1, so variants trained with different beta are scored on the same bound."
    )
    report.figure(
        plots.curve_grid(
            r.histories,
            {"negative ELBO": "neg_elbo", "reconstruction": "reconstruction", "KL": "kl"},
            ylabel="nats per image",
        ),
        "curves",
        "One column per variant, one row per quantity, each on its own linear axis: training (during "
        "training) and test per epoch. The KL row shows how much each beta lets the codes carry.",
    )
    report.answer(
        answers.learning_curve(
            r.histories[variant_name(r.main_kind, r.main_beta)],
            f"{r.main_kind} VAE at beta {r.main_beta:g}",
            end=r.family.get("curve_end"),
        )
    )


@section("Reconstructions of test images", question=15)
def reconstructions(report: Report, r: GenerateResults, cfg: Config) -> None:
    originals = r.x_test[r.shown].to(r.device)
    recon = reconstruct(r.main, originals)
    report.figure(
        plots.image_rows([to_uint8(originals), to_uint8(recon)], row_titles=["original", "reconstruction"]),
        "reconstructions",
        "Test images over their reconstructions (the decoder's mean at the posterior "
        "mean): what the codes keep, and the fine detail they lose.",
    )
    m = r.metrics
    report.answer(
        answers.reconstructions(
            nats=m["test_reconstruction"], mse=m["reconstruction_pixel_mse"], variance=m["test_pixel_variance"]
        )
    )


@section("Images decoded from samples of the prior", question=16)
def samples(report: Report, r: GenerateResults, cfg: Config) -> None:
    drawn = prior_samples(r.main, cfg.figures.samples, cfg.seed, r.device)
    report.figure(
        plots.image_rows([to_uint8(drawn)]),
        "prior_samples",
        f"{len(drawn)} decodes of z drawn from the prior N(0, I): new images, not reconstructions.",
    )
    post = to_uint8(
        posterior_samples(r.main, r.x_test[r.shown[:1]].to(r.device), cfg.figures.posterior_samples, cfg.seed)
    )
    report.figure(
        plots.image_rows(
            [np.concatenate([to_uint8(r.x_test[r.shown[:1]]), post])],
            captions=[["test image"] + ["z ~ q(z|x)"] * len(post)],
        ),
        "posterior_samples",
        "Samples around one test image's posterior: how much the code of one image is allowed to vary.",
    )
    spread = r.metrics["prior_sample_spread"]
    report.answer(
        answers.prior_samples(samples_spread=spread[f"{r.main_beta:g}"], test_spread=r.metrics["test_pixel_spread"])
    )


@section("Interpolation between two real images", question=17)
def interpolation(report: Report, r: GenerateResults, cfg: Config) -> None:
    x1, x2 = pair(r.x_test, r.shown, cfg, r.device)
    latent, blend = interpolate(r.main, x1, x2)
    a = [f"a={v:.1f}" for v in np.linspace(0, 1, 11)]
    ends = [to_uint8(x1), to_uint8(x2)]
    report.figure(
        plots.image_rows(
            [np.concatenate([ends[0], to_uint8(latent), ends[1]]), np.concatenate([ends[0], to_uint8(blend), ends[1]])],
            row_titles=["latent", "pixels"],
            captions=[["x1"] + a + ["x2"]],
        ),
        "interpolation",
        "Decoded points on the line between two test images' posterior means (top) against the pixel blend "
        "(1 - a) x1 + a x2 (bottom): the top row should stay one plausible image, the bottom is a double exposure.",
    )
    mid = r.metrics["interpolation_mid_neg_elbo"]
    report.answer(
        answers.interpolation(
            latent_mid=mid["latent"], blend_mid=mid["pixels"], nearest=r.metrics["interpolation_nearest_training"]
        )
    )


@section("KL weight 0, 1 and 100: what changes and why", question=18)
def kl_weight(report: Report, r: GenerateResults, cfg: Config) -> None:
    key = ["model", "beta", "test_neg_elbo", "test_reconstruction", "test_kl", "active_units"]
    report.table(
        r.rows,
        highlight=r.rows.index(r.main_row),
        first=key,
        caption="Every variant (highlighted: the main one). Active units: latent dimensions whose posterior "
        "mean has variance above 0.01 across the test images.",
    )
    betas = sorted(b for (k, b) in r.models if k == r.main_kind)
    originals = r.x_test[r.shown].to(r.device)
    x = r.x_test.to(r.device)
    where = {b: decoded_distances(reconstruct(r.models[(r.main_kind, b)], x).cpu(), r.x_test) for b in betas}
    report.figure(
        plots.image_rows(
            [to_uint8(originals)] + [to_uint8(reconstruct(r.models[(r.main_kind, b)], originals)) for b in betas],
            row_titles=["original"] + [f"beta {b:g}" for b in betas],
        ),
        "beta_reconstructions",
        f"Reconstructions of the same test images by the {r.main_kind} VAE at each beta. "
        + answers.reconstructions_by_beta(where),
    )
    drawn = {
        b: prior_samples(r.models[(r.main_kind, b)], 10, cfg.seed, r.device) for b in betas
    }  # the first 10 of each
    report.figure(
        plots.image_rows([to_uint8(drawn[b]) for b in betas], row_titles=[f"beta {b:g}" for b in betas]),
        "beta_prior_samples",
        f"Prior samples from the {r.main_kind} VAE at each beta (the same z for every row).",
    )
    report.answer(
        answers.kl_weight(
            r.rows,
            r.main_kind,
            {float(b): v for b, v in r.metrics["prior_sample_spread"].items()},
            r.family,
        )
    )


SECTIONS = [architecture, learning_curves, reconstructions, samples, interpolation, kl_weight]
CARD = [
    ("test negative ELBO (nats)", "test_neg_elbo", None),
    ("reconstruction (nats)", "test_reconstruction", None),
    ("KL (nats)", "test_kl", None),
    ("active units", "active_units", "latent_dim"),
]
