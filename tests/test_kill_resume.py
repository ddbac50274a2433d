"""kill -9 at a random point of each training study's run (drawn from a fixed seed), then --resume: the
metrics equal those of an uninterrupted run of the same config. The point is a fraction of the
uninterrupted run's own time, counted from the moment the run folder opens, so interpreter start and
import caches (warm in the second process, cold in the first) do not move it past the end."""

import json
import math
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from conftest import TINY
from test_bad_input import TREND_TINY

CASES = {
    "trend": ["trend", "--data", "{covid}", *TREND_TINY, "--set", "train.epochs=6"],
    "cluster": ["cluster", *TINY],
    "classify": [
        "classify",
        "--quick",
        "--epochs",
        "3",
        "--set",
        "data.limit=800",
        "--set",
        "explain.methods=[gradient]",
        "--set",
        "explain.steps=5",
    ],
    "generate": ["generate", "--quick", "--set", "data.limit=400", "--set", "train.epochs=4"],
}


DLSTUDY = [sys.executable, "-m", "dlstudy.cli"]  # the command, as a user's shell starts it


def command(study, out, data_root, *extra):
    argv = [a.replace("{covid}", str(data_root / "covid" / "covid_19.csv")) for a in CASES[study]]
    return [*DLSTUDY, "-q", *argv, "--out", str(out), *extra]


def kill_after(cmd, out, seconds):
    """Start the run, wait until its folder has a log line, then `seconds` more, and kill -9 its group.
    Returns the state the run folder was left in."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    log = out / "log.txt"
    while proc.poll() is None and not (log.exists() and log.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return json.loads((out / "status.json").read_text())["state"]


def same(a, b, path="metrics"):
    """Equal up to float rounding, ignoring wall-clock fields."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = {k for k in a.keys() | b.keys() if "seconds" not in k}
        for k in keys:
            same(a.get(k), b.get(k), f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


@pytest.mark.slow
@pytest.mark.parametrize("study", list(CASES))
def test_kill_at_a_random_point_then_resume_gives_identical_metrics(study, tmp_path, data_root):
    whole = subprocess.run(command(study, tmp_path / "whole", data_root), capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]
    took = json.loads((tmp_path / "whole" / "status.json").read_text())["seconds"]  # from the folder's opening

    delay = random.Random(f"kill-{study}").uniform(0.3, 0.8) * took
    for attempt in range(3):  # a busy machine can still make the first run the slower one: then kill earlier
        out = tmp_path / f"killed-{attempt}"
        state = kill_after(command(study, out, data_root), out, delay)
        if state == "running":  # killed inside the run
            break
        delay /= 2
    assert state == "running", f"the run was '{state}' before each kill, the last {2 * delay:.1f} s after it opened"
    again = subprocess.run(command(study, out, data_root, "--resume"), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    same(json.loads((tmp_path / "whole" / "metrics.json").read_text()), json.loads((out / "metrics.json").read_text()))


@pytest.mark.slow
def test_sigterm_ends_with_the_ctrl_c_line_and_an_interrupted_run_that_resumes(tmp_path, data_root):
    """Issue 47: after SIGTERM nothing was printed and status.json stayed 'running'."""
    out = tmp_path / "t"
    cmd = command("trend", out, data_root)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (out / "checkpoints").is_dir() or not any((out / "checkpoints").iterdir()):  # one epoch is saved
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip() == "dlstudy: interrupted; continue the run with --resume", err
    assert json.loads((out / "status.json").read_text())["state"] == "interrupted"
    again = subprocess.run(command("trend", out, data_root, "--resume"), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / "status.json").read_text())["state"] == "complete"


def test_a_reader_that_stops_early_is_no_error(tmp_path):
    """`dlstudy derive all | head -1` ended in a BrokenPipeError traceback and 'unexpected error'."""
    proc = subprocess.Popen(
        [*DLSTUDY, "derive", "all", "--out", tmp_path / "d"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout.readline().startswith(b"== ")
    proc.stdout.close()  # as `head -1` does once it has its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "error" not in err, err
