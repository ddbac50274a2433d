import numpy as np
import pytest
from PIL import Image

from dlstudy.data.images import load_images, load_labels
from dlstudy.errors import InputError


def write_folder(root, classes=("cat", "dog"), n=3, size=(12, 10)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_npy_shapes(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((5, 8, 8, 3), np.uint8))
    np.save(tmp_path / "g.npy", np.zeros((5, 8, 8), np.uint8))
    assert load_images(tmp_path / "a.npy").images.shape == (5, 8, 8, 3)
    assert load_images(tmp_path / "g.npy").images.shape == (5, 8, 8, 1)
    np.save(tmp_path / "bad.npy", np.zeros((5, 8), np.uint8))
    with pytest.raises(InputError, match=r"bad.npy: images must have shape"):
        load_images(tmp_path / "bad.npy")


def test_float_pixels_and_nan(tmp_path):
    x = np.full((3, 4, 4, 1), 0.5, np.float32)
    np.save(tmp_path / "f.npy", x)
    assert load_images(tmp_path / "f.npy").images.max() == 128
    x[1, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(InputError, match="image 1 holds NaN"):
        load_images(tmp_path / "nan.npy")


def test_npz_labels_and_mismatch(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 8, 8, 3), np.uint8), y=np.array([0, 1, 1, 0]))
    assert load_images(tmp_path / "d.npz").labels.tolist() == [0, 1, 1, 0]
    np.savez(tmp_path / "nox.npz", images=np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="needs an array named 'x'"):
        load_images(tmp_path / "nox.npz")
    np.save(tmp_path / "y.npy", np.array([0, 1, 1]))
    with pytest.raises(InputError, match="3 labels for 4 images"):
        load_images(tmp_path / "d.npz", labels=tmp_path / "y.npy")
    (tmp_path / "y.csv").write_text("id,label\n0,1\n1,0\n2,1\n3,1\n")
    assert load_images(tmp_path / "d.npz", labels=tmp_path / "y.csv").labels.tolist() == [1, 0, 1, 1]
    assert load_labels(tmp_path / "y.npy")[0].dtype == np.int64


def test_npz_class_names_from_class_names_or_image_paths(tmp_path):
    x, y = np.zeros((4, 8, 8, 3), np.uint8), np.array([1, 0, 1, 0])
    np.savez(tmp_path / "n.npz", x=x, y=y, class_names=np.array(["cat", "dog"]))
    assert load_images(tmp_path / "n.npz").class_names == ["cat", "dog"]
    paths = np.array(["test/dog/0.jpg", "test/cat/1.jpg", "test/dog/2.jpg", "test/cat/3.jpg"])
    np.savez(tmp_path / "p.npz", x=x, y=y, names=paths)  # CIFAR-10's shared copy carries these
    assert load_images(tmp_path / "p.npz").class_names == ["cat", "dog"]
    np.savez(tmp_path / "mixed.npz", x=x, y=y, names=np.array(["a/0", "b/1", "c/2", "d/3"]))
    assert load_images(tmp_path / "mixed.npz").class_names is None  # folders disagree with labels: no names


@pytest.mark.parametrize(
    "y, words",
    [
        (np.array([0.6, 1.6, 0.0, 1.0]), "got 0.6; a fraction is no class"),
        (np.array([0, 1, -5, 1]), "label -5 is negative"),
        (np.array(["cat", "1", "dog", "2"]), "mix numbers and names"),
        (np.array([True, False, True, False]), "whole numbers or class names"),
    ],
)
def test_npz_labels_go_through_the_labels_files_check(tmp_path, y, words):
    """Issue 47: an .npz's y was truncated (0.6 -> 0) or read as 'unlabelled' (-5) where a labels file is refused."""
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 8, 8), np.uint8), y=y)
    with pytest.raises(InputError, match=words) as caught:
        load_images(tmp_path / "d.npz")
    assert "d.npz: y" in str(caught.value)
    np.save(tmp_path / "y.npy", y)
    with pytest.raises(InputError, match=words):
        load_labels(tmp_path / "y.npy")


def test_class_names_as_text_label_every_source_alike(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.array(["dog", "cat", "", "cat"]))
    data = load_images(tmp_path / "d.npz")
    assert data.labels.tolist() == [1, 0, -1, 0] and data.class_names == ["cat", "dog"]
    (tmp_path / "l.txt").write_text("dog\ncat\n\ncat\n")
    assert load_labels(tmp_path / "l.txt")[0].tolist() == [1, 0, -1, 0]


def test_a_phone_photos_exif_orientation_is_applied(tmp_path):
    """Issue 47: orientation 6 (rotate 90 degrees clockwise to view) stored 48 wide, 32 high loads 32 wide."""
    from PIL import Image

    img = Image.new("RGB", (48, 32), (200, 10, 10))
    exif = img.getexif()
    exif[0x0112] = 6
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        img.save(tmp_path / "imgs" / c / "0.jpg", exif=exif)
        img.save(tmp_path / "imgs" / c / "1.jpg", exif=exif)
    data = load_images(tmp_path / "imgs")
    assert data.images.shape == (4, 48, 32, 3)


