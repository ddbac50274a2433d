"""Scale-out with real engines, no mocks: a throwaway PostgreSQL 15 cluster holding one study that two
`dlstudy sweep` processes finish together while one of them is killed, and a local Ray instance
running a sweep, also with a Ray worker killed mid-trial. Both must run in CI, not skip."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pgserver import PG_BIN, throwaway_postgres
from test_sweep import TREND, covid, read_sweep, space_file


def unavailable(message: str):
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def postgres():
    if not PG_BIN.exists():
        unavailable(f"PostgreSQL 15 not found at {PG_BIN}; apt-get install postgresql-15")
    if not os.environ.get("CI"):
        pytest.importorskip("psycopg")
    with throwaway_postgres() as url:
        yield url


def sweep_command(space, out, *extra):
    return [sys.executable, "-m", "dlstudy.cli", "sweep", "trend", "--space", str(space), "--out", str(out),
            "--pruner", "none", *extra]


def wait_for(predicate, timeout=180, what="a condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def running_trials(storage, name):
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # not created yet
        return []
    return [t for t in study.get_trials(deepcopy=False)
            if t.state.name == "RUNNING" and {"worker", "run_dir"} <= set(t.user_attrs)]


def assert_each_configuration_complete_once(out, n):
    trials, summary = read_sweep(out)
    final = trials[trials["state"] != "failed"]
    assert summary["n_complete"] == n and sorted(final["config"]) == list(range(n)), trials
    assert (final["state"] == "complete").all()
    for row in final.itertuples():
        assert json.loads((out / row.run_dir / "status.json").read_text())["state"] == "complete"
    return trials, summary


@pytest.mark.slow
def test_two_processes_share_a_postgres_study_and_survive_a_kill(tmp_path, data_root, postgres):
    space = space_file(tmp_path, {"grid": {"model.hidden_size": [8, 12, 16, 20, 24]}})
    out = tmp_path / "sw"
    command = sweep_command(space, out, "--storage", postgres, "--name", "pg-test", "--data", covid(data_root),
                            *TREND, "--set", "train.epochs=25")
    a = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    b = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    url = postgres.replace("postgresql://", "postgresql+psycopg://")
    # kill A once it is inside a trial that has written an epoch checkpoint
    victim = wait_for(lambda: next((t for t in running_trials(url, "pg-test") if t.user_attrs["worker"]["pid"] == a.pid
                                    and list((out / t.user_attrs["run_dir"] / "checkpoints").glob("*.pt"))), None),
                      what="process A inside a trial")
    os.killpg(a.pid, signal.SIGKILL)
    a.wait()
    _, err = b.communicate(timeout=300)
    assert b.returncode == 0, err.decode()[-3000:]
    trials, _ = read_sweep(out)
    if (trials["state"] == "complete").sum() < 5:  # B finished its share before A's trial was found lost
        again = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
    trials, summary = assert_each_configuration_complete_once(out, 5)
    lost = trials[trials["state"] == "failed"]
    assert list(lost["number"]) == [victim.number] and "died" in lost["reason"].iloc[0]
    assert "resuming after epoch" in (out / victim.user_attrs["run_dir"] / "log.txt").read_text()
    assert yaml.safe_load((out / "config.yaml").read_text())["study"] == "trend"  # the sweep's spec


@pytest.mark.slow
def test_sqlite_is_refused_for_two_workers_and_a_missing_driver_names_the_extra(tmp_path, cli):
    code, _, err = cli("sweep", "trend", "--storage", f"sqlite:///{tmp_path}/s.db", "--workers", "2", "--out", tmp_path / "x")
    assert code == 2 and "Optuna's FAQ" in err and not (tmp_path / "x").exists()
    code, _, err = cli("sweep", "trend", "--storage", "mysql://h/db", "--out", tmp_path / "x")
    assert code == 2 and "postgresql://" in err
    code, _, err = cli("sweep", "trend", "--backend", "ray", "--ray-address", "127.0.0.1:6399", "--out", "rel/out")
    assert code == 2 and "absolute path" in err and not Path("rel").exists()


@pytest.fixture
def ray_local():
    ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_a_local_ray_instance_runs_a_sweep(tmp_path, cli, data_root, ray_local):
    space = space_file(tmp_path, {"grid": {"model.hidden_size": [8, 16], "train.lr": [0.01, 0.003]}})
    out = tmp_path / "sw"
    code, _, err = cli("sweep", "trend", "--space", space, "--backend", "ray", "--trial-cpus", "1", "--pruner", "none",
                       "--out", out, "--data", covid(data_root), *TREND)
    assert code == 0, err
    trials, _ = assert_each_configuration_complete_once(out, 4)
    # no --workers: as many Ray tasks as the instance's 2 CPUs hold at --trial-cpus 1
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["ray-worker-0.txt", "ray-worker-1.txt"]


@pytest.mark.slow
def test_a_killed_ray_worker_loses_nothing(tmp_path, data_root):
    pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
    space = space_file(tmp_path, {"grid": {"model.hidden_size": [8, 12, 16, 20]}})
    out = tmp_path / "sw"
    command = sweep_command(space, out, "--backend", "ray", "--workers", "2", "--name", "ray-kill",
                            "--data", covid(data_root), *TREND, "--set", "train.epochs=25")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    storage = f"journal:{out / 'optuna.journal'}"

    def inside_a_trial():
        if not (out / "optuna.journal").exists():
            return None
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        trials = running_trials(JournalStorage(JournalFileBackend(storage[len("journal:"):])), "ray-kill")
        return next((t for t in trials if list((out / t.user_attrs["run_dir"] / "checkpoints").glob("*.pt"))), None)

    victim = wait_for(inside_a_trial, what="a Ray worker inside a trial")
    os.kill(victim.user_attrs["worker"]["pid"], signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]
    trials, _ = assert_each_configuration_complete_once(out, 4)
    lost = trials[trials["state"] == "failed"]
    assert list(lost["number"]) == [victim.number]
    assert "resuming after epoch" in (out / victim.user_attrs["run_dir"] / "log.txt").read_text()
