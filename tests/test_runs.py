import json

import pytest
import torch
import yaml

from dlstudy.errors import InputError
from dlstudy.runs import Run, is_complete, load_finished_run

CFG = {"seed": 0, "x": 1}


def test_lifecycle_and_atomic_files(tmp_path):
    run = Run.open(tmp_path / "r", CFG, resume=False, study="cluster")
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text()) == CFG
    assert not is_complete(run.root)
    run.write_json("a/b.json", {"v": 1.5})
    run.save_arrays("arr.npz", x=torch.arange(3).numpy())
    assert run.load_arrays("arr.npz")["x"].tolist() == [0, 1, 2]
    run.complete({"accuracy": 0.5})
    assert is_complete(run.root)
    assert json.loads((run.root / "metrics.json").read_text()) == {"accuracy": 0.5}
    assert not list(run.root.rglob("*.tmp")), "temporary files must be renamed away"
    root, cfg, status = load_finished_run(run.root)
    assert cfg == CFG and status["study"] == "cluster"


def test_refuses_paths_outside_the_run(tmp_path):
    run = Run.open(tmp_path / "r", CFG, resume=False, study="cluster")
    with pytest.raises(InputError, match="outside the run folder"):
        run.write_text("../escape.txt", "x")
    assert not (tmp_path / "escape.txt").exists()


def test_resume_rules(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(InputError, match="nothing to resume"):
        Run.open(out, CFG, resume=True, study="cluster")
    Run.open(out, CFG, resume=False, study="cluster")
    with pytest.raises(InputError, match="add --resume"):
        Run.open(out, CFG, resume=False, study="cluster")
    with pytest.raises(InputError, match="config key 'x' differs"):
        Run.open(out, {**CFG, "x": 2}, resume=True, study="cluster")
    with pytest.raises(InputError, match="is a 'cluster' run"):
        Run.open(out, CFG, resume=True, study="trend")
    run = Run.open(out, CFG, resume=True, study="cluster")
    run.complete({})
    with pytest.raises(InputError, match="finished run"):
        Run.open(out, CFG, resume=True, study="cluster")


def test_unfinished_run_cannot_be_predicted(tmp_path):
    Run.open(tmp_path / "r", CFG, resume=False, study="cluster")
    with pytest.raises(InputError, match="unfinished"):
        load_finished_run(tmp_path / "r")


def test_checkpoints_load_without_unpickling_code(tmp_path):
    run = Run.open(tmp_path / "r", CFG, resume=False, study="cluster")
    run.save_torch("c.pt", {"w": torch.ones(2), "n": 3})
    assert run.load_torch("c.pt")["n"] == 3

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    run.save_torch("evil.pt", {"x": Evil()})
    with pytest.raises(Exception, match="[Ww]eights only"):
        run.load_torch("evil.pt")
