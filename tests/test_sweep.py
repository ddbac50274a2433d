"""Sweeps on Optuna: the space file, a grid on two worker processes, seeds, pruning, a killed sweep
continued, bad input, `--seeds` on a study and `compare`. Real data, real journal files, no mocks."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from dlstudy.api import resolve_config
from dlstudy.errors import InputError
from dlstudy.sweep.space import load_space

# a trend setting that learns within seconds (windows of 20 days; short windows predict one class)
TREND = [
    "--set",
    "windows.lengths=[20]",
    "--set",
    "model.cells=[gru]",
    "--set",
    "correlation.subset=10",
    "--set",
    "train.epochs=4",
]


def covid(data_root):
    return str(data_root / "covid" / "covid_19.csv")


def space_file(tmp_path, text: dict, name="space.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(text))
    return path


def read_sweep(folder):
    return pd.read_csv(folder / "trials.csv"), json.loads((folder / "summary.json").read_text())


def launch(command, log):
    """A sweep in its own process group, its output to a file: a pipe nobody reads while the test polls
    would stall it once full (Ray's log lines fill one quickly)."""
    with open(log, "wb") as handle:
        proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log = log
    return proc


def tail(proc) -> str:
    return proc.log.read_text(errors="replace")[-3000:]


def wait_for(predicate, proc, what="a condition"):
    """Poll until `predicate` holds, for as long as `proc` runs: progress, not a clock, ends the wait, so
    a loaded machine only makes it longer. The suite's own time limit catches a real hang."""
    while proc.poll() is None:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"the sweep ended (exit {proc.returncode}) before {what}: {tail(proc)}")


# the sweep folder --------------------------------------------------------------------------------
def test_workers_opening_one_new_folder_at_once_never_find_it_foreign(tmp_path):
    """Workers started together (two machines on one PostgreSQL study) each open the sweep folder."""
    import threading

    from dlstudy.sweep.engine import SweepSpec, open_folder

    spec = SweepSpec(study="trend")
    for attempt in range(30):
        folder, errors = tmp_path / f"sw{attempt}", []
        start = threading.Barrier(4)

        def worker(folder=folder, start=start, errors=errors):
            start.wait()
            try:
                open_folder(folder, spec)
            except InputError as exc:
                errors.append(str(exc))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[0]
        assert json.loads((folder / "status.json").read_text())["study"] == "sweep"
    mid_write = tmp_path / "mid"  # another worker's status.json not yet renamed into place
    mid_write.mkdir()
    (mid_write / ".status.json.k2j4.tmp").write_text("{")
    assert open_folder(mid_write, spec).root == mid_write
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is no dlstudy sweep"):
        open_folder(foreign, spec)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


# the space file ----------------------------------------------------------------------------------
def test_space_reads_grid_and_ranges_and_enumerates_the_grid(tmp_path):
    cfg = resolve_config("trend")
    path = space_file(
        tmp_path,
        {
            "grid": {"model.hidden_size": [16, 32], "windows.lengths": [[5], [10, 20]]},
            "params": {
                "train.weight_decay": {"low": 1.0e-6, "high": 1.0e-2, "log": True},
                "train.epochs": {"low": 5, "high": 20, "step": 5},
                "model.cells": [["gru"], ["lstm"]],
            },
        },
    )
    space = load_space(path, cfg)
    assert space.combinations() == [
        {"model.hidden_size": h, "windows.lengths": w} for h in (16, 32) for w in ([5], [10, 20])
    ]
    epochs = space.param("train.epochs")
    assert epochs.integer and (epochs.low, epochs.high, epochs.step) == (5, 20, 5)
    assert space.param("train.weight_decay").log and not space.param("train.weight_decay").integer
    # list values travel to Optuna as JSON text and come back as lists
    lengths = space.param("windows.lengths")
    assert lengths.choices() == ["[5]", "[10, 20]"] and lengths.decode("[10, 20]") == [10, 20]
    assert lengths.as_set([10, 20]) == "windows.lengths=[10, 20]"


