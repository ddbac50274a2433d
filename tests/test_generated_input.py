"""Generated hostile input: Hypothesis builds image folders (modes, bit depths, names, hidden files, links
back into the tree, a broken image) and case CSVs (date formats, a day twice, encodings, names with
commas and quotes). Each either loads with exactly the counts it was built with, or is refused: then the
CLI exits 2 with one line and leaves no run folder."""

import contextlib
import csv
import io
import itertools
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dlstudy.cli import main
from dlstudy.data.covid import load_case_series
from dlstudy.data.images import load_images
from dlstudy.errors import InputError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# names as users write them: any letters, digits, spaces and punctuation, no path separator, never hidden
NAME = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="/\\."), min_size=1, max_size=10
).filter(lambda s: s.strip() == s)
MODES = ["L", "RGB", "RGBA", "P", "1", "I;16", "F"]


def write_image(path: Path, mode: str, size: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65535, size, dtype=np.uint16)).save(path.with_suffix(".png"))
    elif mode == "F":  # float images: TIFF is the format that holds them
        Image.fromarray(rng.random(size, dtype=np.float32), mode="F").save(path.with_suffix(".tiff"))
    else:
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).convert(mode).save(path.with_suffix(".png"))


@st.composite
def image_folders(draw):
    """(spec, expected) of a folder: classes (0 flat, 1 a lone subfolder, 2-3 classes), images per class."""
    n_classes = draw(st.sampled_from([0, 1, 2, 3]))
    classes = draw(st.lists(NAME, min_size=max(n_classes, 1), max_size=max(n_classes, 1), unique=True))
    images = {
        c: draw(
            st.lists(st.tuples(st.sampled_from(MODES), st.integers(4, 12), st.integers(4, 12)), min_size=1, max_size=4)
        )
        for c in classes
    }
    return {
        "nested": n_classes > 0,
        "images": images,
        "hidden": draw(st.booleans()),
        "loop": draw(st.booleans()),
        "broken": draw(st.booleans()),
    }


def build_folder(root: Path, spec: dict) -> tuple[int, list | None, Path | None]:
    """Write the folder; returns (images it holds, class names it gives, the broken file or None)."""
    seed = itertools.count()
    for c, shapes in spec["images"].items():
        folder = root / c if spec["nested"] else root
        folder.mkdir(parents=True, exist_ok=True)
        for i, (mode, h, w) in enumerate(shapes):
            write_image(folder / f"{c} {i}", mode, (h, w), next(seed))
    if spec["hidden"]:  # a macOS resource fork and a notebook checkpoint folder: neither images nor classes
        (root / "._x.png").write_bytes(b"\x00\x05\x16\x07")
        (root / ".ipynb_checkpoints").mkdir()
        write_image(root / ".ipynb_checkpoints" / "copy", "L", (5, 5), 99)
    if spec["loop"]:
        (root / "zz loop").symlink_to(".")
    broken = None
    if spec["broken"]:
        first = next(iter(spec["images"]))
        broken = (root / first if spec["nested"] else root) / "broken.png"
        broken.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(30))
    n = sum(len(v) for v in spec["images"].values())
    names = sorted(spec["images"]) if spec["nested"] and len(spec["images"]) > 1 else None
    return n, names, broken


def refused_by_the_cli(argv: list[str], out: Path) -> str:
    """Run the CLI on input that must be refused: exit 2, one line, no run folder. Returns the line."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([*argv, "--out", str(out)])
    text = err.getvalue()
    assert code == 2 and len(text.strip().splitlines()) == 1 and "Traceback" not in text, text
    assert not out.exists(), f"a run folder was left for {argv}"
    return text


@SETTINGS
@given(spec=image_folders())
def test_generated_image_folders_load_with_their_counts_or_fail_in_one_line(spec):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        n, names, broken = build_folder(root, spec)
        try:
            data = load_images(root)
        except InputError as exc:
            assert broken is not None, exc
            assert broken.name in str(exc)
            assert broken.name in refused_by_the_cli(["cluster", "--data", str(root)], Path(tmp) / "run")
            return
        assert broken is None, "a broken image was read"
        assert len(data) == n and data.images.dtype == np.uint8
        assert data.class_names == names and (data.labels is None) == (names is None)
        if names:
            assert np.bincount(data.labels).tolist() == [len(spec["images"][c]) for c in names]


@st.composite
def case_tables(draw):
    n_countries, n_days = draw(st.integers(1, 5)), draw(st.integers(3, 10))
    countries = draw(
        st.lists(
            st.text(st.characters(whitelist_categories=("Lu", "Ll", "Zs", "Po")), min_size=1, max_size=12).filter(
                lambda s: s.strip() == s and any(c.isalpha() for c in s)
            ),
            min_size=n_countries,
            max_size=n_countries,
            unique=True,
        )
    )
    return {
        "countries": countries,
        "days": n_days,
        "iso": draw(st.booleans()),
        "twice": draw(st.booleans()),
        "encoding": draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"])),
    }


def build_csv(path: Path, spec: dict) -> None:
    days = [np.datetime64("2020-01-22") + i for i in range(spec["days"])]
    us = [f"{d.astype(object).month}/{d.astype(object).day}/20" for d in days]
    headers = [str(d) for d in days] if spec["iso"] else us
    if spec["twice"]:  # the first day again, in the other format
        headers.append(us[0] if spec["iso"] else str(days[0]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Country", *headers])
    for i, country in enumerate(spec["countries"]):
        cumulative = np.cumsum(np.arange(len(headers)) % 3 + i)
        writer.writerow([country, *cumulative.tolist()])
    path.write_bytes(buffer.getvalue().encode(spec["encoding"], errors="replace"))


@SETTINGS
@given(spec=case_tables())
def test_generated_case_tables_load_with_their_counts_or_fail_in_one_line(spec):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cases.csv"
        build_csv(path, spec)
        # what the file holds: latin-1 writes a character it cannot hold as '?'
        written = [c.encode(spec["encoding"], errors="replace").decode(spec["encoding"]) for c in spec["countries"]]
        unreadable = spec["encoding"] == "latin-1" and not "".join(written).isascii()  # not UTF-8
        twins = len(set(written)) < len(written)
        try:
            series = load_case_series(path)
        except InputError as exc:
            assert spec["twice"] or unreadable or twins, exc
            if spec["twice"] and not unreadable:
                assert "are the same day" in str(exc)
            refused_by_the_cli(["trend", "--data", str(path)], Path(tmp) / "run")
            return
        assert not (spec["twice"] or unreadable or twins), "a day or a country given twice was read twice"
        assert sorted(series.counts.index) == sorted(written) and series.counts.shape[1] == spec["days"]
