"""SimCLR augmentations and loss, SCAN, and the cluster study's contrastive road."""

import json
import math

import numpy as np
import pytest
import torch

from dlstudy.analysis.clustering import cluster
from dlstudy.analysis.metrics import clustering_scores
from dlstudy.analysis.scan import SCAN, mine_neighbours, scan_loss
from dlstudy.data.augment import colour_jitter, random_resized_crop
from dlstudy.models.contrastive import BYOL, ContrastiveEncoder, byol_loss, ema_update, nt_xent
from dlstudy.runs import is_complete

VEHICLES_ANIMALS = "data.groups=[[0,1,8,9],[2,3,4,5,6,7]]"


def test_views_keep_shape_and_range_and_differ(data_root):
    with np.load(data_root / "cifar10" / "cifar10_test.npz") as cifar:
        x = torch.from_numpy(cifar["x"][:64]).permute(0, 3, 1, 2).float() / 255  # (64, 3, 32, 32) in [0, 1]
    g = torch.Generator().manual_seed(0)
    views = [colour_jitter(random_resized_crop(x, generator=g), generator=g) for _ in range(2)]
    for v in views:
        assert v.shape == x.shape and v.min() >= 0 and v.max() <= 1
    assert (views[0] - views[1]).abs().mean() > 0.05  # two draws, two different views
    small = random_resized_crop(x, size=24, generator=g)
    assert small.shape == (64, 3, 24, 24)