@pytest.mark.parametrize(
    "text, words",
    [
        ({"grid": {"model.hiden_size": [8]}}, "unknown config key 'model.hiden_size'"),
        ({"grid": {"model.hidden_size": 8}}, "needs a non-empty list"),
        ({"grid": {"model.hidden_size": ["big"]}}, "model.hidden_size"),
        ({"grid": {"model.hidden_size": [8, 8]}}, "lists a value twice"),
        ({"params": {"train.lr": {"low": 0.1, "high": 0.01}}}, "needs low < high"),
        ({"params": {"train.lr": {"low": 0, "high": 0.1, "log": True}}}, "log: true needs low > 0"),
        ({"params": {"train.epochs": {"low": 1.5, "high": 4}}}, "whole number"),
        ({"params": {"model.cells": {"low": 1, "high": 2}}}, "a range needs a number key"),
        ({"params": {"train.lr": {"low": 0.1}}}, "needs a list (categorical) or {low, high"),
        ({"grid": {"train.lr": [0.1]}, "params": {"train.lr": [0.1, 0.2]}}, "both in grid: and params:"),
        ({"grids": {"train.lr": [0.1]}}, "holds 'grid:' and/or 'params:'"),
        (
            {"grid": {"model.cells": [["gru"], ["elman"]]}},
            "config key 'model.cells' (item 0) must be 'rnn', 'lstm' or 'gru'",
        ),
    ],
)
def test_bad_space_files_are_refused_with_the_file_and_key(tmp_path, text, words):
    from dlstudy.studies import trend

    with pytest.raises(InputError) as err:
        load_space(space_file(tmp_path, text), resolve_config("trend"), check=trend.check_config)
    assert words in str(err.value) and "space.yaml" in str(err.value)


def test_a_bad_space_exits_2_and_creates_nothing(tmp_path, cli, data_root):
    bad = space_file(tmp_path, {"grid": {"train.lr": [0.01]}, "params": {"train.epochs": {"low": 9, "high": 3}}})
    code, _, err = cli("sweep", "trend", "--space", bad, "--out", tmp_path / "sw", "--data", covid(data_root))
    assert code == 2 and "needs low < high" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "sw").exists()
    code, _, err = cli("sweep", "derive", "--out", tmp_path / "sw")
    assert code == 2 and not (tmp_path / "sw").exists()
    code, _, err = cli("sweep", "trend", "--storage", "sqlite:///x.db", "--workers", "2", "--out", tmp_path / "sw")
    assert code == 2 and "SQLite is refused for more than one worker" in err and not (tmp_path / "sw").exists()
    code, _, err = cli(
        "sweep",
        "trend",
        "--trials",
        "3",
        "--space",
        space_file(tmp_path, {"grid": {"train.lr": [0.1]}}),
        "--out",
        tmp_path / "sw",
    )
    assert code == 2 and "only 1 combination" in err and not (tmp_path / "sw").exists()


