"""Run folders under faults: a second writer, a dead writer, an unexpected error, a full disk, names
that matplotlib would read as maths, commas in class names, and a fuzz of the config schema."""

import csv
import io
import json
import os
import resource
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dlstudy.api import check, resolve_config
from dlstudy.config import flatten
from dlstudy.errors import InputError
from test_bad_input import TREND_TINY


def covid(data_root):
    return str(data_root / "covid" / "covid_19.csv")


def trend_command(data_root, out, *extra):
    return [
        sys.executable,
        "-m",
        "dlstudy.cli",
        "-q",
        "trend",
        "--data",
        covid(data_root),
        "--out",
        str(out),
        *TREND_TINY,
        *extra,
    ]


def wait_for(predicate, proc):
    """Poll until `predicate` holds, for as long as `proc` runs: a loaded machine makes it slower, not red."""
    while proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.05)
    raise AssertionError(f"the run ended (exit {proc.returncode}) first: {proc.stderr.read()[-2000:]}")


def test_a_second_writer_is_refused_and_a_dead_writers_run_resumes(tmp_path, data_root):
    out = tmp_path / "run"
    first = subprocess.Popen(
        trend_command(data_root, out, "--set", "train.epochs=30"), stderr=subprocess.PIPE, start_new_session=True
    )
    wait_for(lambda: list(out.glob("checkpoints/*.pt")), first)
    second = subprocess.run(
        trend_command(data_root, out, "--set", "train.epochs=30", "--resume"), capture_output=True, text=True
    )
    assert second.returncode == 2 and f"being written by process {first.pid}" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    os.killpg(first.pid, signal.SIGKILL)  # the kernel drops a dead process's lock
    first.wait()
    assert json.loads((out / "status.json").read_text())["state"] == "running"
    resumed = subprocess.run(
        trend_command(data_root, out, "--set", "train.epochs=3", "--resume"), capture_output=True, text=True
    )
    assert resumed.returncode == 2 and "train.epochs" in resumed.stderr  # other flags: refused, named
    resumed = subprocess.run(
        trend_command(data_root, out, "--set", "train.epochs=30", "--resume"), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "status.json").read_text())["state"] == "complete"
    assert "resuming after epoch" in (out / "log.txt").read_text()
    assert not (out / ".reserve").exists()


def test_an_unexpected_error_marks_the_run_failed_with_one_line_and_a_log(tmp_path, cli, data_root, monkeypatch):
    from dlstudy.report import Report

    def broken(*args, **kwargs):
        raise RuntimeError("the report writer broke")

    monkeypatch.setattr(Report, "write", broken)
    out = tmp_path / "run"
    code, _, err = cli("-q", "trend", "--data", covid(data_root), "--out", out, *TREND_TINY)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "the report writer broke" in err and str(out / "log.txt") in err
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "RuntimeError: the report writer broke" in status["reason"]
    assert "Traceback" in (out / "log.txt").read_text()


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB file system: a tmpfs when we are root (CI is), else a file size limit in the child."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if (
        os.geteuid() == 0
        and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]).returncode == 0
    ):
        yield mount, None
        subprocess.run(["umount", "-l", str(mount)])
    else:

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, 600_000))

        yield mount, limit


def test_a_full_disk_ends_the_run_failed_with_its_message(small_disk, data_root):
    mount, limit = small_disk
    out = mount / "run"
    done = subprocess.run(trend_command(data_root, out), capture_output=True, text=True, preexec_fn=limit)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "no space left on device writing" in done.stderr or "file too large" in done.stderr
    assert "free space or choose another --out" in done.stderr
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "writing" in status["reason"]
    assert not list(out.rglob("*.tmp"))  # no half-written file left beside the others


