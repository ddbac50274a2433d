"""Scale-out with real engines, no mocks: a throwaway PostgreSQL 15 cluster holding one study that two
`dlstudy sweep` processes finish together while one of them is killed, and a local Ray instance
running a sweep, also with a Ray worker killed mid-trial. Both must run in CI, not skip."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pgserver import PG_BIN, throwaway_postgres
from test_kill_resume import same
from test_sweep import TREND, covid, launch, read_sweep, space_file, tail, wait_for


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
    return [
        sys.executable,
        "-m",
        "dlstudy.cli",
        "sweep",
        "trend",
        "--space",
        str(space),
        "--out",
        str(out),
        "--pruner",
        "none",
        *extra,
    ]


def running_trials(storage, name):
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # not created yet
        return []
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "RUNNING" and {"worker", "run_dir"} <= set(t.user_attrs)
    ]


def checkpointed_trial(out, name, node=None):
    """A running trial of the sweep in `out` (journal storage) that has saved an epoch checkpoint, on the
    given Ray node if one is named; None while there is none."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not (out / "optuna.journal").exists():
        return None
    trials = running_trials(JournalStorage(JournalFileBackend(str(out / "optuna.journal"))), name)
    return next(
        (
            t
            for t in trials
            if (node is None or t.user_attrs["worker"].get("node") == node)
            and list((out / t.user_attrs["run_dir"] / "checkpoints").glob("*.pt"))
        ),
        None,
    )


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
    command = sweep_command(
        space,
        out,
        "--storage",
        postgres,
        "--name",
        "pg-test",
        "--data",
        covid(data_root),
        *TREND,
        "--set",
        "train.epochs=25",
    )
    a, b = launch(command, tmp_path / "a.log"), launch(command, tmp_path / "b.log")
    url = postgres.replace("postgresql://", "postgresql+psycopg://")
    # kill A once it is inside a trial that has written an epoch checkpoint
    victim = wait_for(
        lambda: next(
            (
                t
                for t in running_trials(url, "pg-test")
                if t.user_attrs["worker"]["pid"] == a.pid
                and list((out / t.user_attrs["run_dir"] / "checkpoints").glob("*.pt"))
            ),
            None,
        ),
        a,
        what="process A inside a trial",
    )
    os.killpg(a.pid, signal.SIGKILL)
    a.wait()
    assert b.wait() == 0, tail(b)
    trials, _ = read_sweep(out)
    if (trials["state"] == "complete").sum() < 5:  # B finished its share before A's trial was found lost
        again = subprocess.run(command, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr[-3000:]
    trials, summary = assert_each_configuration_complete_once(out, 5)
    lost = trials[trials["state"] == "failed"]
    assert list(lost["number"]) == [victim.number] and "died" in lost["reason"].iloc[0]
    assert "resuming after epoch" in (out / victim.user_attrs["run_dir"] / "log.txt").read_text()
    assert yaml.safe_load((out / "config.yaml").read_text())["study"] == "trend"  # the sweep's spec


@pytest.mark.slow
def test_sqlite_is_refused_for_two_workers_and_a_missing_driver_names_the_extra(tmp_path, cli):
    code, _, err = cli(
        "sweep", "trend", "--storage", f"sqlite:///{tmp_path}/s.db", "--workers", "2", "--out", tmp_path / "x"
    )
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
    code, _, err = cli(
        "sweep",
        "trend",
        "--space",
        space,
        "--backend",
        "ray",
        "--trial-cpus",
        "1",
        "--out",
        out,
        "--data",
        covid(data_root),
        *TREND,
    )
    assert code == 0, err
    trials, summary = assert_each_configuration_complete_once(out, 4)  # a grid keeps every cell: none pruned
    assert summary["n_pruned"] == 0 and 'class="grid-pivot"' in (out / "report.html").read_text()
    # no --workers: as many Ray tasks as the instance's 2 CPUs hold at --trial-cpus 1
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["ray-worker-0.txt", "ray-worker-1.txt"]


@pytest.mark.slow
def test_a_killed_ray_worker_loses_nothing(tmp_path, data_root):
    pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
    space = space_file(tmp_path, {"grid": {"model.hidden_size": [8, 12, 16, 20]}})
    out = tmp_path / "sw"
    command = sweep_command(
        space,
        out,
        "--backend",
        "ray",
        "--workers",
        "2",
        "--name",
        "ray-kill",
        "--data",
        covid(data_root),
        *TREND,
        "--set",
        "train.epochs=25",
    )
    proc = launch(command, tmp_path / "sweep.log")

    victim = wait_for(lambda: checkpointed_trial(out, "ray-kill"), proc, what="a Ray worker inside a trial")
    os.kill(victim.user_attrs["worker"]["pid"], signal.SIGKILL)
    assert proc.wait() == 0, tail(proc)
    trials, _ = assert_each_configuration_complete_once(out, 4)
    lost = trials[trials["state"] == "failed"]
    assert list(lost["number"]) == [victim.number]
    assert "resuming after epoch" in (out / victim.user_attrs["run_dir"] / "log.txt").read_text()


@pytest.fixture
def two_nodes():
    """Ray's own multi-node test cluster: a head and a second node (a raylet each) on this machine, one CPU
    each, bound to the loopback address."""
    ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
    node = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    yield cluster, node
    cluster.shutdown()


@pytest.mark.slow
def test_a_node_lost_mid_trial_loses_nothing(tmp_path, data_root, two_nodes):
    """A sweep across two Ray nodes; the second node is removed while its trial trains (after an epoch
    checkpoint). Every cell ends complete exactly once, the lost trial resumes from its checkpoint on the
    node that is left, and its metrics equal an uninterrupted run of the same configuration."""
    cluster, node = two_nodes
    space = space_file(tmp_path, {"grid": {"model.hidden_size": [8, 12, 16, 20]}})
    out = tmp_path / "sw"
    settings = ["--data", covid(data_root), *TREND, "--set", "train.epochs=25"]
    proc = launch(
        sweep_command(
            space,
            out,
            "--backend",
            "ray",
            "--ray-address",
            cluster.address,
            "--trial-cpus",
            "1",
            "--workers",
            "2",
            "--name",
            "node-death",
            *settings,
        ),
        tmp_path / "sweep.log",
    )
    victim = wait_for(
        lambda: checkpointed_trial(out, "node-death", node.node_id),
        proc,
        what="a trial with a checkpoint on the second node",
    )
    cluster.remove_node(node, allow_graceful=False)
    assert proc.wait() == 0, tail(proc)
    trials, _ = assert_each_configuration_complete_once(out, 4)
    lost = trials[trials["state"] == "failed"]
    assert list(lost["number"]) == [victim.number] and "died" in lost["reason"].iloc[0]
    run_dir = out / victim.user_attrs["run_dir"]
    assert "resuming after epoch" in (run_dir / "log.txt").read_text()
    # the same configuration uninterrupted, on one thread like the trial (--trial-cpus 1)
    whole = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlstudy.cli",
            "-q",
            "trend",
            *settings,
            "--set",
            f"model.hidden_size={victim.user_attrs['values']['model.hidden_size']}",
            "--seed",
            str(victim.user_attrs["seed"]),
            "--out",
            str(tmp_path / "whole"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert whole.returncode == 0, whole.stderr[-2000:]
    same(
        json.loads((tmp_path / "whole" / "metrics.json").read_text()),
        json.loads((run_dir / "metrics.json").read_text()),
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot connect to PostgreSQL"),
        (["--storage", "postgresql://nobody:secret@127.0.0.1:notaport/none"], "cannot connect to PostgreSQL"),
        (["--backend", "ray", "--ray-address", "127.0.0.1:1"], "nothing answers there"),
        (["--backend", "ray", "--ray-address", "headnode"], "give HOST:PORT"),
    ],
)
def test_an_unreachable_server_is_one_line_and_creates_nothing(tmp_path, cli, args, words):
    if "postgresql" in args[1] and not os.environ.get("CI"):
        pytest.importorskip("psycopg")
    out = tmp_path / "sw"
    code, _, err = cli("sweep", "trend", *args, "--out", out)
    assert code == 2 and words in err, err
    assert len(err.strip().splitlines()) <= 3 and "Traceback" not in err and "Warning" not in err, err
    assert "secret" not in err  # a password in the URL is not printed
    assert not out.exists()


def test_a_missing_extra_names_the_install(tmp_path, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "ray", None)
    code, _, err = cli("sweep", "trend", "--storage", "postgresql://u@127.0.0.1/db", "--out", tmp_path / "a")
    assert code == 2 and "pip install 'dlstudy[postgres]'" in err and not (tmp_path / "a").exists()
    code, _, err = cli("sweep", "trend", "--backend", "ray", "--out", tmp_path / "b")
    assert code == 2 and "pip install 'dlstudy[ray]'" in err and not (tmp_path / "b").exists()
