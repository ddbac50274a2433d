"""The answers' words follow the numbers: each answer function fed hand-made results."""

import re

import numpy as np
import pytest
import torch

from dlstudy.analysis.explanations import FACE_REGIONS, region_shares
from dlstudy.studies.classify import answers as classify
from dlstudy.studies.cluster import answers as cluster
from dlstudy.studies.generate import answers as generate
from dlstudy.studies.trend import answers as trend


def kl_rows(active: dict[float, int], *, kl=None, recon=None) -> list[dict]:
    kl = kl or {0.0: 250.0, 1.0: 17.0, 100.0: 0.1}
    recon = recon or {0.0: 200.0, 1.0: 215.0, 100.0: 280.0}
    return [
        {
            "model": "conv",
            "beta": b,
            "test_kl": kl[b],
            "test_reconstruction": recon[b],
            "active_units": a,
            "latent_dim": 50,
        }
        for b, a in active.items()
    ]


def test_the_kl_discussion_says_collapse_only_when_active_units_fall():
    fell = generate.kl_weight(kl_rows({0.0: 50, 1.0: 50, 100.0: 0}), "conv", {0.0: 0.1, 1.0: 0.07, 100.0: 0.02})
    assert "collapses" in fell and "from 50 to 0" in fell and "look alike" in fell
    stayed = generate.kl_weight(kl_rows({0.0: 50, 1.0: 12, 100.0: 12}), "conv", {0.0: 0.1, 1.0: 0.07, 100.0: 0.06})
    assert "collapse" not in stayed.replace("no posterior collapse", "") and "Unlike the textbook" in stayed
    assert "still vary" in stayed
    close = generate.kl_weight(kl_rows({0.0: 50, 1.0: 50, 100.0: 3}, kl={0.0: 20.0, 1.0: 17.0, 100.0: 0.1}), "conv", {})
    assert "does not move the codes much further" in close  # beta 0 agrees with beta 1 here: the text says so


def grid_rows(by_window: dict[int, float], split="time") -> list[dict]:
    return [
        {
            "split": split,
            "model": cell,
            "window": L,
            "test_balanced_accuracy": v + d,
            "test_accuracy": v + d,
            "train_rise_share": 0.22,
            "test_rise_share": 0.43,
            "test_roc_auc": 0.7,
        }
        for L, v in by_window.items()
        for cell, d in (("rnn", 0.0), ("lstm", 0.01), ("gru", 0.005))
    ]


def test_the_window_sentence_names_the_best_length_and_the_trend():
    rising = trend.window_length(grid_rows({3: 0.55, 10: 0.60, 30: 0.66}))
    assert "best window is L = 30" in rising and "longer windows help" in rising
    flat = trend.window_length(grid_rows({3: 0.600, 10: 0.605, 30: 0.602}))
    assert "best window is L = 10" in flat and "barely matters" in flat


def test_the_imbalance_sentence_states_the_real_class_shares():
    rows = grid_rows({5: 0.6})
    best = {**rows[1], "test_accuracy": 0.62, "test_balanced_accuracy": 0.61}
    said = trend.imbalance(rows, best, random_accuracy=0.70, majority_accuracy=0.57)
    assert "Rises are 22% of the training windows and 43% of the test windows" in said
    assert "already scores accuracy 0.570" in said and "+0.080 higher" in said
    even = trend.imbalance(rows, best, random_accuracy=0.625, majority_accuracy=0.51)
    assert "close to chance" in even and "no clear inflation" in even


def test_the_epoch_sentence_calls_overfitting_only_when_test_falls_while_train_rises():
    over = [{"accuracy": a, "test_accuracy": t} for a, t in [(0.6, 0.60), (0.7, 0.66), (0.8, 0.62), (0.9, 0.58)]]
    assert "overfits" in trend.epoch_curve(over, "RNN")
    level = [{"accuracy": a, "test_accuracy": t} for a, t in [(0.6, 0.60), (0.7, 0.65), (0.72, 0.645)]]
    assert "no sign of overfitting" in trend.epoch_curve(level, "RNN")


def test_saliency_shares_sum_to_one_and_the_sentence_quotes_them():
    maps = torch.rand(6, 48, 48)
    maps[:3, 35:44, 12:36] += 5  # three maps lit on the mouth
    shares = region_shares(maps, FACE_REGIONS)
    assert shares.shape == (6, 3) and torch.allclose(shares.sum(1), torch.ones(6)) and (shares >= 0).all()
    assert shares[:3, 1].min() > 0.5 > shares[3:, 1].max()
    names = ["eyes", "mouth", "rest"]
    by_class = {
        "Happy": dict(zip(names, shares[:3].mean(0).tolist())),
        "Sad": dict(zip(names, shares[3:].mean(0).tolist())),
    }
    said = classify.saliency(by_class, names)
    quoted = [int(p) for p in re.findall(r"(\d+)% on the", said)]
    assert len(quoted) == 3 and abs(sum(quoted) - 100) <= 2 and "the mouth draws most for Happy" in said


