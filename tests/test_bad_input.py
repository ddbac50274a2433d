"""Hostile and careless input, table-driven: every case must end with its exit code, one line on stderr
naming the file or key, no traceback, and the on-disk state it promises. tests/README.md lists the
cases and what each leaves on disk."""

import contextlib
import difflib
import fcntl
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from dlstudy.train import epoch_listener

TREND_TINY = [
    "--set",
    "windows.lengths=[20]",
    "--set",
    "model.cells=[gru]",
    "--set",
    "correlation.subset=10",
    "--set",
    "train.epochs=2",
]


def bomb(levels: int) -> str:
    """A YAML 'billion laughs' list: each level repeats the previous one ten times."""
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines)


def make_files(root, data_root):
    """The bad files the cases below read, written once per test."""
    f = {}
    (root / "text.npy").write_text("this is not an array\n")
    f["text_npy"] = root / "text.npy"
    np.savez(root / "objects.npz", x=np.array([{"a": 1}, None], dtype=object))
    f["objects_npz"] = root / "objects.npz"
    np.save(root / "good.npy", np.zeros((20, 8, 8), np.uint8))
    data = (root / "good.npy").read_bytes()
    (root / "truncated.npz").write_bytes(b"PK\x03\x04" + data[:40])
    f["truncated_npz"] = root / "truncated.npz"
    nan = np.zeros((20, 8, 8), np.float32)
    nan[3, 2, 2] = np.nan
    np.save(root / "nan.npy", nan)
    f["nan_npy"] = root / "nan.npy"
    np.save(root / "flat.npy", np.zeros((20, 5), np.uint8))
    f["flat_npy"] = root / "flat.npy"
    (root / "empty").mkdir()
    f["empty_dir"] = root / "empty"
    np.save(root / "labels3.npy", np.array([0, 1, 2]))
    f["labels3"] = root / "labels3.npy"
    csv = (data_root / "covid" / "covid_19.csv").read_text().splitlines()
    cells = csv[5].split(",")
    f["inf_csv"] = root / "inf.csv"
    f["inf_csv"].write_text("\n".join(csv[:5] + [",".join(cells[:10] + ["inf"] + cells[11:])] + csv[6:]) + "\n")
    f["word_csv"] = root / "word.csv"
    f["word_csv"].write_text("\n".join(csv[:5] + [",".join(cells[:10] + ["many"] + cells[11:])] + csv[6:]) + "\n")
    f["empty_csv"] = root / "empty.csv"
    f["empty_csv"].write_text("")
    f["list_yaml"] = root / "list.yaml"
    f["list_yaml"].write_text("- 1\n- 2\n")
    f["bomb_yaml"] = root / "bomb.yaml"
    f["bomb_yaml"].write_text(bomb(9) + "\ntrain:\n  epochs: *a8\n")
    f["fake_fer"] = root / "fer.npz"
    f["fake_fer"].write_text("x,y\n1,2\n")
    with zipfile.ZipFile(root / "fer_objects.npz", "w") as z:
        with z.open("x.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros((4, 48, 48), np.uint8))
        with z.open("y.npy", "w") as member:
            np.lib.format.write_array(member, np.array(["a", None, 1, 2], dtype=object), allow_pickle=True)
    f["fer_objects"] = root / "fer_objects.npz"
    header, *rows = csv
    day = header.split(",").index("1/25/20")  # the same day again under an ISO header: one day twice
    f["twin_dates_csv"] = root / "twin_dates.csv"
    f["twin_dates_csv"].write_text(
        "\n".join([header + ",2020-01-25", *(r + "," + r.split(",")[day] for r in rows)]) + "\n"
    )
    f["long_twice_csv"] = root / "long_twice.csv"
    f["long_twice_csv"].write_text("country,date,cases\nA,2020-01-22,1\nA,2020-01-22,2\nA,2020-01-23,3\n")
    np.save(root / "labels_one.npy", np.zeros(20, np.int64))
    f["labels_one"] = root / "labels_one.npy"
    f["labels_words"] = root / "labels_words.txt"
    f["labels_words"].write_text("cat\n1\n" * 10)
    np.save(root / "labels_negative.npy", np.array([0, 1] * 9 + [-5, 1]))
    f["labels_negative"] = root / "labels_negative.npy"
    np.save(root / "five_channels.npy", np.zeros((20, 8, 8, 5), np.uint8))
    f["five_channels"] = root / "five_channels.npy"
    f["bad_yaml"] = root / "bad.yaml"
    f["bad_yaml"].write_text("train: {epochs: [3\n")
    f["typo_yaml"] = root / "typo.yaml"
    f["typo_yaml"].write_text("train:\n  epoch: 3\n")
    f["binary_csv"] = root / "binary.csv"
    f["binary_csv"].write_bytes(bytes(range(256)) * 40)
    f["no_dates_csv"] = root / "no_dates.csv"
    f["no_dates_csv"].write_text("country,population\nA,10\nB,20\n")
    f["twice_country_csv"] = root / "twice_country.csv"
    f["twice_country_csv"].write_text("\n".join([header, *rows, rows[-1]]) + "\n")
    three = root / "three"
    rng = np.random.default_rng(0)
    for c in "abc":  # one image a class
        (three / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(three / c / "0.png")
    f["three"] = three
    broken = root / "broken"
    for c in "ab":
        (broken / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(broken / c / f"{i}.png")
    (broken / "b" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50))  # a PNG header, then nothing
    f["broken"] = broken
    (root / "hollow" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "hollow" / "a" / "0.png")
    (root / "hollow" / "b").mkdir()  # a class folder with no images
    f["hollow"] = root / "hollow"
    f["space_params"] = root / "space.yaml"
    f["space_params"].write_text("params:\n  train.lr: {low: 0.001, high: 0.1, log: true}\n")
    f["foreign"] = root / "notes.txt"
    f["foreign"].write_text("my own notes, not a journal\n")
    (root / "u").mkdir()
    (root / "u" / "index.html").write_text("mine")
    f["user_index"] = root / "u"
    f["good"] = root / "good.npy"
    return f


# (id, argv with {name} placeholders, words the one line must hold)
CONFIG_CASES = [
    ("epochs-0-trend", ["trend", "--set", "train.epochs=0"], "train.epochs"),
    ("epochs-negative-trend", ["trend", "--set", "train.epochs=-3"], "train.epochs"),
    ("epochs-0-cluster", ["cluster", "--set", "train.epochs=0"], "train.epochs"),
    ("epochs-0-generate", ["generate", "--set", "train.epochs=0"], "train.epochs"),
    ("epochs-0-contrastive", ["cluster", "--set", "contrastive.train.epochs=0"], "contrastive.train.epochs"),
    ("batch-negative-cluster", ["cluster", "--set", "train.batch_size=-1"], "train.batch_size"),
    ("lr-negative", ["trend", "--set", "train.lr=-1"], "train.lr"),
    ("budget-words", ["classify", "--budget", "soon"], "a duration is a number with s, m or h"),
    ("budget-zero", ["trend", "--budget", "0s"], "--budget must be greater than 0"),
    ("budget-run-all", ["run", "all", "--budget", "-5m", "--out", "{root}/all"], "--budget"),
    ("lr-nan", ["trend", "--set", "train.lr=.nan"], "train.lr"),
    ("lr-inf", ["generate", "--set", "train.lr=.inf"], "train.lr"),
    ("steps-0", ["trend", "--set", "max_steps_per_epoch=0"], "max_steps_per_epoch"),
    ("limit-negative", ["classify", "--set", "data.limit=-5"], "data.limit"),
    ("fraction-above-1", ["generate", "--set", "data.test_fraction=1.5"], "test_fraction"),
    ("dropout-1", ["classify", "--set", "model.dropout=1.0"], "model.dropout"),
    ("width-0", ["classify", "--set", "model.channels=[16, 0, 64, 128]"], "model.channels"),
    ("blocks-mismatch", ["classify", "--set", "model.channels=[16, 32]"], "model.convs"),
    ("seed-negative", ["trend", "--seed", "-1"], "seed"),
    ("unknown-key", ["trend", "--set", "train.epoch=3"], "train.epoch"),
    ("wrong-type", ["trend", "--set", "train.epochs=abc"], "train.epochs"),
    ("derive-wrong-type", ["derive", "all", "--set", "batchnorm.eps=abc"], "batchnorm.eps"),
    ("set-not-key-value", ["trend", "--set", "train.epochs"], "key=value"),
    ("set-alias-bomb", ["trend", "--set", "train.epochs=" + bomb(6).replace("\n", ", ").join("{}")], "aliases"),
    ("config-alias-bomb", ["trend", "--config", "{bomb_yaml}"], "aliases"),
    ("config-list", ["trend", "--config", "{list_yaml}"], "mapping"),
    ("config-missing", ["trend", "--config", "{root}/nope.yaml"], "nope.yaml"),
    ("bad-flag", ["trend", "--threshold", "high"], "--threshold"),
    ("bad-device", ["trend", "--device", "tpu"], "--device"),
    ("seed-2-to-the-32", ["trend", "--seed", "4294967296"], "seed"),  # would alias seed 0
    ("epochs-huge", ["trend", "--set", "train.epochs=1000001"], "train.epochs"),
    ("lr-a-word", ["trend", "--set", "train.lr=fast"], "train.lr"),
    ("batch-size-fraction", ["classify", "--set", "train.batch_size=1.5"], "train.batch_size"),
    ("set-empty-key", ["trend", "--set", "=3"], "key=value"),
    ("set-under-a-number", ["trend", "--set", "train.lr.decay=1"], "train.lr"),
    ("config-bad-yaml", ["trend", "--config", "{bad_yaml}"], "bad.yaml"),
    ("config-unknown-key", ["trend", "--config", "{typo_yaml}"], "train.epoch"),
    ("threshold-above-1", ["trend", "--threshold", "2"], "threshold"),
    ("window-0", ["trend", "--set", "windows.lengths=[0]"], "windows.lengths"),
    ("cell-unknown", ["trend", "--set", "model.cells=[elman]"], "model.cells"),
    ("optimizer-unknown", ["classify", "--set", "train.optimizer=rmsprop"], "train.optimizer"),
    ("schedule-unknown", ["classify", "--set", "train.schedule=sawtooth"], "train.schedule"),
    ("beta-negative", ["generate", "--beta", "-1"], "beta"),
    ("likelihood-unknown", ["generate", "--set", "loss.likelihood=poisson"], "loss.likelihood"),
    ("image-size-beyond-memory", ["generate", "--size", "4096"], "--size 4096"),
    ("encoder-unknown", ["cluster", "--set", "grid.encoders=[resnet9000]"], "resnet9000"),
    # weights neither cached nor packaged: nothing is downloaded (tests/test_pretrained.py: the other timm cases)
    ("encoder-timm-weights-absent", ["cluster", "--set", "grid.encoders=['timm:resnet18']"], "downloads nothing"),
    ("reduction-unknown", ["cluster", "--set", "grid.reductions=[fourier:3]"], "fourier"),
    ("clustering-unknown", ["cluster", "--set", "grid.clusterings=[dbscan9]"], "dbscan9"),
    ("clusters-0", ["cluster", "--clusters", "0"], "--clusters"),
    ("clusters-backwards", ["cluster", "--clusters", "9-3"], "--clusters"),
    ("clusters-a-word", ["cluster", "--clusters", "many"], "--clusters"),
    ("resume-nothing", ["trend", "--resume", "--out", "{root}/fresh"], "nothing to resume"),
]

DATA_CASES = [
    ("data-missing", ["cluster", "--data", "{root}/missing.npy"], "missing.npy"),
    ("npy-is-text", ["cluster", "--data", "{text_npy}"], "not a NumPy"),
    ("npz-object-array", ["cluster", "--data", "{objects_npz}"], "Python objects"),
    ("npz-truncated", ["cluster", "--data", "{truncated_npz}"], "truncated.npz"),
    ("npy-nan", ["cluster", "--data", "{nan_npy}"], "NaN"),
    ("npy-wrong-shape", ["generate", "--data", "{flat_npy}"], "shape"),
    ("folder-empty", ["cluster", "--data", "{empty_dir}"], "empty"),
    ("labels-wrong-length", ["cluster", "--data", "{root}/good.npy", "--labels", "{labels3}"], "labels3.npy"),
    ("fer-npz-is-text", ["classify", "--data", "{fake_fer}"], "not a NumPy"),
    ("fer-npz-object-labels", ["classify", "--data", "{fer_objects}"], "Python objects"),
    ("covid-inf", ["trend", "--data", "{inf_csv}", *TREND_TINY], "not finite"),
    ("covid-word", ["trend", "--data", "{word_csv}", *TREND_TINY], "not a number"),
    ("covid-empty", ["trend", "--data", "{empty_csv}", *TREND_TINY], "empty.csv"),
    ("out-under-a-file", ["trend", "--out", "{text_npy}/sub"], "cannot create the folder"),
    ("out-in-proc", ["trend", "--out", "/proc/dlstudy-test"], "cannot create the folder"),
    ("labels-one-class", ["cluster", "--data", "{root}/good.npy", "--labels", "{labels_one}"], "one class"),
    ("covid-same-day-twice", ["trend", "--data", "{twin_dates_csv}", *TREND_TINY], "are the same day"),
    ("covid-long-day-twice", ["trend", "--data", "{long_twice_csv}", *TREND_TINY], "two rows for 2020-01-22"),
    ("covid-binary", ["trend", "--data", "{binary_csv}", *TREND_TINY], "binary.csv"),
    ("covid-no-dates", ["trend", "--data", "{no_dates_csv}", *TREND_TINY], "no date columns"),
    ("covid-country-twice", ["trend", "--data", "{twice_country_csv}", *TREND_TINY], "appears twice"),
    ("labels-words", ["cluster", "--data", "{root}/good.npy", "--labels", "{labels_words}"], "mix numbers and names"),
    ("labels-negative", ["cluster", "--data", "{root}/good.npy", "--labels", "{labels_negative}"], "negative"),
    ("npy-five-channels", ["cluster", "--data", "{five_channels}"], "five_channels.npy"),
    ("data-name-too-long", ["cluster", "--data", "{root}/" + "x" * 300 + ".npy"], "File name too long"),
    ("out-name-too-long", ["trend", "--out", "{root}/" + "y" * 300], "choose a shorter --out"),
    ("cluster-one-image-a-class", ["cluster", "--quick", "--data", "{three}"], "2 images a cluster"),
    (
        "cluster-auto-one-image-a-class",
        ["cluster", "--quick", "--data", "{three}", "--clusters", "auto"],
        "2 images a cluster",
    ),
    ("classify-one-image-a-class", ["classify", "--quick", "--data", "{three}"], "at least 2"),
    ("folder-broken-image", ["cluster", "--data", "{broken}"], "3.png"),
    ("folder-empty-class", ["cluster", "--data", "{hollow}"], "is empty"),
    ("run-all-over-a-users-index", ["run", "all", "--out", "{user_index}"], "is no dlstudy index"),
    ("compare-one-run", ["compare", "{user_index}"], "at least two"),
    ("out-inside-the-data", ["cluster", "--data", "{broken}", "--out", "{broken}/run1"], "lies inside the input"),
    ("out-holds-the-data", ["cluster", "--data", "{broken}", "--out", "{root}"], "holds the input"),
    ("out-is-the-data", ["trend", "--data", "{inf_csv}", "--out", "{inf_csv}"], "is the input"),
    (
        "out-is-the-labels",
        ["cluster", "--data", "{good}", "--labels", "{labels3}", "--out", "{labels3}"],
        "is the input",
    ),
    (
        "sweep-out-inside-the-data",
        ["sweep", "cluster", "--data", "{broken}", "--out", "{broken}/s"],
        "inside the input",
    ),
]

SWEEP_CASES = [
    ("sweep-workers-0", ["sweep", "trend", "--workers", "0"], "--workers must be at least 1"),
    ("sweep-budget-words", ["sweep", "trend", "--budget", "later"], "--budget: a duration is a number"),
    ("sweep-workers-beyond-cores", ["sweep", "trend", "--workers", "64"], "this machine has"),
    ("sweep-trials-a-million", ["sweep", "trend", "--trials", "1000000", "--space", "{space_params}"], "1..10,000"),
    ("sweep-seeds-past-2-to-the-32", ["sweep", "trend", "--seed", "4294967295", "--seeds", "2"], "largest seed"),
    ("sweep-journal-no-path", ["sweep", "trend", "--storage", "journal:"], "name the journal file"),
    ("sweep-sqlite-no-path", ["sweep", "trend", "--storage", "sqlite:///"], "name the database file"),
    (
        "sweep-users-file-as-journal",
        ["sweep", "trend", "--storage", "journal:{foreign}"],
        "not an Optuna journal entry",
    ),
    ("sweep-storage-unknown", ["sweep", "trend", "--storage", "mysql://h/db"], "postgresql://"),
    ("sweep-metric-unknown", ["sweep", "trend", "--metric", "test_acuracy", "--direction", "maximize"], "test_acuracy"),
    ("sweep-derive", ["sweep", "derive"], "derive"),
    ("sweep-space-missing", ["sweep", "trend", "--space", "{root}/nope.yaml"], "nope.yaml"),
    ("sweep-metric-without-direction", ["sweep", "trend", "--metric", "test_f1"], "--direction"),
    ("seeds-0", ["trend", "--seeds", "0"], "--seeds"),
]


def fill(argv, files, root, out):
    values = {**{k: str(v) for k, v in files.items()}, "root": str(root)}
    args = [a.format(**values) if "{" in a and "}" in a and "train.epochs=" not in a else a for a in argv]
    return args if "--out" in args else [*args, "--out", str(out)]


TABLE = CONFIG_CASES + DATA_CASES + SWEEP_CASES


def snapshot(root) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case, argv, words", TABLE, ids=[c[0] for c in TABLE])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, argv, words, tmp_path, cli, data_root):
    files = make_files(tmp_path, data_root)
    before = snapshot(tmp_path)
    out = tmp_path / "run"
    epochs = []  # refused before any work, even for an alias bomb: not one epoch trains
    with epoch_listener(lambda *row: epochs.append(row)):
        code, printed, err = cli(*fill(argv, files, tmp_path, out))
    assert code == 2, (case, err)
    assert len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err, (case, err)
    assert len(err) < 400, case  # a bad value is quoted by a short prefix, never expanded
    assert not out.exists(), f"{case}: a run folder was left behind"
    assert snapshot(tmp_path) == before, f"{case}: a file the user had was changed, or a file was added"
    assert not epochs, f"{case}: training started before the input was refused"
    followed = follow(err, fill(argv, files, tmp_path, out), tmp_path)
    if followed is None:  # a message that names a fix must name one this test can follow
        assert not NAMES_A_FIX.search(err) or case in USERS_OWN_EDIT, f"{case}: no rule follows {err!r}"
    else:
        assert gets_past(cli, followed, err), f"{case}: following {err.strip()!r} did not get past it"


# Every fix a message names must work when followed (issue 47): the rules below do what a message says, literally,
# and the case's command must then get past its error: it trains an epoch (stopped there), or ends well.
NAMES_A_FIX = re.compile(
    r"(; |, or |: )(choose|use|pass|remove|add|leave|write|say|drop|move|give|keep|fix|clean|save)\b"
)
# fixes that are an edit of the user's own file, which no rule can make for them
USERS_OWN_EDIT = {
    "npy-is-text": "save the array with numpy.save",
    "npz-object-array": "save plain numeric arrays",
    "npz-truncated": "save it again",
    "npy-nan": "clean the array first",
    "fer-npz-is-text": "save the array with numpy.save",
    "fer-npz-object-labels": "save plain numeric arrays",
    "covid-inf": "fix that cell",
    "covid-word": "fix that cell",
    "covid-same-day-twice": "keep one column a day",
    "covid-long-day-twice": "keep one row a day",
    "covid-no-dates": "give a wide table or a long one",
    "labels-words": "use one or the other",
    "labels-negative": "labels are 0, 1, ...",
    "folder-empty": "add image files",
    "set-alias-bomb": "write the values out",
    "config-alias-bomb": "write the values out",
    "sweep-users-file-as-journal": "move it aside",
}


class Reached(BaseException):
    """Raised at the first epoch's end: the command got past its input checks and trained."""


def gets_past(cli, argv, error) -> bool:
    def stop(*_):
        raise Reached

    if argv[0] == "sweep":  # one tiny trial, to its end
        argv = [*argv, "--trials", "1", *(TREND_TINY if argv[1] == "trend" else [])]
    try:
        with epoch_listener(stop):
            code, _, err = cli(*argv)
    except Reached:
        return True
    return code == 0 or (code == 2 and err.strip() != error.strip() and "Traceback" not in err)


def replace_flag(argv, flag, value=None):
    """argv with `flag` (and its value) taken out, then given `value` when one is given."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == flag:
            skip = True
        else:
            out.append(a)
    return out if value is None else [*out, flag, str(value)]


def set_key(argv, key, value, item=None):
    """argv with every `--set key=...` replaced by one holding `value` (at list position `item`)."""
    out, old = [], None
    for i, a in enumerate(argv):
        if i and argv[i - 1] == "--set" and a.startswith(key + "="):
            old = yaml.safe_load(a.partition("=")[2])
            out.pop()
        else:
            out.append(a)
    if item is not None:
        value = [value if i == item else v for i, v in enumerate(old if isinstance(old, list) else [value])]
    return [*out, "--set", f"{key}={json.dumps(value)}"]


def bound(text, strict, below):
    number = float(text)
    if not strict:
        return int(number) if number.is_integer() else number
    return number / 2 if below else (number * 2 if number > 0 else 1)


def value_of(argv, flag):
    return argv[argv.index(flag) + 1]


def renamed_key(m, argv, root):
    """`unknown config key 'train.epoch' (known here: epochs, ...)`: the nearest known name, where it was given."""
    head, _, bad = m[1].rpartition(".")
    near = difflib.get_close_matches(bad, m[2].split(", "), n=1, cutoff=0)[0]
    if "--config" in argv:
        config = Path(value_of(argv, "--config"))
        config.write_text(re.sub(rf"\b{bad}:", f"{near}:", config.read_text()))
    return [a.replace(f"{m[1]}=", f"{head}.{near}=") for a in argv]


def bounded_value(m, argv, root):
    key, flag, item, side, equal, edge = m.groups()
    value = bound(edge, not equal, side == "less")
    return replace_flag(argv, flag, value) if flag else set_key(argv, key, value, int(item) if item else None)


def chosen_value(m, argv, root):
    key, flag, item, choice = m.groups()
    return replace_flag(argv, flag, choice) if flag else set_key(argv, key, choice, int(item) if item else None)


def shorter(m, argv, root):
    if m[1] == "--data":
        shutil.copy(root / "good.npy", root / "s.npy")
    return replace_flag(argv, m[1], root / ("s.npy" if m[1] == "--data" else "o"))


def longer_series(m, argv, root):
    """The --data CSV with counts for `m[1]` days, made up where its own end: a wide table, a row a country."""
    path = Path(value_of(argv, "--data"))
    names = [line.split(",")[0] for line in path.read_text().splitlines()[1:]]
    rng = np.random.default_rng(0)
    days = [f"2020-03-{d:02d}" for d in range(1, int(m[1]) + 1)]
    growth = 5 * 1.15 ** np.arange(len(days))  # one epidemic's growth for all, so they correlate; Poisson days
    rows = [",".join([n, *map(str, np.cumsum(rng.poisson(growth * (i + 1))))]) for i, n in enumerate(names)]
    path.write_text("\n".join([",".join(["country", *days]), *rows]) + "\n")
    return argv


def removed(paths):
    for path in map(Path, paths):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


NAMED = r"(?:config key '([\w.]+)'|(--[\w-]+))(?: \(item (\d+)\))? must be"
# (what the message says, what following it does to the command and the files), first match wins
RULES = [
    (NAMED + r" (greater|less) than (or equal to )?(\S+),", bounded_value),
    (NAMED + r" '([\w-]+)'", chosen_value),
    (r"unknown config key '([\w.]+)' \(known here: ([^)]*)\)", renamed_key),
    (r"unknown \w+ '([^']+)'; use ([\w-]+)", lambda m, a, r: [x.replace(m[1], m[2]) for x in a]),
    (r"(--\w+) \S+: .*; choose one of ([\w, ]+)", lambda m, a, r: replace_flag(a, m[1], m[2].split(", ")[0])),
    (r"pass --set ([\w.]+=\w+)", lambda m, a, r: [*a, "--set", m[1]]),
    (r"use at most (\d+)", lambda m, a, r: replace_flag(a, "--workers", m[1])),
    (r"choose a smaller --seed", lambda m, a, r: replace_flag(a, "--seed", 0)),
    (r"--direction maximize", lambda m, a, r: [*a, "--direction", "maximize"]),
    (r"leave the labels out", lambda m, a, r: replace_flag(a, "--labels")),
    (r"choose a smaller --clusters", lambda m, a, r: replace_flag(a, "--clusters", 1)),
    (r"choose a smaller (--\w+)", lambda m, a, r: replace_flag(a, m[1], 32)),
    (
        r"threshold ([\d.]+) .*; lower the threshold \(--threshold",
        lambda m, a, r: replace_flag(a, "--threshold", float(m[1]) / 2),
    ),
    (r"choose a shorter (--\w+)", shorter),
    (r"give a series of at least (\d+) days", longer_series),
    (r"use windows that fit, e\.g\. --set (\S+=\[[^\]]*\])", lambda m, a, r: [*a, "--set", m[1]]),
    (r"--storage \S+: use journal:PATH", lambda m, a, r: replace_flag(a, "--storage", f"journal:{r}/j.journal")),
    (r"choose another --storage", lambda m, a, r: replace_flag(a, "--storage", f"journal:{r}/j.journal")),
    (r"choose (another|an) --out|write the output outside it", lambda m, a, r: replace_flag(a, "--out", r / "o")),
    (r"(\S+) is not a readable image .*; remove it", lambda m, a, r: removed([m[1]]) or a),
    (r"class folder (\S+) is empty; remove it", lambda m, a, r: removed([m[1]]) or a),
    (r"(\S+): class '(\w+)' has .*leave its folder out", lambda m, a, r: removed([Path(m[1]) / m[2]]) or a),
]


def follow(message, argv, root):
    """The command as it is once the message's fix is done, or None when the message names no fix to follow."""
    for pattern, action in RULES:
        m = re.search(pattern, message)
        if m:
            return [str(a) for a in action(m, argv, root)]
    return None


# predict: a finished run, then careless commands against it ---------------------------------------
@pytest.fixture(scope="module")
def finished_trend(tmp_path_factory, data_root):
    from dlstudy.cli import main

    out = tmp_path_factory.mktemp("trend") / "run"
    assert (
        main(["-q", "trend", "--data", str(data_root / "covid" / "covid_19.csv"), "--out", str(out), *TREND_TINY]) == 0
    )
    return out


def damage(run, how):
    if how == "weights-missing":
        for p in (run / "models").glob("*.safetensors"):
            p.unlink()
    elif how == "weights-truncated":
        for p in (run / "models").glob("*.safetensors"):
            p.write_bytes(p.read_bytes()[:100])
    elif how == "metrics-missing":
        (run / "metrics.json").unlink()
    elif how == "config-edited":
        (run / "config.yaml").write_text((run / "config.yaml").read_text() + "extra_key: 1\n")
    elif how == "config-bad-range":
        (run / "config.yaml").write_text(
            (run / "config.yaml").read_text().replace("hidden_size: 32", "hidden_size: -4")
        )
    elif how == "unfinished":
        status = json.loads((run / "status.json").read_text())
        (run / "status.json").write_text(json.dumps({**status, "state": "running"}))
    elif how == "metrics-truncated":
        (run / "metrics.json").write_text((run / "metrics.json").read_text()[:40])
    elif how == "metrics-a-list":
        (run / "metrics.json").write_text("[1, 2, 3]")
    elif how == "status-a-string":
        (run / "status.json").write_text('"complete"')


PREDICT_CASES = [
    ("out-is-the-report", [], "{run}/report.html", "inside the run folder"),
    ("out-inside-models", [], "{run}/models/x.csv", "inside the run folder"),
    ("out-exists", [], "{root}/existing.csv", "exists"),
    ("out-is-a-folder", [], "{root}", "is a folder"),
    ("out-not-csv", [], "{root}/p.json", ".csv"),
    ("weights-missing", ["weights-missing"], None, "is missing"),
    ("weights-truncated", ["weights-truncated"], None, "does not load"),
    ("metrics-missing", ["metrics-missing"], None, "metrics.json"),
    ("config-edited", ["config-edited"], None, "config.yaml"),
    ("config-bad-range", ["config-bad-range"], None, "model.hidden_size"),
    ("unfinished-run", ["unfinished"], None, "unfinished"),
    ("image-folder-for-trend", [], None, "is a folder"),
    ("not-a-run", [], None, "no dlstudy run folder"),
    ("data-missing", [], None, "does not exist"),
    ("metrics-truncated", ["metrics-truncated"], None, "metrics.json is damaged"),
    ("metrics-a-list", ["metrics-a-list"], None, "a JSON list, not a mapping"),
    ("status-a-string", ["status-a-string"], None, "status.json is damaged"),
    ("out-in-a-live-run", [], "{run}/predict/p.csv", "is being written"),
]


@pytest.mark.parametrize("case, damages, out, words", PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES])
def test_careless_predict_is_refused_and_overwrites_nothing(
    case, damages, out, words, tmp_path, cli, finished_trend, data_root
):
    run = tmp_path / "run"
    shutil.copytree(finished_trend, run)
    for how in damages:
        damage(run, how)
    (tmp_path / "existing.csv").write_text("keep me\n")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    data = data_root / "covid" / "covid_19.csv"
    if case == "image-folder-for-trend":
        data = data_root / "fer2013" / "images"
    if case == "data-missing":
        data = tmp_path / "nope.csv"
    target = tmp_path / "nothing-here" if case == "not-a-run" else run
    argv = ["predict", target, "--data", data]
    if out:
        argv += ["--out", out.format(run=run, root=tmp_path)]
    with held(run if case == "out-in-a-live-run" else None):
        code, _, err = cli(*argv)
    assert code == 2, (case, err)
    assert len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err, (case, err)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing in the run changed
    assert (tmp_path / "existing.csv").read_text() == "keep me\n"


@contextlib.contextmanager
def held(run):
    """Hold a run folder's lock as a live writer would (another open file: flock sees two holders)."""
    if run is None:
        yield
        return
    with open(run / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


# compare and --resume on damaged or misused run folders: (id, damages to the first run, argv, words)
RUN_CASES = [
    (
        "compare-metrics-truncated",
        ["metrics-truncated"],
        ["compare", "{run}", "{run2}", "--out", "{root}/c.html"],
        "metrics.json is damaged",
    ),
    (
        "compare-metrics-a-list",
        ["metrics-a-list"],
        ["compare", "{run}", "{run2}", "--out", "{root}/c.html"],
        "a JSON list",
    ),
    (
        "compare-status-a-string",
        ["status-a-string"],
        ["compare", "{run}", "{run2}", "--out", "{root}/c.html"],
        "status.json is damaged",
    ),
    ("compare-out-in-proc", [], ["compare", "{run}", "{run2}", "--out", "/proc/dlstudy-compare.html"], "cannot write"),
    ("compare-out-a-folder", [], ["compare", "{run}", "{run2}", "--out", "{root}"], "is a folder"),
    (
        "compare-over-a-runs-report",
        [],
        ["compare", "{run}", "{run2}", "--out", "{run}/report.html", "--force"],
        "inside the run folder",
    ),
    (
        "resume-status-a-string",
        ["status-a-string"],
        ["trend", "--resume", "--out", "{run}", *TREND_TINY],
        "status.json is damaged",
    ),
]


@pytest.mark.parametrize("case, damages, argv, words", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_damaged_or_misused_run_folders_are_one_line(case, damages, argv, words, tmp_path, cli, finished_trend):
    run, run2 = tmp_path / "run", tmp_path / "run2"
    shutil.copytree(finished_trend, run)
    shutil.copytree(finished_trend, run2)
    for how in damages:
        damage(run, how)
    before = snapshot(tmp_path)
    code, _, err = cli(*[a.format(run=run, run2=run2, root=tmp_path) for a in argv])
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err, (case, err)
    assert snapshot(tmp_path) == before, f"{case}: a run's files changed"


def test_predict_replaces_a_file_only_with_force(tmp_path, cli, finished_trend, data_root):
    target = tmp_path / "p.csv"
    target.write_text("old\n")
    data = data_root / "covid" / "covid_19.csv"
    code, _, err = cli("predict", finished_trend, "--data", data, "--out", target, "--force")
    assert code == 0, err
    assert target.read_text() != "old\n" and len(target.read_text().splitlines()) > 10


@pytest.mark.parametrize("flag", ["--data", "--labels"])
def test_predict_never_writes_over_its_input_even_with_force(flag, tmp_path, cli, finished_trend, data_root):
    """Issue 47's first data loss: `predict --out x.csv --force` with x.csv the data replaced the user's data."""
    data = tmp_path / "covid.csv"
    shutil.copy(data_root / "covid" / "covid_19.csv", data)
    labels = tmp_path / "labels.csv"
    labels.write_text("1\n0\n")
    target = data if flag == "--data" else labels
    before = snapshot(tmp_path)
    argv = ["predict", finished_trend, "--data", data, "--out", target, "--force"]
    code, _, err = cli(*(argv + (["--labels", labels] if flag == "--labels" else [])))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is the input" in err and flag in err, err
    assert snapshot(tmp_path) == before


def test_the_tests_readme_lists_every_case():
    text = (Path(__file__).parent / "README.md").read_text()
    missing = (
        [c[0] for c in TABLE if f"| {c[0]} |" not in text]
        + [c[0] for c in PREDICT_CASES if f"| predict-{c[0]} |" not in text]
        + [c[0] for c in RUN_CASES if f"| {c[0]} |" not in text]
    )
    assert not missing, f"tests/README.md does not list {missing}"


# Only regular files are read (issue 47): every path flag of every command, given a FIFO or a device, is one line,
# exit 2, at once (a reader that opened it would block for ever, or read without end)
PATH_FLAGS = {
    "cluster": ["--data", "--labels", "--config"],
    "trend": ["--data", "--config"],
    "classify": ["--data", "--config"],
    "generate": ["--data", "--config"],
    "sweep": ["--data", "--config", "--space"],
    "predict": ["--data", "--labels"],
}
SPECIAL_CASES = [
    (command, flag, kind) for command, flags in PATH_FLAGS.items() for flag in flags for kind in ("fifo", "device")
]


@pytest.mark.parametrize("command, flag, kind", SPECIAL_CASES, ids=["-".join(c) for c in SPECIAL_CASES])
def test_every_path_flag_refuses_pipes_and_devices_at_once(command, flag, kind, tmp_path, cli, finished_trend):
    import os
    import signal

    special = "/dev/zero" if kind == "device" else tmp_path / "pipe"
    if kind == "fifo":
        os.mkfifo(special)
    head = (
        ["predict", finished_trend]
        if command == "predict"
        else (["sweep", "trend"] if command == "sweep" else [command])
    )
    argv = [*head, flag, special]
    if flag == "--labels" and command != "predict":
        np.save(tmp_path / "x.npy", np.zeros((20, 8, 8), np.uint8))
        argv += ["--data", tmp_path / "x.npy"]
    if command == "predict" and flag == "--labels":
        argv += ["--data", tmp_path / "x.csv"]
        (tmp_path / "x.csv").write_text("country,2020-01-01,2020-01-02\nA,1,2\n")
    if command != "predict":
        argv += ["--out", tmp_path / "run"]

    def hung(*_):
        raise TimeoutError(f"{command} {flag} {kind} blocked on the path")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        code, _, err = cli(*argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not a regular file" in err, err
    assert str(special) in err and not (tmp_path / "run").exists()


def test_a_second_run_all_into_the_same_folder_is_refused_not_interleaved(tmp_path, cli):
    """Issue 47: two `run all --out X` started together interleaved their studies in X."""
    root = tmp_path / "all"
    root.mkdir()
    (root / ".lock").write_text("")
    with held(root):  # the first invocation, still running
        code, _, err = cli("run", "all", "--out", root)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is being written" in err, err
    assert sorted(p.name for p in root.iterdir()) == [".lock"]


def test_messages_about_finished_and_unfinished_runs_name_fixes_that_work(tmp_path, cli, finished_trend, data_root):
    """Issue 47: '--resume' on a finished run said 'choose another --out', which then said 'nothing to resume';
    predict on an unfinished sweep said 'finish it with --resume', which failed; a refused resume printed
    'resuming the run in ...' before its one line."""
    data = data_root / "covid" / "covid_19.csv"
    code, _, err = cli("trend", "--resume", "--out", finished_trend, "--data", data, *TREND_TINY)
    assert code == 2 and "nothing to resume" in err and "drop --resume and choose another --out" in err, err
    code, _, err = cli("-q", "trend", "--out", tmp_path / "again", "--data", data, *TREND_TINY)  # the fix, followed
    assert code == 0, err
    sweep = tmp_path / "sw"
    (sweep / "trials").mkdir(parents=True)
    (sweep / "status.json").write_text(json.dumps({"study": "sweep", "state": "failed"}))
    code, _, err = cli("predict", sweep, "--data", data)
    assert code == 2 and "is a sweep, which predicts nothing itself" in err and "--resume" not in err, err
    run = tmp_path / "run"
    shutil.copytree(finished_trend, run)
    damage(run, "unfinished")
    with held(run):
        code, _, err = cli("trend", "--resume", "--out", run, "--data", data, *TREND_TINY)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is being written" in err, err


def test_a_short_series_is_refused_with_fixes_that_lead_to_a_finished_run(tmp_path, cli):
    """Issue 47: a short CSV's message said 'give at least 6 days' where the windows needed 7, and following 'use
    windows that fit' crashed on a test of two validation days; a library's warning reached the terminal raw."""
    data = tmp_path / "short.csv"
    data.write_text("country\nA\nB\nC\n")
    longer_series([None, 3], ["--data", data], tmp_path)
    code, _, err = cli("trend", "--data", data, "--out", tmp_path / "run")
    needs = re.search(r"needs at least (\d+) days .*; give a series of at least (\d+) days", err)
    assert code == 2 and needs and needs[1] == needs[2], err  # the fix asks for what the check needs
    longer_series([None, 7], ["--data", data], tmp_path)
    argv = ["trend", "--data", str(data), "--out", str(tmp_path / "run")]
    code, _, err = cli(*argv)
    assert code == 2 and "use windows that fit" in err, err
    code, _, err = cli(*follow(err, argv, tmp_path))
    assert code == 0, err
    assert "Warning" not in err and "warnings.warn" not in err, err


def test_a_librarys_warning_goes_to_the_log_not_the_terminal(tmp_path, cli, data_root, monkeypatch):
    """Issue 47: a raw numpy or scikit-learn warning reached stderr (two lines a warning, with the library's path)."""
    import warnings

    from dlstudy.studies.trend import experiment

    def correlations(daily):
        warnings.warn("a library's remark", RuntimeWarning, stacklevel=1)
        return original(daily)

    original = experiment.correlations
    monkeypatch.setattr(experiment, "correlations", correlations)
    data = data_root / "covid" / "covid_19.csv"
    code, _, err = cli("trend", "--data", data, "--out", tmp_path / "run", *TREND_TINY)
    assert code == 0 and "remark" not in err and "Warning" not in err, err
    assert "RuntimeWarning: a library's remark" in (tmp_path / "run" / "log.txt").read_text()


def test_a_refused_run_leaves_no_empty_runs_folder(tmp_path, cli, monkeypatch):
    """Issue 47: a data error left empty runs/<study>/ folders in the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "one.csv").write_text("country,2020-03-01,2020-03-02,2020-03-03\nOnly,1,2,3\n")
    code, _, err = cli("trend", "--data", "one.csv")
    assert code == 2 and not (tmp_path / "runs").exists(), err


# Outputs never overlap inputs (issue 47): for every command's --data and --labels, an --out that is the input, lies
# inside it or holds it is refused before anything is written, whatever --force says
OVERLAP_CASES = [
    (command, flag, relation)
    for command, flags in PATH_FLAGS.items()
    for flag in flags
    if flag in ("--data", "--labels")
    for relation in ("is", "inside", "holds")
]


def inputs_for(command, root):
    """(--data, --labels) as each command reads them: an image folder, or a CSV of counts; labels beside."""
    data = root / "mine" / ("counts.csv" if command in ("trend", "predict") else "images")
    if data.suffix == ".csv":
        data.parent.mkdir()
        data.write_text("country,2020-01-01,2020-01-02\nA,1,2\n")
    else:
        for c in "ab":
            (data / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(data / c / f"{i}.png")
    labels = root / "tags" / ("labels.csv" if command == "predict" else "labels.npy")  # a folder of its own
    labels.parent.mkdir()
    labels.write_text("1\n0\n") if command == "predict" else np.save(labels, np.zeros(6, np.int64))
    return data, labels


@pytest.mark.parametrize("command, flag, relation", OVERLAP_CASES, ids=["-".join(c) for c in OVERLAP_CASES])
def test_no_output_overlaps_an_input(command, flag, relation, tmp_path, cli, finished_trend):
    data, labels = inputs_for(command, tmp_path)
    given = data if flag == "--data" else labels
    out = {"is": given, "inside": given / "run", "holds": given.parent}[relation]
    head = {"predict": ["predict", finished_trend], "sweep": ["sweep", "cluster"]}.get(command, [command])
    argv = [*head, "--data", data, *(["--labels", labels] if flag == "--labels" else []), "--out", out]
    before = snapshot(tmp_path)
    code, _, err = cli(*argv, *(["--force"] if command == "predict" else []))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "the input" in err and str(given) in err, err
    assert snapshot(tmp_path) == before