# sweeps on real data -----------------------------------------------------------------------------
@pytest.mark.slow
def test_a_grid_on_two_workers_gives_one_complete_run_per_combination(tmp_path, cli, data_root):
    space = space_file(tmp_path, {"grid": {"model.hidden_size": [8, 16], "train.lr": [0.01, 0.003]}})
    out = tmp_path / "sw"
    # no --pruner: a grid keeps every cell (the default median pruner used to stop the lower learning rate)
    code, printed, err = cli(
        "sweep", "trend", "--space", space, "--workers", "2", "--out", out, "--data", covid(data_root), *TREND
    )
    assert code == 0, err
    trials, summary = read_sweep(out)
    assert list(trials.columns[:7]) == ["number", "state", "value", "seed", "run_dir", "model.hidden_size", "train.lr"]
    assert len(trials) == 4 and set(trials["state"]) == {"complete"} and trials["run_dir"].nunique() == 4
    seen = set()
    for row in trials.itertuples():
        run = out / row.run_dir
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        assert json.loads((run / "status.json").read_text())["state"] == "complete"
        assert (cfg["model"]["hidden_size"], cfg["train"]["lr"]) == (row._6, row._7)  # the swept values reached the run
        assert metrics["test_balanced_accuracy"] == pytest.approx(row.value)  # read from the run, not retyped
        seen.add((row._6, row._7))
    assert seen == {(8, 0.01), (8, 0.003), (16, 0.01), (16, 0.003)}
    assert summary["metric"] == "test_balanced_accuracy" and summary["direction"] == "maximize"
    assert (summary["n_complete"], summary["n_pruned"], summary["n_failed"]) == (4, 0, 0)
    assert summary["best_value"] == pytest.approx(trials["value"].max())
    assert set(summary["best_params"]) == {"model.hidden_size", "train.lr"}
    html = (out / "report.html").read_text()
    for row in trials.itertuples():
        assert f'href="{row.run_dir}/report.html"' in html
    assert "Parameter importances" in html and "parallel_coordinates" in html
    pivot = html[html.index('<table class="grid-pivot">') :]
    pivot = pivot[: pivot.index("</table>")]
    assert pivot.count("<td") == 4 and pivot.count('class="best"') == 1  # 2 x 2 cells, the best one marked
    best = summary["best_params"]
    assert f"{summary['best_value']:.4f}" in pivot.split('class="best"')[1].split("</td>")[0]
    assert set(best) == {"model.hidden_size", "train.lr"}
    assert (out / "logs" / "worker-0.txt").exists() and (out / "logs" / "worker-1.txt").exists()
    assert f"report: {out / 'report.html'}" in printed
    # the same command again continues the finished study: nothing runs twice
    code, _, err = cli(
        "sweep", "trend", "--space", space, "--workers", "2", "--out", out, "--data", covid(data_root), *TREND
    )
    assert code == 0, err
    assert len(read_sweep(out)[0]) == 4
    # another setting in the same folder is refused
    code, _, err = cli(
        "sweep", "trend", "--space", space, "--out", out, "--data", covid(data_root), *TREND, "--set", "train.epochs=5"
    )
    assert code == 2 and "other settings" in err


@pytest.mark.slow
def test_seeds_give_a_mean_sd_and_interval_per_configuration(tmp_path, cli, data_root):
    space = space_file(tmp_path, {"grid": {"model.hidden_size": [8, 16]}})
    out = tmp_path / "sw"
    code, _, err = cli(
        "sweep",
        "trend",
        "--space",
        space,
        "--seeds",
        "3",
        "--seed",
        "5",
        "--out",
        out,
        "--data",
        covid(data_root),
        *TREND,
        "--set",
        "split.test_fraction=0.3",
    )
    assert code == 0, err
    trials, summary = read_sweep(out)
    assert len(trials) == 6 and sorted(trials["seed"]) == [5, 5, 6, 6, 7, 7]
    for row in trials.itertuples():
        assert yaml.safe_load((out / row.run_dir / "config.yaml").read_text())["seed"] == row.seed
    assert len(summary["configurations"]) == 2
    for conf in summary["configurations"]:
        values = trials.loc[trials["model.hidden_size"] == conf["model.hidden_size"], "value"]
        assert (
            conf["n"] == 3
            and conf["mean"] == pytest.approx(values.mean())
            and conf["sd"] == pytest.approx(values.std())
        )
        assert conf["ci95_low"] < conf["mean"] < conf["ci95_high"] or conf["sd"] == 0
    assert summary["best_value"] == max(c["mean"] for c in summary["configurations"])
    assert "seed_spread.png" in (out / "report.html").read_text()


