"""Hostile and careless input, table-driven: every case must end with its exit code, one line on stderr
naming the file or key, no traceback, and the on-disk state it promises. tests/README.md lists the
cases and what each leaves on disk."""
import json
import shutil
import time
import warnings
import zipfile

import numpy as np
import pytest

TREND_TINY = ["--set", "windows.lengths=[20]", "--set", "model.cells=[gru]", "--set", "correlation.subset=10",
              "--set", "train.epochs=2"]


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
    f["twin_dates_csv"].write_text("\n".join([header + ",2020-01-25", *(r + "," + r.split(",")[day] for r in rows)]) + "\n")
    f["long_twice_csv"] = root / "long_twice.csv"
    f["long_twice_csv"].write_text("country,date,cases\nA,2020-01-22,1\nA,2020-01-22,2\nA,2020-01-23,3\n")
    np.save(root / "labels_one.npy", np.zeros(20, np.int64))
    f["labels_one"] = root / "labels_one.npy"
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
]


def fill(argv, files, root, out):
    values = {**{k: str(v) for k, v in files.items()}, "root": str(root)}
    args = [a.format(**values) if "{" in a and "}" in a and "train.epochs=" not in a else a for a in argv]
    return args if "--out" in args else [*args, "--out", str(out)]


@pytest.mark.parametrize("case, argv, words", CONFIG_CASES + DATA_CASES, ids=[c[0] for c in CONFIG_CASES + DATA_CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, argv, words, tmp_path, cli, data_root):
    files = make_files(tmp_path, data_root)
    out = tmp_path / "run"
    started = time.time()
    with warnings.catch_warnings(record=True) as warned:  # in a terminal each would be a line more
        warnings.simplefilter("always")
        code, printed, err = cli(*fill(argv, files, tmp_path, out))
    assert not [w for w in warned if issubclass(w.category, UserWarning)], (case, [str(w.message) for w in warned])
    assert code == 2, (case, err)
    assert len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err, (case, err)
    assert len(err) < 400, case  # a bad value is quoted by a short prefix, never expanded
    assert not out.exists(), f"{case}: a run folder was left behind"
    assert time.time() - started < 30, case  # refused before any work, even for an alias bomb


# predict: a finished run, then careless commands against it ---------------------------------------
@pytest.fixture(scope="module")
def finished_trend(tmp_path_factory, data_root):
    from dlstudy.cli import main

    out = tmp_path_factory.mktemp("trend") / "run"
    assert main(["-q", "trend", "--data", str(data_root / "covid" / "covid_19.csv"), "--out", str(out), *TREND_TINY]) == 0
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
        (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("hidden_size: 32", "hidden_size: -4"))
    elif how == "unfinished":
        status = json.loads((run / "status.json").read_text())
        (run / "status.json").write_text(json.dumps({**status, "state": "running"}))


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
]


@pytest.mark.parametrize("case, damages, out, words", PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES])
def test_careless_predict_is_refused_and_overwrites_nothing(case, damages, out, words, tmp_path, cli, finished_trend,
                                                           data_root):
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
    code, _, err = cli(*argv)
    assert code == 2, (case, err)
    assert len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err, (case, err)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing in the run changed
    assert (tmp_path / "existing.csv").read_text() == "keep me\n"


def test_predict_replaces_a_file_only_with_force(tmp_path, cli, finished_trend, data_root):
    target = tmp_path / "p.csv"
    target.write_text("old\n")
    data = data_root / "covid" / "covid_19.csv"
    code, _, err = cli("predict", finished_trend, "--data", data, "--out", target, "--force")
    assert code == 0, err
    assert target.read_text() != "old\n" and len(target.read_text().splitlines()) > 10