def test_augmentations_at_zero_strength_are_the_identity():
    x = torch.rand(4, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    same = random_resized_crop(x, scale=(1, 1), ratio=(1, 1), flip=False, generator=g)
    assert torch.allclose(same, x, atol=1e-5)
    same = colour_jitter(x, brightness=0, contrast=0, saturation=0, hue=0, grayscale=0, generator=g)
    assert torch.allclose(same, x, atol=1e-5)
    mirrored = random_resized_crop(x, scale=(1, 1), ratio=(1, 1), flip=True, generator=torch.Generator().manual_seed(3))
    for a, b in zip(mirrored, x):  # each image is either itself or its mirror image
        assert torch.allclose(a, b, atol=1e-5) or torch.allclose(a, b.flip(-1), atol=1e-5)


def test_hue_and_saturation_leave_gray_images_gray():
    gray = torch.rand(6, 1, 8, 8).expand(6, 3, 8, 8)
    out = colour_jitter(
        gray,
        brightness=0,
        contrast=0,
        saturation=0.9,
        hue=0.5,
        p=1.0,
        grayscale=0,
        generator=torch.Generator().manual_seed(1),
    )
    assert torch.allclose(out, gray, atol=1e-5)
    one_channel = colour_jitter(torch.rand(3, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    assert one_channel.shape == (3, 1, 8, 8)


def test_nt_xent_known_answer_and_matching_views_beat_shuffled():
    b, t = 4, 0.5
    z = torch.eye(b)  # partners identical, everything else orthogonal
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + (2 * b - 2)))
    assert nt_xent(z, z.clone(), t).item() == pytest.approx(expected, rel=1e-6)
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(64, 16, generator=g)
    z2 = z1 + 0.3 * torch.randn(64, 16, generator=g)
    assert nt_xent(z1, z2).item() < nt_xent(z1, z2[torch.randperm(64, generator=g)]).item() - 1.0


def test_contrastive_encoder_shapes():
    model = ContrastiveEncoder(in_channels=1, channels=(8, 16, 32), projection_dim=12)
    x = torch.randn(5, 1, 28, 28)
    assert model.encode(x).shape == (5, 32) and model(x).shape == (5, 12)
    assert ContrastiveEncoder(in_channels=3, channels=(8, 16)).encode(torch.randn(2, 3, 32, 32)).shape == (2, 16)


def test_the_residual_backbone_halves_the_map_a_stage_and_pools_to_the_last_width():
    model = ContrastiveEncoder(in_channels=3, channels=(8, 16, 32), projection_dim=12, backbone="resnet")
    x = torch.randn(5, 3, 32, 32)
    assert model.encode(x).shape == (5, 32) and model(x).shape == (5, 12)
    maps = []
    hooks = [m.register_forward_hook(lambda m, i, o: maps.append(o.shape[-1])) for m in model.backbone[3:5]]
    model.encode(x)
    assert maps == [16, 8]  # the two residual stages, each strided by 2
    for h in hooks:
        h.remove()


def test_ema_update_on_a_toy_tensor():
    """teacher <- m * teacher + (1 - m) * student for parameters; buffers copied; the student untouched."""
    teacher, student = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        teacher.weight.copy_(torch.tensor([1.0, 2.0]))
        student.weight.copy_(torch.tensor([3.0, -2.0]))
        student.running_mean.copy_(torch.tensor([0.5, 0.25]))
    ema_update(teacher, student, momentum=0.75)
    assert torch.allclose(teacher.weight, torch.tensor([1.5, 1.0]))  # 0.75 * 1 + 0.25 * 3, 0.75 * 2 + 0.25 * -2
    assert torch.equal(teacher.running_mean, student.running_mean)
    assert torch.equal(student.weight, torch.tensor([3.0, -2.0]))
    ema_update(teacher, student, momentum=0.0)
    assert torch.equal(teacher.weight, student.weight)


def test_byol_loss_known_answers_and_only_the_student_learns():
    z = torch.eye(3)
    assert byol_loss(z, z, z, z).item() == pytest.approx(0.0, abs=1e-6)  # predictions on target: 0
    assert byol_loss(z, z, -z, -z).item() == pytest.approx(8.0)  # opposite: 4 a view, two views
    torch.manual_seed(0)
    model = BYOL(student=ContrastiveEncoder(in_channels=1, channels=(4, 8), projection_dim=6), momentum=0.5)
    x = torch.randn(8, 1, 12, 12)
    p1, p2 = model(torch.cat([x, x.flip(-1)])).chunk(2)
    t1, t2 = model.targets(torch.cat([x, x.flip(-1)])).chunk(2)
    byol_loss(p1, p2, t1, t2).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(p.grad is not None for p in model.student.parameters())
    before = [p.clone() for p in model.teacher.parameters()]
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(1.0)
    model.after_step()  # what the Trainer calls after each optimiser step
    for b, t, s in zip(before, model.teacher.parameters(), model.student.parameters()):
        assert torch.allclose(t, 0.5 * b + 0.5 * s)


def test_the_trainer_calls_after_step_once_a_step():
    from dlstudy.train import Trainer

    class Counted(torch.nn.Linear):
        steps = 0

        def after_step(self):
            self.steps += 1

    model = Counted(3, 1)
    loss = lambda m, batch: (m(batch[0]).pow(2).mean(), {})  # noqa: E731
    Trainer(model, loss, epochs=2, batch_size=4, lr=0.1, verbose=False).fit((torch.randn(10, 3),))
    assert model.steps == 2 * 3  # 10 rows in batches of 4: 3 steps an epoch


def test_mined_neighbours_exclude_the_image_itself_even_with_duplicates():
    feats = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.1, 1.0], [1.0, 0.1]])
    nbrs = mine_neighbours(feats, 2)
    assert nbrs.shape == (5, 2)
    assert all(i not in row for i, row in enumerate(nbrs))
    assert set(nbrs[2]) == {3, 0} or 3 in nbrs[2]
    some = mine_neighbours(feats, 2, rows=[3, 1])  # the report's neighbour rows: a few queries only
    assert some.shape == (2, 2) and some[0, 0] == 2 and 1 not in some[1]


def test_scan_loss_rewards_agreeing_neighbours_and_balanced_clusters():
    sure = torch.tensor([[[8.0, -8.0]], [[-8.0, 8.0]]])  # (B=2, heads=1, K=2), confident and balanced
    loss_agree, consistency, entropy = scan_loss(sure, sure, entropy_weight=1.0)
    loss_disagree, _, _ = scan_loss(sure, sure.flip(0), entropy_weight=1.0)
    assert loss_agree.item() < loss_disagree.item()
    assert entropy.item() == pytest.approx(math.log(2), rel=1e-4) and consistency.item() < 1e-3
    collapsed = torch.tensor([[[8.0, -8.0]], [[8.0, -8.0]]])
    assert scan_loss(collapsed, collapsed, entropy_weight=1.0)[0].item() > loss_agree.item()