@pytest.mark.slow
def test_study_seeds_flag_repeats_the_run(tmp_path, cli, data_root):
    out = tmp_path / "rep"
    code, printed, err = cli("trend", "--seeds", "2", "--out", out, "--data", covid(data_root), *TREND)
    assert code == 0, err
    trials, summary = read_sweep(out)
    assert list(trials["seed"]) == [0, 1] and summary["configurations"][0]["n"] == 2
    # compare the two seeds' runs side by side
    runs = [out / d for d in trials["run_dir"]]
    page = tmp_path / "cmp.html"
    code, printed, err = cli("compare", *runs, "--out", page)
    assert code == 0, err
    html = page.read_text()
    assert "Config keys that differ" in html and '<th class="t">seed</th>' in html  # the only key that differs
    assert 'alt="curves.png"' in html and "data:image/png;base64" in html  # curves embedded: one offline file
    code, _, err = cli("compare", *runs, "--out", page)
    assert code == 2 and "exists" in err  # never over an existing file without --force


@pytest.mark.slow
def test_the_median_pruner_stops_trials_that_do_not_learn(tmp_path, cli, data_root):
    # five learning rates that learn, then two that barely move the weights: once five trials have
    # finished, the last two's validation loss lies above the median at the same model and epoch
    space = space_file(tmp_path, {"grid": {"train.lr": [0.01, 0.005, 0.02, 0.008, 0.003, 1.0e-7, 1.0e-8]}})
    out = tmp_path / "sw"
    code, _, err = cli(
        "sweep",
        "trend",
        "--space",
        space,
        "--out",
        out,
        "--data",
        covid(data_root),
        *TREND,
        "--set",
        "train.epochs=8",
        "--pruner",
        "median",
    )
    assert code == 0, err
    trials, summary = read_sweep(out)
    pruned = trials[trials["state"] == "pruned"]
    assert summary["n_pruned"] >= 1 and set(pruned["train.lr"]) <= {1e-7, 1e-8} and len(trials) == 7
    for row in pruned.itertuples():
        status = json.loads((out / row.run_dir / "status.json").read_text())
        assert status["state"] == "pruned" and "median pruner" in status["reason"]
        epoch = int(status["reason"].split(" epoch ")[1].split()[0])
        assert epoch >= 2  # never before a quarter of the model's 8 epochs
    assert "are missing from the means and the grid" in (out / "report.html").read_text()


def test_the_pruner_compares_the_same_model_at_the_same_epoch():
    import optuna

    from dlstudy.sweep.pruning import MIN_FINISHED, ModelMedianPruner, step, warmup

    assert [warmup(e) for e in (1, 3, 4, 8, 40)] == [1, 1, 1, 2, 10]
    assert step("time-gru-L3", 5) - step("time-gru-L3", 1) == 4 and step("a", 1) != step("b", 1)
    study = optuna.create_study(direction="maximize", pruner=ModelMedianPruner())
    finished = {step("rnn", 3): 0.6, step("gru", 3): 0.9}  # every finished trial: rnn weak, gru strong
    for _ in range(MIN_FINISHED - 1):
        study.add_trial(optuna.trial.create_trial(value=0.9, intermediate_values=finished))

    def judged(values: dict) -> bool:
        trial = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, intermediate_values=values)
        return study.pruner.prune(study, trial)

    weak_rnn = {step("rnn", 3): 0.5}
    assert not judged(weak_rnn)  # four finished trials: too few to judge
    study.add_trial(optuna.trial.create_trial(value=0.9, intermediate_values=finished))
    assert judged(weak_rnn)  # below the finished trials' rnn at epoch 3
    # 0.7 beats every finished rnn (0.6) but not their gru (0.9): judged against the rnn only, kept
    assert not judged({step("gru", 3): 0.95, step("rnn", 3): 0.7})
    assert judged({step("rnn", 3): 0.95, step("gru", 3): 0.7})  # the trial's own rnn does not rescue its gru
    assert not judged({step("lstm", 3): 0.1})  # no finished trial trained an lstm: nothing to compare with


