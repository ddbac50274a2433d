"""The classify study: FER2013 loaders on the real files, the CNN, augmentation, the sharpness
check, explanations, a short real run and bad input."""

import json

import numpy as np
import pytest
import torch

from dlstudy.analysis.architecture import layer_table
from dlstudy.analysis.explanations import SALIENCY, excite_filters, feature_maps, saliency
from dlstudy.studies.classify.answers import sharpness_sentence
from dlstudy.data.augment import random_affine, random_erasing, ten_crop
from dlstudy.data.expressions import EMOTIONS, load_expressions
from dlstudy.data.sharpness import gaussian_blur, matching_sigma, sharpness
from dlstudy.errors import InputError
from dlstudy.models.cnn import ExpressionCNN
from dlstudy.report import format_value


@pytest.fixture(scope="module")
def fer(data_root):
    return load_expressions(data_root / "fer2013" / "fer2013.npz")


def write_csv(path, images, labels, usage=None, *, header=("emotion", "pixels", "Usage")):
    lines = [",".join(header[: 3 if usage is not None else 2])]
    for i, (x, y) in enumerate(zip(images, labels)):
        row = [str(y), '"' + " ".join(map(str, x.reshape(-1))) + '"'] + ([usage[i]] if usage is not None else [])
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n")
    return path


# loaders on the real files -----------------------------------------------------------------------
def test_npz_loads_with_its_splits(fer):
    assert fer.data.images.shape == (32298, 48, 48, 1) and fer.data.images.dtype == np.uint8
    assert {s: int((fer.usage == s).sum()) for s in ("Training", "PublicTest")} == {
        "Training": 28709,
        "PublicTest": 3589,
    }
    assert fer.part("PrivateTest") is None
    assert np.bincount(fer.data.labels).tolist() == [4462, 492, 4593, 8110, 5483, 3586, 5572]
    assert fer.data.class_names == EMOTIONS


def test_image_folder_layout(data_root):
    s = load_expressions(data_root / "fer2013" / "images")
    assert s.data.images.shape == (280, 48, 48, 1)
    assert (s.usage == "Training").sum() == 140 and (s.usage == "PublicTest").sum() == 140
    # folder names map to FER2013's label order, not alphabetical order
    happy = [i for i, n in enumerate(s.data.names) if "/happy/" in n]
    assert set(s.data.labels[happy]) == {EMOTIONS.index("Happy")}
    assert np.bincount(s.data.labels).tolist() == [40] * 7


def test_fer_csv_and_hw3_csv_read_the_same_faces(fer, tmp_path):
    idx = np.r_[0:30, 28709:28720]  # some Training and some PublicTest rows of the real data
    x, y, u = fer.data.images[idx, ..., 0], fer.data.labels[idx], fer.usage[idx]
    s = load_expressions(write_csv(tmp_path / "fer2013.csv", x, y, u))
    assert np.array_equal(s.data.images[..., 0], x) and np.array_equal(s.data.labels, y)
    assert list(s.usage) == list(u)
    hw3 = load_expressions(write_csv(tmp_path / "train.csv", x, y, header=("label", "feature")))
    assert np.array_equal(hw3.data.images, s.data.images) and set(hw3.usage) == {"Training"}


def test_bad_csv_rows_are_named(fer, tmp_path):
    x, y = fer.data.images[:5, ..., 0], fer.data.labels[:5].copy()
    short = write_csv(tmp_path / "short.csv", x, y)
    lines = short.read_text().splitlines()
    lines[3] = lines[3].replace(' 0"', '"').rsplit(" ", 1)[0] + '"'  # drop a pixel from the third face
    short.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"short.csv: line 4 has 2303 pixels; every face needs 2304"):
        load_expressions(short)
    y[1] = 9
    with pytest.raises(InputError, match=r"line 3 has label 9, outside 0..6"):
        load_expressions(write_csv(tmp_path / "label.csv", x, y))


def test_bad_folders_are_named(data_root, tmp_path):
    import shutil

    root = tmp_path / "faces"
    shutil.copytree(data_root / "fer2013" / "images", root)
    (root / "train" / "calm").mkdir()
    with pytest.raises(InputError, match=r"class folder .*calm is empty"):
        load_expressions(root)
    (root / "train" / "calm").rmdir()
    (root / "train" / "happy" / "notes.txt").write_text("not a face")
    with pytest.raises(InputError, match=r"notes.txt is not a readable image"):
        load_expressions(root)
    assert len(load_expressions(root, skip_bad=True).data) == 280
    # the folder above the class folders (here the shared copy's fer2013/, holding images/) is one class
    with pytest.raises(
        InputError, match=r"fer2013: expected one subfolder per emotion .*found one subfolder \(images/\)"
    ):
        load_expressions(data_root / "fer2013")