def test_the_confused_classes_sentence_reads_the_matrix():
    counts = np.array([[50, 30, 0], [5, 90, 5], [0, 2, 98]])
    said = classify.confused(counts, ["Angry", "Disgust", "Fear"])
    assert said.startswith("Most confused: Angry is taken for Disgust in 38% of cases (30 of 80)")
    assert "highest for Fear (98%)" in said and "lowest for Angry (62%)" in said


def test_the_training_sentence_gives_each_test_time_average_beside_the_plain_score():
    from dlstudy.analysis.classification import TTA_VIEWS

    assert set(classify.TTA_SAID) == set(TTA_VIEWS)  # every averaging the study computes has its words
    history = [{"val_accuracy": 0.60}, {"val_accuracy": 0.66}, {"val_accuracy": 0.65}]
    metrics = {
        "train_accuracy": 0.74,
        "val_accuracy": 0.65,
        "scored_on": "public",
        "public_accuracy": 0.673,
        "majority_class_accuracy": 0.249,
        "majority_class": "Happy",
    }
    plain = classify.training(history, metrics)
    assert "peaks at 0.660 in epoch 2" in plain and "0.673 on public, against 0.249" in plain and "mirror" not in plain
    said = classify.training(
        history, {**metrics, "public_accuracy_flip_tta": 0.679, "public_accuracy_ten_crop_tta": 0.684}
    )
    assert (
        "0.673 on public (0.679 when each image is averaged with its mirror image; 0.684 over ten crops and "
        "their mirrors), against"
    ) in said and "overfitting" in said


def test_the_cluster_grid_sentence_compares_with_raw_pixels():
    rows = [
        {"encoder": "raw pixels", "private_accuracy": 0.50, "accuracy": 0.5, "reconstruction_mse": None},
        {
            "encoder": "pool",
            "reduction": "pca:16",
            "clustering": "kmeans",
            "accuracy": 0.7,
            "private_accuracy": 0.70,
            "reconstruction_mse": 0.02,
        },
        {
            "encoder": "dense:128",
            "reduction": "pca:16",
            "clustering": "kmeans",
            "accuracy": 0.6,
            "private_accuracy": 0.6,
            "reconstruction_mse": 0.01,
        },
    ]
    said = cluster.grid(rows, rows[1], rows[0])
    assert (
        "above KMeans on raw pixels (0.500, +0.200)" in said and "dense:128, does not cluster best (pool does)" in said
    )
    tie = cluster.grid(rows, {**rows[1], "private_accuracy": 0.505}, rows[0])
    assert "not clearly above" in tie


@pytest.mark.parametrize(
    "name, words",
    [
        ("batchnorm", ["mu = (1/N) sum_i x_i", "upstream gradient dl/dy"]),
        ("pca", ["Lagrangian", "S u = lambda u", "stationary point"]),
    ],
)
def test_derivations_show_every_step(name, words):
    from dlstudy.derivations import batchnorm, pca

    d = {"batchnorm": batchnorm, "pca": pca}[name].derive({"batchnorm": batchnorm, "pca": pca}[name].Params())
    steps = "\n".join(d.steps)
    assert all(w in steps for w in words) and d.passed and re.search(r"\d", d.answer)


def test_deletion_answer_reads_both_orders_against_random():
    most = [
        {"removed": 0.0, "gradient": 0.8, "grad_cam": 0.8, "random": 0.8},
        {"removed": 0.5, "gradient": 0.2, "grad_cam": 0.6, "random": 0.6},
    ]
    least = [
        {"removed": 0.0, "gradient": 0.8, "grad_cam": 0.8, "random": 0.8},
        {"removed": 0.5, "gradient": 0.8, "grad_cam": 0.6, "random": 0.6},
    ]
    rows = {r["method"]: r for r in classify.deletion_areas({"most": most, "least": least})}
    assert rows["gradient"]["most salient first"] == pytest.approx(0.5)
    assert rows["gradient"]["gap"] == pytest.approx(0.3) and rows["random"]["gap"] == 0
    said = classify.deletion({"most": most, "least": least}, "blur")
    assert (
        "gradient 0.500 most salient first (falls faster than random) and 0.800 least salient first (stays above"
        in said
    )
    assert "grad cam 0.700 most salient first (no faster than random) and 0.700 least salient first (not above" in said
    assert "blurred copy" in said and "random order 0.700" in said
