from pathlib import Path

import pytest

from dlstudy.config import first_difference, merge, parse_set, resolve
from dlstudy.errors import InputError

DEFAULTS = {"seed": 0, "train": {"lr": 1e-3, "epochs": 5, "opt": "adam"}, "grid": {"dims": [2, 4]}, "k": None}


def test_set_parses_nested_yaml_values():
    cfg = resolve(DEFAULTS, sets=["train.epochs=7", "grid.dims=[8, 16]", "k=3", "train.lr=1e-2"])
    assert cfg["train"] == {"lr": 0.01, "epochs": 7, "opt": "adam"}
    assert cfg["grid"]["dims"] == [8, 16] and cfg["k"] == 3
    assert DEFAULTS["train"]["epochs"] == 5  # defaults are not mutated


def test_precedence_quick_file_set_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 9\n  opt: sgd\n")
    cfg = resolve(DEFAULTS, quick={"train": {"epochs": 1}, "seed": 5}, file=f, sets=["train.opt=adamw"], flags={"seed": 7})
    assert cfg["train"]["epochs"] == 9 and cfg["train"]["opt"] == "adamw" and cfg["seed"] == 7


@pytest.mark.parametrize("item, words", [
    ("train.epoch=3", "unknown config key 'train.epoch'"),
    ("train.epochs=three", "must be int"),
    ("grid.dims=5", "must be list"),
    ("noequals", "key=value"),
])
def test_bad_overrides_name_the_key(item, words):
    with pytest.raises(InputError, match=words):
        resolve(DEFAULTS, sets=[item])


def test_bad_yaml_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("train: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        resolve(DEFAULTS, file=f)
    with pytest.raises(InputError, match="does not exist"):
        resolve(DEFAULTS, file=tmp_path / "missing.yaml")


def test_merge_and_first_difference():
    a = merge(DEFAULTS, parse_set("train.epochs=6"))
    assert first_difference(DEFAULTS, a) == "train.epochs"
    assert first_difference(a, a) is None


def test_every_shipped_study_config_resolves_and_passes_its_checks():
    from dlstudy.api import check, resolve_config
    from dlstudy.studies import STUDIES

    root = Path(__file__).resolve().parent.parent / "configs"
    shipped = [(p, p.stem.split("-")[0]) for p in sorted(root.glob("*.yaml")) if p.stem.split("-")[0] in STUDIES]
    assert {study for _, study in shipped} >= {"classify", "cluster", "derive"}
    for path, study in shipped:  # GPU configs are checked on the CPU: this machine may have no CUDA
        sets = ["device=cpu"] if "device" in STUDIES[study].DEFAULTS else []
        check(study, resolve_config(study, config=path, sets=sets))


def test_every_shipped_sweep_space_loads_and_each_corner_passes_its_study_checks():
    from dlstudy.api import check, resolve_config
    from dlstudy.sweep.space import load_space

    root = Path(__file__).resolve().parent.parent / "configs"
    spaces = sorted(root.glob("sweep-*.yaml"))
    assert {p.stem.split("-")[1] for p in spaces} >= {"cluster", "trend"}
    for path in spaces:  # sweep-<study>-<what>.yaml, as the README's examples name them
        study = path.stem.split("-")[1]
        space = load_space(path, resolve_config(study), check=lambda c, study=study: check(study, c))
        assert space.combinations() and len(space.combinations()[0]) == len(space.grid) >= 1, path