def test_grid_cells_say_whether_they_differ_from_the_best_beyond_the_seeds():
    from dlstudy.sweep.results import paired_note

    best = {"config": 0, "values": [0.80, 0.82, 0.81], "seeds": [0, 1, 2]}
    within = {"config": 1, "values": [0.81, 0.80, 0.81], "seeds": [0, 1, 2]}  # differences +0.01, -0.02, 0
    # listed in another seed order, matched by seed: differences -0.10, -0.09, -0.11 for seeds 0, 1, 2
    beyond = {"config": 2, "values": [0.70, 0.70, 0.73], "seeds": [2, 0, 1]}
    assert paired_note(within, best).startswith("no difference from the best beyond the seed spread (paired t")
    assert paired_note(beyond, best).startswith("differs from the best (paired t, 3 seeds, p 0.0")
    assert paired_note({"config": 3, "values": [0.5], "seeds": [0]}, best) == ""  # one seed: nothing to test
    shifted = {"config": 4, "values": [0.79, 0.81, 0.80], "seeds": [0, 1, 2]}  # -0.01 on every seed: no spread
    assert paired_note(shifted, best) == "differs from the best on every seed by -0.0100"


@pytest.mark.slow
def test_a_killed_sweep_continues_and_every_trial_completes_once(tmp_path, data_root):
    space = space_file(tmp_path, {"grid": {"model.hidden_size": [8, 12, 16, 24]}})
    out = tmp_path / "sw"
    command = [
        sys.executable,
        "-m",
        "dlstudy.cli",
        "sweep",
        "trend",
        "--space",
        str(space),
        "--out",
        str(out),
        "--data",
        covid(data_root),
        *TREND,
        "--set",
        "train.epochs=40",
        "--pruner",
        "none",
    ]
    proc = launch(command, tmp_path / "first.log")
    # kill it inside the second trial, after an epoch: however long the first trial takes on a busy machine
    wait_for(lambda: list((out / "trials").glob("c001-s0/checkpoints/*.pt")), proc, what="trial 1's first checkpoint")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((out / "trials" / "c001-s0" / "status.json").read_text())["state"] == "running"

    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    trials, summary = read_sweep(out)
    final = trials[trials["state"] != "failed"]
    assert summary["n_complete"] == 4 and sorted(final["config"]) == [0, 1, 2, 3]  # each exactly once
    lost = trials[trials["state"] == "failed"]
    assert list(lost["config"]) == [1] and "died" in lost["reason"].iloc[0]
    assert summary["n_retried"] == 1
    log = (out / "trials" / "c001-s0" / "log.txt").read_text()
    assert "resuming after epoch" in log  # the retry continued its run folder from the checkpoint


def test_the_pivot_shows_the_two_most_important_keys_and_marks_missing_cells():
    from dlstudy.report import Report
    from dlstudy.sweep.results import grid_pivot, per_config
    from dlstudy.sweep.space import Param, Space

    space = Space(grid=(Param("a", values=(1, 2)), Param("b", values=("x", "y")), Param("c", values=(0.1, 0.2))))
    rows, config = [], 0
    for a in (1, 2):
        for b in ("x", "y"):
            for c in (0.1, 0.2):
                value = 0.5 + 0.2 * (b == "y") + 0.1 * (c == 0.2) + 0.01 * (a == 2)
                state = "pruned" if (a, b, c) == (2, "x", 0.1) else "complete"
                rows.append(
                    {
                        "config": config,
                        "seed": 0,
                        "state": state,
                        "value": value if state == "complete" else None,
                        "a": a,
                        "b": b,
                        "c": c,
                    }
                )
                config += 1
    ended = pd.DataFrame(rows)
    summary = {"metric": "m", "direction": "maximize", "configurations": per_config(ended, space, "maximize", 1)}
    report = Report("t")
    grid_pivot(report, summary, ended, space, {"b": 0.7, "c": 0.25, "a": 0.05})
    html = "".join(report.blocks)
    assert "The grid: b against c" in html and "a = 2" in html  # a held at the best configuration's value
    pivot = html[html.index('<table class="grid-pivot">') :]
    assert pivot.count("<td") == 4 and pivot.count('class="best"') == 1
    assert "&#9733; 0.8100" in pivot  # the best: a 2, b y, c 0.2
    assert "pruned<br><small>missing: no value was measured" in pivot  # (a 2, b x, c 0.1)