def test_names_with_dollars_and_commas_are_plain_text(tmp_path, cli, data_root):
    # every country's name holds '$...$', which matplotlib would read as maths
    lines = (data_root / "covid" / "covid_19.csv").read_text().splitlines()
    renamed = lines[:3] + [f"${line.split(',', 1)[0]}$ & co,{line.split(',', 1)[1]}" for line in lines[3:]]
    data = tmp_path / "dollars.csv"
    data.write_text("\n".join(renamed) + "\n")
    code, _, err = cli("-q", "trend", "--data", data, "--out", tmp_path / "run", *TREND_TINY)
    assert code == 0, err
    assert "$Afghanistan$ &amp; co" in (tmp_path / "run" / "report.html").read_text()

    from dlstudy.analysis.classification import predictions_csv

    names = ["happy, mostly", 'sad "really"']
    written = predictions_csv(np.array([[0.9, 0.1], [0.2, 0.8]]), names, np.array([0, 1]))
    rows = list(csv.reader(io.StringIO(written.decode())))
    assert rows[1][2] == names[0] and rows[2][2] == names[1] and all(len(r) == 5 for r in rows)


# the schema under fuzz ---------------------------------------------------------------------------
TREND_KEYS = sorted(flatten(resolve_config("trend").model_dump()))
VALUES = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.lists(st.integers(-5, 40), max_size=4),
    st.none(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(TREND_KEYS), value=VALUES)
def test_any_set_value_validates_or_is_an_input_error(key, value):
    """Never a traceback: any key with any value resolves and passes the checks, or is an InputError."""
    from dlstudy.config import parse_set

    try:
        item = f"{key}={json.dumps(value)}"
        parse_set(item)
        check("trend", resolve_config("trend", sets=[item]))
    except InputError:
        pass


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    epochs=st.integers(0, 3),
    hidden=st.integers(0, 8),
    lr=st.one_of(st.floats(0, 0.1), st.just(float("nan"))),
    batch=st.integers(0, 300),
    dropout=st.floats(0, 1),
)
@example(epochs=2, hidden=8, lr=0.01, batch=64, dropout=0.0)  # valid: runs
@example(epochs=1, hidden=1, lr=1e-6, batch=1, dropout=0.5)  # valid at the edges
@example(epochs=0, hidden=8, lr=0.01, batch=64, dropout=0.0)  # invalid: refused
def test_any_generated_config_runs_a_tiny_model_or_exits_2(
    epochs, hidden, lr, batch, dropout, tmp_path_factory, data_root
):
    """Valid configs run end to end; invalid ones are refused with exit 2 and leave nothing."""
    from dlstudy.cli import main

    out = tmp_path_factory.getbasetemp() / f"fuzz-{uuid.uuid4().hex[:8]}"
    argv = [
        "-q",
        "trend",
        "--data",
        covid(data_root),
        "--out",
        str(out),
        *TREND_TINY,
        "--set",
        f"train.epochs={epochs}",
        "--set",
        f"model.hidden_size={hidden}",
        "--set",
        f"train.lr={lr}",
        "--set",
        f"train.batch_size={batch}",
        "--set",
        f"model.dropout={dropout}",
    ]
    code = main(argv)
    assert code in (0, 2)
    if code == 0:
        assert json.loads((out / "status.json").read_text())["state"] == "complete"
    else:
        assert not out.exists()


def test_resume_refuses_data_that_changed_since_the_run_started(tmp_path, cli, data_root):
    data = tmp_path / "covid.csv"
    data.write_bytes((data_root / "covid" / "covid_19.csv").read_bytes())
    out = tmp_path / "run"
    code, _, err = cli("-q", "trend", "--data", data, "--out", out, *TREND_TINY)
    assert code == 0, err
    status = json.loads((out / "status.json").read_text())
    assert status["inputs"]["data.path"]["bytes"] == data.stat().st_size  # the fingerprint of what it read
    (out / "status.json").write_text(json.dumps({**status, "state": "running"}))  # as a kill -9 leaves it
    data.write_text("\n".join(data.read_text().splitlines()[:120]) + "\n")  # the user cuts the CSV
    code, _, err = cli("-q", "trend", "--data", data, "--out", out, *TREND_TINY, "--resume")
    assert code == 2 and "changed since this run started" in err and str(data) in err, err
    assert json.loads((out / "status.json").read_text())["state"] == "running"  # nothing was resumed


def test_a_users_index_html_is_never_replaced_by_run_all(tmp_path, cli):
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "index.html").write_text("mine")
    code, _, err = cli("run", "all", "--out", tmp_path / "u", "--set", "data.path=/nonexistent")
    assert code == 2 and "is no dlstudy index" in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "u" / "index.html").read_text() == "mine" and sorted(
        p.name for p in (tmp_path / "u").iterdir()
    ) == ["index.html"]