def test_new_faces_in_a_flat_folder_beside_a_hidden_one(fer, tmp_path):
    from PIL import Image

    from dlstudy.data.expressions import load_new_faces

    (tmp_path / ".ipynb_checkpoints").mkdir()  # Jupyter leaves one in every folder it opens
    for i in range(3):
        Image.fromarray(fer.data.images[i, ..., 0]).save(tmp_path / f"{i}.png")
    faces, usage = load_new_faces(str(tmp_path), skip_bad=False)
    assert np.array_equal(faces.images, fer.data.images[:3]) and faces.labels is None and set(usage) == {"new"}


# model, augmentation, sharpness, explanations ------------------------------------------------------
@pytest.mark.parametrize("size", [48, 28])
def test_cnn_output_shape_and_summary(size):
    model = ExpressionCNN(image_size=size)
    assert model(torch.randn(5, 1, size, size)).shape == (5, 7)
    rows = layer_table(model, torch.randn(2, 1, size, size))
    layers, total = rows[:-1], rows[-1]
    assert sum(r["parameters"] for r in layers) == total["parameters"] == sum(p.numel() for p in model.parameters())
    assert layers[-1]["output"] == "7" and layers[0]["output"] == f"32 x {size} x {size}"
    with pytest.raises(InputError, match="too small"):
        ExpressionCNN(image_size=8)


def test_random_affine_identity_and_flip():
    x = torch.rand(6, 1, 12, 12)
    assert torch.allclose(random_affine(x), x, atol=1e-5)
    flipped = random_affine(x, flip=True, generator=torch.Generator().manual_seed(0))
    each = [torch.allclose(f, o.flip(-1), atol=1e-5) or torch.allclose(f, o, atol=1e-5) for f, o in zip(flipped, x)]
    assert all(each) and not torch.allclose(flipped, x)
    moved = random_affine(x, shift=0.1, rotate=10, scale=(0.9, 1.1), generator=torch.Generator().manual_seed(1))
    assert moved.shape == x.shape and not torch.allclose(moved, x)


def test_random_erasing_blanks_one_rectangle_in_about_p_of_the_images():
    x = torch.ones(2000, 1, 48, 48)
    assert torch.equal(random_erasing(x, p=0.0), x)
    erased = random_erasing(x, p=0.5, generator=torch.Generator().manual_seed(0)) == 0  # (B, 1, H, W)
    hit = erased.flatten(1).any(1)
    assert 0.45 < hit.float().mean() < 0.55
    share = erased[hit].flatten(1).float().mean(1)
    assert share.min() >= 0.015 and share.max() <= 0.36  # area (0.02, 0.33), up to rounding to whole pixels
    rows, cols = erased[hit][:, 0].any(2), erased[hit][:, 0].any(1)  # (n, H), (n, W)
    # one rectangle: the erased pixels are exactly the product of the erased rows and columns
    assert torch.equal(erased[hit][:, 0], rows[:, :, None] & cols[:, None, :])


def test_ten_crop_gives_the_corners_the_centre_and_their_mirrors():
    x = torch.arange(64.0).view(1, 1, 8, 8)  # pixel value = 8 * row + column
    whole = ten_crop(x, fraction=1.0)
    assert len(whole) == 10 and all(torch.allclose(v, x) for v in whole[:5])
    assert all(torch.allclose(v, x.flip(-1)) for v in whole[5:])
    top_left, top_right, bottom_left, bottom_right, centre = ten_crop(x, fraction=0.5)[:5]
    assert top_left.shape == x.shape and top_left.max() <= 27 and bottom_right.min() >= 36  # x[3, 3], x[4, 4]
    assert top_right[..., 0].min() >= 4 and bottom_left[..., 0, :].min() >= 32
    assert centre.mean() == pytest.approx(x.mean())


def test_matching_sigma_recovers_a_known_blur(fer):
    sharp = torch.from_numpy(fer.part("PublicTest").images[:500]).permute(0, 3, 1, 2).float() / 255
    blurred = gaussian_blur(sharp, 2.0)
    assert sharpness(blurred).median() < sharpness(sharp).median() / 2
    assert matching_sigma(sharp, float(sharpness(blurred).median())) == pytest.approx(2.0, abs=0.25)
    assert matching_sigma(blurred, float(sharpness(blurred).median())) == 0.0