# failing cleanly -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, words",
    [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--workers", "64"], "this machine has"),
        (["--trials", "1000000", "--space", "{params}"], "must lie in 1..10,000"),
        (["--seed", "4294967295", "--seeds", "2"], "largest seed"),
        (
            ["--seed", "4294967296"],
            "config key 'seed' must be less than or equal to 4294967295",
        ),  # 2**32 would alias seed 0
        (["--storage", "journal:"], "name the journal file"),
        (["--storage", "sqlite:///"], "name the database file"),
        (["--storage", "journal:{foreign}"], "line 1 is not an Optuna journal entry"),
    ],
)
def test_bad_sweep_flags_are_one_line_and_create_nothing(tmp_path, cli, args, words):
    foreign = tmp_path / "notes.txt"
    foreign.write_text("my own notes, not a journal\n")
    params = space_file(tmp_path, {"params": {"train.lr": {"low": 0.001, "high": 0.1, "log": True}}})
    args = [a.replace("{params}", str(params)).replace("{foreign}", str(foreign)) for a in args]
    code, _, err = cli("sweep", "trend", *args, "--out", tmp_path / "sw")
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "sw").exists() and foreign.read_text() == "my own notes, not a journal\n"


@pytest.mark.slow
def test_a_torn_journal_is_repaired_and_a_damaged_one_refused(tmp_path, cli, data_root):
    space = space_file(tmp_path, {"grid": {"model.hidden_size": [8]}})
    out = tmp_path / "sw"
    command = ["sweep", "trend", "--space", space, "--out", out, "--data", covid(data_root), *TREND]
    code, _, err = cli(*command)
    assert code == 0, err
    journal = out / "optuna.journal"
    whole = journal.read_bytes()
    with open(journal, "ab") as f:  # what a kill in the middle of an append leaves
        f.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 0, "us')
    code, _, err = cli(*command)
    assert code == 0, err
    assert journal.read_bytes().startswith(whole) and journal.read_bytes().endswith(b"\n")
    assert len(read_sweep(out)[0]) == 1  # nothing ran twice
    lines = whole.splitlines(keepends=True)
    journal.write_bytes(b"".join([*lines[:2], b"garbage\n", *lines[2:]]))
    status = (out / "status.json").read_text()
    code, _, err = cli(*command)
    assert code == 2 and "optuna.journal: line 3 is not an Optuna journal entry" in err and len(err.splitlines()) == 1
    assert (out / "status.json").read_text() == status  # the finished sweep still says complete


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount(name, options) -> a fresh tmpfs folder; root only (CI runs as root)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root, which these file-system tests need")
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def mount(name, options):
        folder = tmp_path / name
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)])


@pytest.mark.slow
def test_a_full_disk_fails_the_sweep_and_a_rerun_retries_its_trial(mount_tmpfs, data_root):
    disk = mount_tmpfs("disk", "size=1m")
    space = space_file(disk.parent, {"grid": {"model.hidden_size": [8, 12]}})
    out = disk / "sw"
    command = [
        sys.executable,
        "-m",
        "dlstudy.cli",
        "sweep",
        "trend",
        "--space",
        str(space),
        "--out",
        str(out),
        "--data",
        covid(data_root),
        *TREND,
    ]
    full = subprocess.run(command, capture_output=True, text=True)
    assert full.returncode == 1 and "Traceback" not in full.stderr and len(full.stderr.strip().splitlines()) == 1
    assert "no space left on device writing" in full.stderr
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "no space left" in status["reason"]  # not complete, not running
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # the user frees space
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    trials, summary = read_sweep(out)
    assert summary["n_complete"] == 2 and summary["n_failed"] == 0
    assert json.loads((out / "status.json").read_text())["state"] == "complete"
    failed = trials[trials["state"] == "failed"]
    assert len(failed) == 1 and failed["run_dir"].iloc[0] in set(trials.loc[trials["state"] == "complete", "run_dir"])


