"""The generate study: face loading, the VAEs and their loss, the figures' pieces, a short real run
and bad input."""

import json

import numpy as np
import pytest
import torch

from dlstudy.analysis.generative import active_units, interpolate, posterior_samples, prior_samples
from dlstudy.data.images import load_images
from dlstudy.data.images import to_unit_tensor as to_tensor
from dlstudy.errors import InputError
from dlstudy.models.vae import MLPVAE, ConvVAE, ELBOLoss, beta_at, elbo_terms, kl_divergence
from dlstudy.report import format_value


@pytest.fixture(scope="module")
def faces(data_root):
    return load_images(data_root / "faces" / "faces", size=(32, 32))


def test_faces_resize_and_scale(data_root, faces):
    from PIL import Image

    assert faces.images.shape == (8000, 32, 32, 3) and faces.images.dtype == np.uint8 and faces.labels is None
    first = sorted((data_root / "faces" / "faces").iterdir())[0]
    with Image.open(first) as img:
        assert img.size == (96, 96)
        expected = np.asarray(img.convert("RGB").resize((32, 32), Image.BILINEAR))
    row = faces.names.index(str(first))
    assert np.array_equal(faces.images[row], expected)
    x = to_tensor(faces.images[:4], 32)
    assert x.shape == (4, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert torch.allclose(x[0, :, 0, 0] * 255, torch.tensor(expected[0, 0], dtype=torch.float32))
    # arrays of another size are resized in the study, to [0, 1] still
    assert to_tensor(faces.images[:2], 16).shape == (2, 3, 16, 16)


def test_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 5), torch.randn(3, 5) * 0.5
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn(200_000, 3, 5)  # samples of q(z|x), per row
    log_q = torch.distributions.Normal(mu, std).log_prob(z).sum(-1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    monte_carlo = (log_q - log_p).mean(0)
    assert torch.allclose(kl_divergence(mu, logvar), monte_carlo, rtol=0.02, atol=0.02)
    assert torch.allclose(kl_divergence(torch.zeros(2, 4), torch.zeros(2, 4)), torch.zeros(2))


def test_shapes_and_too_small_images():
    x = torch.rand(4, 3, 32, 32)
    for model in (MLPVAE(in_shape=(3, 32, 32)), ConvVAE(in_shape=(3, 32, 32))):
        logits, mu, logvar = model(x)
        assert logits.shape == x.shape and mu.shape == logvar.shape == (4, 50)
        recon, kl, _ = elbo_terms(model, x)
        assert recon.shape == kl.shape == (4,) and (kl >= 0).all()
    with pytest.raises(InputError, match="do not fit the conv VAE"):
        ConvVAE(in_shape=(3, 12, 12))


def test_beta_warmup_schedules():
    assert [beta_at(e, 2.0, "none", 4) for e in range(3)] == [2.0, 2.0, 2.0]
    assert [beta_at(e, 2.0, "linear", 4) for e in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert [beta_at(e, 1.0, "cyclical", 4) for e in range(8)] == [0.5, 1.0, 1.0, 1.0, 0.5, 1.0, 1.0, 1.0]


def test_figure_pieces():
    torch.manual_seed(0)
    model = ConvVAE(in_shape=(3, 32, 32)).eval()
    x1, x2 = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    latent, blend = interpolate(model, x1, x2)
    assert latent.shape == blend.shape == (11, 3, 32, 32)
    with torch.no_grad():
        ends = torch.sigmoid(model.decode(torch.cat([model.encode(x1)[0], model.encode(x2)[0]])))
    assert torch.allclose(latent[[0, -1]], ends, atol=1e-5)  # the endpoints decode the two posterior means
    assert torch.allclose(blend[0], x1[0]) and torch.allclose(blend[-1], x2[0])
    samples = prior_samples(model, 32, seed=0, device="cpu")
    assert samples.shape == (32, 3, 32, 32) and samples.std(0).mean() > 1e-3
    post = posterior_samples(model, x1, 8, seed=0)
    assert post.shape == (8, 3, 32, 32) and post.std(0).mean() > 1e-4
    assert active_units(np.c_[np.zeros(100), np.linspace(-1, 1, 100)]) == 1


def test_loss_decreases_on_real_faces(faces):
    from dlstudy.train import Trainer

    loss = {"likelihood": "bernoulli", "sigma": 0.1, "warmup": "none", "warmup_epochs": 1}
    x = to_tensor(faces.images[:1000], 32)
    torch.manual_seed(0)
    trainer = Trainer(ConvVAE(in_shape=(3, 32, 32)), ELBOLoss(beta=1.0, **loss), epochs=3, batch_size=64, lr=1e-3)
    history = trainer.fit((x,)).history_
    assert history[-1]["neg_elbo"] < history[0]["neg_elbo"] - 20
    assert history[-1]["neg_elbo"] == pytest.approx(history[-1]["reconstruction"] + history[-1]["kl"], rel=1e-4)


@pytest.mark.slow
def test_short_real_run_shows_the_kl_weight(data_root, tmp_path, cli):
    out = tmp_path / "faces"
    code, _, err = cli(
        "-q",
        "generate",
        "--data",
        data_root / "faces" / "faces",
        "--out",
        out,
        "--set",
        "data.limit=1500",
        "--set",
        "train.epochs=4",
        "--set",
        "grid.models=[conv]",
        "--beta",
        "0",
        "--beta",
        "1",
        "--beta",
        "100",
        "--set",
        "main.beta=1",
    )
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["image_size"] == 32 and m["n_train"] == 1050 and m["n_test"] == 450
    assert m["test_neg_elbo"] == pytest.approx(m["test_reconstruction"] + m["test_kl"], rel=1e-6)
    by_beta = {r["beta"]: r for r in m["grid"]}
    assert by_beta[0.0]["test_kl"] > by_beta[1.0]["test_kl"] > by_beta[100.0]["test_kl"]
    assert by_beta[100.0]["active_units"] < by_beta[0.0]["active_units"]
    html = (out / "report.html").read_text()
    assert format_value(m["test_neg_elbo"]) in html  # the report's numbers are the run's
    # the answers' numbers are kept in metrics.json, and the report's sentences use them
    assert 0 < m["reconstruction_pixel_mse"] < m["test_pixel_variance"] and set(m["prior_sample_spread"]) == {
        "0",
        "1",
        "100",
    }
    assert (
        m["prior_sample_spread"]["100"] < m["prior_sample_spread"]["1"]
    )  # beta 100: samples collapse towards one face
    mid = m["interpolation_mid_neg_elbo"]
    assert f"{mid['latent']:.1f} nats" in html and f"{m['reconstruction_pixel_mse']:.4f}" in html
    for fig in (
        "curves",
        "reconstructions",
        "prior_samples",
        "posterior_samples",
        "interpolation",
        "beta_reconstructions",
    ):
        assert (out / "figures" / f"{fig}.png").exists()
    code, printed, err = cli("predict", out, "--data", data_root / "faces" / "faces", "--out", tmp_path / "p.csv")
    assert code == 0, err
    scores = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)
    assert scores.shape == (8000, 4) and np.isfinite(scores).all()


def test_bad_input(tmp_path, cli, data_root):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli("generate", "--data", empty, "--out", tmp_path / "a")
    assert code == 2 and "holds no images" in err and "Traceback" not in err
    code, _, err = cli("generate", "--beta", "-1", "--out", tmp_path / "b")
    assert code == 2 and "--beta (item 0) must be greater than or equal to 0" in err  # the flag the user typed
    code, _, err = cli("generate", "--size", "12", "--out", tmp_path / "c")
    assert code == 2 and "do not fit the conv VAE" in err
    folder = tmp_path / "some"
    folder.mkdir()
    for name in sorted((data_root / "faces" / "faces").iterdir())[:5]:
        (folder / name.name).write_bytes(name.read_bytes())
    truncated = folder / "broken.jpg"
    truncated.write_bytes((folder / name.name).read_bytes()[:300])
    code, _, err = cli("generate", "--data", folder, "--out", tmp_path / "d")
    assert code == 2 and "broken.jpg" in err
    data = load_images(folder, size=(32, 32), skip_bad=True)
    assert len(data) == 5