def test_shipped_fer_is_sharp_on_both_splits(fer):
    """The shared copy's Training faces are the sharp originals (since 2026-11-23): both splits' median
    sharpness lie within 25 % of each other, and the report says there is no shift."""
    to = lambda s: torch.from_numpy(fer.part(s).images[:2000]).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    train, test = float(sharpness(to("Training")).median()), float(sharpness(to("PublicTest")).median())
    assert abs(test / train - 1) < 0.25
    table = [
        {"split": "train", "median_sharpness": train, "blur_sigma": 0.0},
        {"split": "public", "median_sharpness": test, "blur_sigma": 0.0},
    ]
    assert "no sharpness shift" in sharpness_sentence(table, match=False)


def test_sharpness_sentence_names_a_shift_and_what_was_done():
    table = [
        {"split": "train", "median_sharpness": 0.013, "blur_sigma": 0.0},
        {"split": "public", "median_sharpness": 0.052, "blur_sigma": 0.0},
    ]
    said = sharpness_sentence(table, match=False)
    assert "public 4.0x" in said and "scored as given" in said and "match_sharpness to true" in said
    table[1]["blur_sigma"] = 3.3
    assert "were blurred" in sharpness_sentence(table, match=True)


def test_match_sharpness_is_off_by_default_and_predict_follows_the_run(fer, tmp_path):
    """Blurring test faces is opt-in; predict reads the setting from the run it applies."""
    from dlstudy.api import resolve_config
    from dlstudy.studies import classify

    assert resolve_config("classify").data.match_sharpness is False
    faces = fer.part("PublicTest").images[:64]
    np.savez(tmp_path / "faces.npz", x=faces, y=fer.part("PublicTest").labels[:64])
    torch.manual_seed(0)
    cfg = resolve_config("classify", sets=["model.channels=[4]", "model.convs=[1]", "model.hidden=[8]"])
    model = classify.build_model(cfg, channels=1, size=48, n_classes=7)
    (tmp_path / "models").mkdir()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "models" / "cnn.safetensors")
    metrics = {
        "channels": 1,
        "image_size": 48,
        "input_mean": 0.5,
        "input_std": 0.25,
        "class_names": list(EMOTIONS),
        "train_sharpness": 0.2 * float(sharpness(torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255).median()),
    }
    sigmas = {}
    for match in (False, True):
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"match_sharpness": match})})
        out = tmp_path / f"p{match}.csv"
        sigmas[match] = classify.predict(
            tmp_path, cfg, metrics, data_path=str(tmp_path / "faces.npz"), labels=None, out=out, device="cpu"
        )["blur_sigma"]
    assert not any(sigmas[False].values()) and all(v > 1 for v in sigmas[True].values())