def test_a_read_only_out_is_one_line(mount_tmpfs, cli):
    read_only = mount_tmpfs("ro", "ro,size=1m")
    code, _, err = cli("sweep", "trend", "--out", read_only / "sw")
    assert code == 2 and "cannot write the sweep folder" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_a_trial_folder_is_resumed_only_by_its_sweep(tmp_path, cli, data_root):
    space = space_file(tmp_path, {"grid": {"model.hidden_size": [8]}})
    out = tmp_path / "sw"
    code, _, err = cli("sweep", "trend", "--space", space, "--out", out, "--data", covid(data_root), *TREND)
    assert code == 0, err
    trial = out / "trials" / "c000-s0"
    status = json.loads((trial / "status.json").read_text())
    assert status["sweep"] == str(out)
    (trial / "status.json").write_text(json.dumps({**status, "state": "pruned"}))  # as the pruner leaves one
    code, _, err = cli(
        "trend", "--resume", "--out", trial, "--data", covid(data_root), *TREND, "--set", "model.hidden_size=8"
    )
    assert code == 2 and "is a trial of the sweep in" in err and len(err.strip().splitlines()) == 1, err
    assert json.loads((trial / "status.json").read_text())["state"] == "pruned"  # the sweep's record stands


def test_resume_on_a_read_only_run_folder_is_one_line(mount_tmpfs, cli, data_root):
    disk = mount_tmpfs("disk", "size=64m")
    run = disk / "run"
    code, _, err = cli("-q", "trend", "--data", covid(data_root), "--out", run, *TREND)
    assert code == 0, err
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "state": "running"}))  # as a kill leaves it
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    code, _, err = cli("-q", "trend", "--data", covid(data_root), "--out", run, *TREND, "--resume")
    assert code == 2 and "cannot lock the run folder" in err and len(err.strip().splitlines()) == 1, err


def test_a_sweep_budget_starts_no_trial_that_would_not_fit_and_says_so(tmp_path, cli, data_root):
    """With --budget 1s the first trial runs (nothing is known of a trial's time before one ends), then none
    starts; the report says how many waited and why, the sweep is not marked complete, and --resume runs them."""
    space = space_file(tmp_path, {"grid": {"train.lr": [0.01, 0.02, 0.005]}})
    out = tmp_path / "sw"
    command = ["sweep", "trend", "--space", space, "--out", out, "--data", covid(data_root), *TREND]
    code, stdout, err = cli(*command, "--budget", "1s")
    assert code == 0, err
    trials, summary = read_sweep(out)
    assert summary["n_complete"] == 1 and summary["n_not_started"] == 2 and summary["budget_seconds"] == 1.0
    page = (out / "report.html").read_text()
    assert "2 trial(s) were not started" in page and "budget of 1 s" in page
    status = json.loads((out / "status.json").read_text())
    assert status["state"] != "complete" and "not started" in status["reason"]
    code, _, err = cli(*command, "--resume")
    assert code == 0, err
    assert read_sweep(out)[1]["n_complete"] == 3
    assert json.loads((out / "status.json").read_text())["state"] == "complete"


def test_a_failed_trial_says_why_even_when_its_error_says_nothing(tmp_path, monkeypatch, data_root):
    """Issue 47: a trial failed by an exception with an empty message left the trials table's reason empty."""
    import dlstudy.api
    from dlstudy import sweep

    def broken(*args, **kwargs):
        raise RuntimeError()

    monkeypatch.setattr(dlstudy.api, "run_study", broken)  # the trial imports it from there
    with pytest.raises(InputError, match="RuntimeError"):
        sweep("trend", trials=1, out=tmp_path / "sw", data=covid(data_root), workers=1)
    trials = pd.read_csv(tmp_path / "sw" / "trials.csv")
    assert trials["reason"].iloc[0] == "RuntimeError", trials.to_dict("records")