def test_scan_clusters_separated_groups_as_well_as_kmeans():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 3
    labels = np.repeat(np.arange(4), 150)
    feats = centres[labels] + rng.normal(size=(600, 16))
    scan = SCAN(4, n_neighbors=10, epochs=30, seed=0).fit(feats)
    assert scan.labels_.shape == (600,) and 0 <= scan.head_ < scan.n_heads
    assert clustering_scores(labels, scan.labels_)["accuracy"] > 0.95
    assert (
        clustering_scores(labels, cluster(feats, "scan", 4, scan={"epochs": 30, "n_neighbors": 10}))["accuracy"] > 0.95
    )
    self_labelled = SCAN(4, n_neighbors=10, epochs=30, self_label_epochs=5, seed=0).fit(feats)
    assert self_labelled.confident_ > 0.5  # most images become confident labels
    assert clustering_scores(labels, self_labelled.labels_)["accuracy"] > 0.95


@pytest.mark.slow
def test_contrastive_run_beats_raw_pixels_on_vehicles_against_animals(cli, tmp_path, data_root):
    """A short real-data run: 3,000 CIFAR-10 test images, vehicles against animals, 6 SimCLR epochs on
    24-pixel crops. Measured: raw-pixel KMeans 0.646 accuracy, SimCLR features 0.814 (KMeans), 0.798 (SCAN)."""
    out = tmp_path / "c2"
    code, _, err = cli(
        "-q",
        "cluster",
        "--data",
        data_root / "cifar10" / "cifar10_test.npz",
        "--set",
        VEHICLES_ANIMALS,
        "--out",
        out,
        "--set",
        "data.limit=3000",
        "--set",
        "grid.encoders=[simclr]",
        "--set",
        "contrastive.train.epochs=6",
        "--set",
        "contrastive.augment.crop_size=24",
        "--set",
        "grid.reductions=[l2>pca:16]",
        "--set",
        "grid.clusterings=[kmeans, scan]",
        "--set",
        "scan.epochs=20",
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_encoder"] == "simclr"
    assert metrics["private_accuracy"] > metrics["raw_kmeans_private_accuracy"] + 0.08
    report = (out / "report.html").read_text()
    assert "Nearest neighbours" in report and "neighbours_simclr" in report
    # predict works for the SimCLR encoder too: new images, with the run's groups applied to their labels
    with np.load(data_root / "cifar10" / "cifar10_test.npz") as cifar:  # the file is sorted by class
        pick = np.random.default_rng(1).choice(len(cifar["y"]), 300, replace=False)
        np.savez(tmp_path / "new.npz", x=cifar["x"][pick], y=cifar["y"][pick])
    code, printed, err = cli("predict", out, "--data", tmp_path / "new.npz", "--out", tmp_path / "p.csv")
    assert code == 0, err
    result = dict(line.split(": ", 1) for line in printed.splitlines())
    assert int(result["n_images"]) == 300 and float(result["accuracy_with_run_matching"]) > 0.7


def test_a_killed_contrastive_run_resumes_from_its_last_epoch(cli, tmp_path, monkeypatch):
    from dlstudy.models import encoders as study
    from dlstudy.train import epoch_listener

    armed = []  # set once epoch 2 is checkpointed: the next step (the third epoch's first) is killed
    real = study.nt_xent

    def killed_in_third_epoch(*args, **kwargs):
        if armed:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(study, "nt_xent", killed_in_third_epoch)
    out = tmp_path / "r"
    settings = [
        "--set",
        "data.limit=400",
        "--set",
        "grid.encoders=[simclr]",
        "--set",
        "contrastive.train.epochs=3",
        "--set",
        "contrastive.train.batch_size=200",
        "--set",
        "grid.reductions=[l2]",
        "--set",
        "figures.map_points=200",
    ]
    with epoch_listener(lambda name, row, epochs: armed.append(1) if row["epoch"] == 2 else None):
        code, _, err = cli("cluster", "--out", out, *settings)
    assert code == 130 and not is_complete(out) and armed
    armed.clear()
    code, _, err = cli("-v", "cluster", "--out", out, "--resume", *settings)  # -v: each epoch's line on stderr
    assert code == 0 and is_complete(out), err
    assert "encoder-simclr: resuming after epoch 2" in err
    assert "encoder-simclr epoch 3/3" in err and "encoder-simclr epoch 1/3" not in err