def test_explanations_have_the_input_shape_and_vary():
    torch.manual_seed(0)
    model = ExpressionCNN(channels=(8, 16), convs=(1, 1), hidden=(16,)).eval()
    x = torch.rand(3, 1, 48, 48)
    target = torch.tensor([0, 3, 6])
    for method in SALIENCY:
        s = saliency(model, x, target, method, samples=4)
        assert s.shape == (3, 48, 48) and (s >= 0).all() and s.std() > 0, method
    layer = model.conv_layers()[-1]
    inputs = excite_filters(model, layer, [0, 5], (1, 48, 48), steps=10)
    assert inputs.shape == (2, 1, 48, 48) and inputs[0].std() > 0 and not torch.allclose(inputs[0], inputs[1])
    # the ascent works: each input excites its own filter more than the starting noise does
    noise = 0.1 * torch.randn(2, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    for k, f in enumerate([0, 5]):
        assert (
            feature_maps(model, layer, inputs[k : k + 1])[f].mean()
            > feature_maps(model, layer, noise[k : k + 1])[f].mean()
        )
    assert feature_maps(model, layer, x[:1]).shape == (16, 24, 24)


def test_the_randomisation_check_fails_when_the_maps_do_not_change():
    """Built to fail: re-initialising nothing leaves every map as it was, so the check must say so; then
    re-initialising the top layers, as the study does, changes them."""
    from dlstudy.analysis.explanations import randomisation_check
    from dlstudy.studies.classify.answers import randomisation, randomisation_passes

    torch.manual_seed(0)
    model = ExpressionCNN(channels=(8, 16), convs=(1, 1), hidden=(16,)).eval()
    x, target = torch.rand(4, 1, 48, 48), torch.tensor([0, 3, 6, 1])
    unchanged = randomisation_check(model, [], x, target, ["gradient", "grad_cam"])
    assert unchanged == {"gradient": 1.0, "grad_cam": 1.0} and not any(randomisation_passes(unchanged).values())
    assert "does NOT change" in randomisation(unchanged)
    changed = randomisation_check(model, [model.features[-1], model.classifier], x, target, ["gradient", "grad_cam"])
    assert all(randomisation_passes(changed).values()) and "every method checked" in randomisation(changed)


def test_deletion_curve_falls_faster_for_the_pixels_that_matter():
    from dlstudy.analysis.explanations import deletion_curves

    class LeftHalf(torch.nn.Module):  # a model that reads only the left half of the image
        def forward(self, x):
            s = x[..., :24].mean(dim=(1, 2, 3))
            return torch.stack([s, 0.5 - s], dim=1) * 10

    x = torch.full((20, 1, 48, 48), 0.9)
    x[..., 24:] = 0.0
    y = torch.zeros(20, dtype=torch.long)
    left = torch.zeros(20, 48, 48)
    left[..., :24] = 1 + torch.rand(20, 48, 24)
    curves = deletion_curves(LeftHalf(), x, y, {"left": left}, fractions=(0.0, 0.5), fill="black")
    most = curves["most"]
    assert most[0]["left"] == most[0]["random"] == 1.0 and most[1]["left"] == 0.0 and most[1]["random"] == 1.0
    # least salient first removes the right half, which the model never reads
    assert curves["least"][1]["left"] == 1.0
    assert [r["random"] for r in curves["least"]] == [r["random"] for r in most]  # one random order, shown twice
    with pytest.raises(ValueError, match="deletion fill"):
        deletion_curves(LeftHalf(), x, y, {"left": left}, fill="grey")


def test_removed_pixels_take_the_fill_and_the_rest_stay():
    from dlstudy.analysis.explanations import remove_pixels

    x = torch.rand(3, 2, 8, 8)
    fill = -torch.ones_like(x)
    order = torch.stack([torch.randperm(64) for _ in range(3)])
    out = remove_pixels(x, order, 0.25, fill)
    gone = out == -1
    assert gone.sum() == 3 * 2 * 16 and torch.equal(out[~gone], x[~gone])
    for i in range(3):  # exactly the first quarter of each image's order, in every channel
        assert set(gone[i, 0].flatten().nonzero().flatten().tolist()) == set(order[i, :16].tolist())
        assert torch.equal(gone[i, 0], gone[i, 1])


# end to end --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_short_real_run_beats_the_majority_class(data_root, tmp_path, cli):
    out = tmp_path / "fer"
    code, _, err = cli(
        "-q",
        "classify",
        "--data",
        data_root / "fer2013" / "fer2013.npz",
        "--out",
        out,
        "--quick",
        "--set",
        "data.limit=8000",
        "--epochs",
        "4",
    )
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_train"] == 7200 and m["n_public"] == 3589 and m["private_accuracy"] is None
    assert m["blur_sigma"]["public"] == 0  # sharp on both splits, and blurring is opt-in
    assert m["public_accuracy"] > m["majority_class_accuracy"] + 0.05
    for key in ("public_accuracy", "val_accuracy", "train_accuracy", "macro_f1", "epochs", "parameters"):
        assert m[key] is not None
    html = (out / "report.html").read_text()
    assert format_value(m["public_accuracy"]) in html
    for fig in ("history", "confusion", "saliency", "filters", "feature_maps", "mistakes", "deletion"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    # the explanations the field expects beside the vanilla gradient, and the sanity check on them
    assert "Grad-CAM" in html and "occlusion" in html and "Model-randomisation check" in html
    assert "convergence delta" in html and m["public_accuracy_flip_tta"] > 0 and m["public_accuracy_ten_crop_tta"] > 0

    code, printed, err = cli("predict", out, "--data", data_root / "fer2013" / "images", "--out", tmp_path / "p.csv")
    assert code == 0, err
    result = dict(line.split(": ", 1) for line in printed.splitlines())
    assert int(result["n_images"]) == 280 and float(result["accuracy"]) > 1 / 7 + 0.05  # 40 faces per emotion
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 281


def test_default_digits_run_and_bad_flags(tmp_path, cli):
    code, _, err = cli(
        "-q", "classify", "--quick", "--out", tmp_path / "d", "--epochs", "2", "--set", "explain.methods=[gradient]"
    )
    assert code == 0, err
    m = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert m["image_size"] == 28 and m["public_accuracy"] > 0.8
    code, _, err = cli("classify", "--out", tmp_path / "x", "--set", "explain.methods=[gradcam]")
    assert code == 2 and "gradcam" in err and "Traceback" not in err
    code, _, err = cli("classify", "--out", tmp_path / "y", "--epochs", "0")
    assert code == 2 and "--epochs must be greater than or equal to 1" in err  # the flag, not the key
    code, _, err = cli("classify", "--out", tmp_path / "z", "--set", "explain.deletion_fill=grey")
    assert code == 2 and "deletion_fill" in err and not (tmp_path / "z").exists()
