"""kill -9 at a random point of each training study's run (the point drawn from a fixed seed), then
--resume: the metrics equal those of an uninterrupted run of the same config."""
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
    "classify": ["classify", "--quick", "--epochs", "3", "--set", "data.limit=800", "--set", "explain.methods=[gradient]",
                 "--set", "explain.steps=5"],
    "generate": ["generate", "--quick", "--set", "data.limit=400", "--set", "train.epochs=4"],
}


def command(study, out, data_root, *extra):
    argv = [a.replace("{covid}", str(data_root / "covid" / "covid_19.csv")) for a in CASES[study]]
    return [sys.executable, "-m", "dlstudy.cli", "-q", *argv, "--out", str(out), *extra]


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
    started = time.time()
    whole = subprocess.run(command(study, tmp_path / "whole", data_root), capture_output=True, text=True, timeout=600)
    took = time.time() - started
    assert whole.returncode == 0, whole.stderr[-2000:]

    delay = random.Random(f"kill-{study}").uniform(0.4, 0.85) * took
    out = tmp_path / "killed"
    proc = subprocess.Popen(command(study, out, data_root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((out / "status.json").read_text())["state"] == "running"  # killed inside the run
    again = subprocess.run(command(study, out, data_root, "--resume"), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    same(json.loads((tmp_path / "whole" / "metrics.json").read_text()), json.loads((out / "metrics.json").read_text()))