def test_labels_with_missing_entries(tmp_path):
    (tmp_path / "l.csv").write_text("3\n\n-1\n0\n")
    assert load_labels(tmp_path / "l.csv")[0].tolist() == [3, -1, -1, 0]
    (tmp_path / "neg.csv").write_text("3\n-2\n")
    with pytest.raises(InputError, match="label -2 is negative"):
        load_labels(tmp_path / "neg.csv")


def test_image_folder_with_classes(tmp_path):
    data = load_images(write_folder(tmp_path / "imgs"))
    assert data.images.shape == (6, 12, 10, 3)
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1] and data.class_names == ["cat", "dog"]


def test_hidden_files_and_folders_are_not_images(tmp_path):
    # Jupyter's .ipynb_checkpoints/ and macOS's ._ files sit inside class folders; they are neither images nor classes
    root = write_folder(tmp_path / "imgs")
    (root / ".ipynb_checkpoints").mkdir()
    (root / "cat" / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (10, 12)).save(root / "cat" / ".ipynb_checkpoints" / "0-checkpoint.png")
    (root / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    data = load_images(root)
    assert len(data) == 6 and data.class_names == ["cat", "dog"]
    assert not any(".ipynb" in name or "/._" in name for name in data.names)


def test_a_dlstudy_run_folder_inside_the_data_is_not_a_class(tmp_path):
    """Issue 47's second data loss: a run folder left in an image folder (its figures are PNGs) was read as a
    third class, at the top level and inside a class folder alike."""
    root = write_folder(tmp_path / "imgs")
    for run in (root / "run1", root / "cat" / "run2"):
        (run / "figures").mkdir(parents=True)
        (run / "status.json").write_text('{"state": "complete"}')
        Image.new("RGB", (10, 12)).save(run / "figures" / "map.png")
    data = load_images(root)
    assert len(data) == 6 and data.class_names == ["cat", "dog"]
    assert not any("/run1/" in name or "/run2/" in name for name in data.names)


def test_mixed_sizes_are_resized(tmp_path):
    root = write_folder(tmp_path / "imgs", classes=("a",), n=3)
    Image.new("RGB", (20, 20)).save(root / "a" / "big.png")
    assert load_images(root).images.shape == (4, 12, 10, 3)


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        load_images(tmp_path / "empty")
    root = write_folder(tmp_path / "imgs")
    (root / "extra").mkdir()
    with pytest.raises(InputError, match="class folder .*extra is empty"):
        load_images(root)
    (root / "extra").rmdir()
    (root / "cat" / "broken.jpg").write_bytes(b"\xff\xd8not really a jpeg")
    with pytest.raises(InputError, match=r"broken.jpg is not a readable image"):
        load_images(root)
    assert len(load_images(root, skip_bad=True)) == 6
    with pytest.raises(InputError, match="does not exist"):
        load_images(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="expected an image folder"):
        load_images(tmp_path / "x.txt")
    # a lone subfolder is no class (a one-class 'accuracy' would be 1.0): its images, at any depth, are unlabelled
    write_folder(tmp_path / "archive" / "images")
    lone = load_images(tmp_path / "archive")
    assert lone.labels is None and lone.class_names is None and len(lone) == 6


def test_default_is_offline_mnist():
    data = load_images(None)
    assert data.images.shape == (5000, 28, 28, 1) and np.bincount(data.labels).tolist() == [500] * 10


def test_16_bit_32_bit_and_float_images_are_scaled_not_clipped(tmp_path):
    from dlstudy.data.images import read_image

    ramp = np.array([[0, 257 * 10, 257 * 100, 65535]], dtype=np.uint16)  # 0, 10, 100, 255 in 8-bit terms
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")  # a 16-bit PNG, as scanners and microscopes write
    assert read_image(tmp_path / "deep.png", "L")[..., 0].tolist() == [[0, 10, 100, 255]]
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F").save(tmp_path / "float.tiff")
    assert read_image(tmp_path / "float.tiff", "L")[..., 0].tolist() == [[0, 128, 255]]
    Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32), mode="I").save(tmp_path / "small.tiff")
    assert read_image(tmp_path / "small.tiff", "L")[..., 0].tolist() == [[0, 100, 255]]  # already 8-bit values


def test_a_link_back_into_the_folder_is_neither_a_class_nor_read_twice(tmp_path):
    root = write_folder(tmp_path / "F", classes=("a", "b", "c"), n=2)
    (root / "zz_loop").symlink_to(".")
    (root / "up").symlink_to("..")
    outside = write_folder(tmp_path / "elsewhere", classes=("d",), n=2)
    (root / "d").symlink_to(outside / "d")  # a class folder linked in from outside the tree stays a class
    data = load_images(root)
    assert len(data) == 8 and data.class_names == ["a", "b", "c", "d"]


def test_labels_of_one_class_are_refused_for_clustering(tmp_path):
    from dlstudy.data.images import n_clusters_for

    np.save(tmp_path / "x.npy", np.zeros((6, 8, 8), np.uint8))
    np.save(tmp_path / "y.npy", np.array([3, 3, 3, -1, 3, 3]))
    data = load_images(tmp_path / "x.npy", labels=tmp_path / "y.npy")  # predict may score such data
    for k in (None, 2):  # K = 1 from the labels would score 'accuracy 1.000'; a K given is scored on one class
        with pytest.raises(InputError, match="one class"):
            n_clusters_for(k, data)
