import json
from pathlib import Path
from typing import Annotated

import pytest
import yaml
from pydantic import Field

from dlstudy.config import (
    Count,
    Epochs,
    Schema,
    StudyConfig,
    first_difference,
    json_schema,
    key,
    merge,
    one_of,
    parse_set,
    resolve,
    section,
)
from dlstudy.errors import InputError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


class Train(Schema):
    """A small schema in the shape of a study's."""

    lr: Annotated[float, Field(gt=0)] = key(1e-3, "learning rate")
    epochs: Epochs = key(5, "epochs")
    opt: one_of("adam", "sgd") = key("adam", "optimizer")


class Toy(StudyConfig):
    train: Train = section(Train)
    dims: list[Count] = key([2, 4], "widths")
    k: int | None = key(None, "optional")


def test_set_parses_nested_yaml_values_and_the_result_is_typed():
    cfg = resolve(Toy, sets=["train.epochs=7", "dims=[8, 16]", "k=3", "train.lr=1e-2"])
    assert (cfg.train.lr, cfg.train.epochs, cfg.train.opt) == (0.01, 7, "adam")  # 1e-2 is a number, as in YAML 1.2
    assert cfg.dims == [8, 16] and cfg.k == 3
    assert resolve(Toy).train.epochs == 5  # the defaults are not mutated
    with pytest.raises(Exception, match="frozen"):
        cfg.train.epochs = 9  # a run's config is what it was resolved to


def test_precedence_quick_file_set_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 9\n  opt: sgd\n")
    cfg = resolve(Toy, quick={"train": {"epochs": 1}, "seed": 5}, file=f, sets=["train.opt=adam"], flags={"seed": 7})
    assert cfg.train.epochs == 9 and cfg.train.opt == "adam" and cfg.seed == 7


@pytest.mark.parametrize(
    "item, words",
    [
        ("train.epoch=3", "unknown config key 'train.epoch' (known here: lr, epochs, opt)"),
        ("trian.lr=3", "unknown config key 'trian' (known here: seed, quick, train, dims, k)"),
        ("train.epochs=three", "config key 'train.epochs' must be a valid integer, got 'three'"),
        ("train.epochs=2.5", "config key 'train.epochs' must be a valid integer, got 2.5"),
        ("train.epochs=0", "config key 'train.epochs' must be greater than or equal to 1, got 0"),
        ("train.lr=.nan", "config key 'train.lr' must be a finite number"),
        ("train.lr=true", "config key 'train.lr' must be a valid number, got True"),  # a bool is not a number
        ("train.opt=rmsprop", "config key 'train.opt' must be 'adam' or 'sgd', got 'rmsprop'"),
        ("dims=5", "config key 'dims' must be a valid list"),
        ("dims=[4, 0]", "config key 'dims' (item 1) must be greater than or equal to 1, got 0"),
        ("train.lr.decay=1", "config key 'train.lr' must be a valid number"),
        ("noequals", "key=value"),
    ],
)
def test_bad_overrides_are_one_line_naming_the_key(item, words):
    with pytest.raises(InputError) as caught:
        resolve(Toy, sets=[item])
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_bad_yaml_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("train: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        resolve(Toy, file=f)
    with pytest.raises(InputError, match="does not exist"):
        resolve(Toy, file=tmp_path / "missing.yaml")


def test_merge_and_first_difference():
    base = resolve(Toy).model_dump()
    a = merge(base, parse_set("train.epochs=6"))
    assert first_difference(base, a) == "train.epochs"
    assert first_difference(a, a) is None


def test_every_key_of_every_study_has_a_type_a_default_and_a_description():
    from dlstudy.studies import STUDIES

    def walk(schema, prefix=""):
        for name, field in schema.model_fields.items():
            inner = field.annotation
            if isinstance(inner, type) and issubclass(inner, Schema):
                yield from walk(inner, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}", field

    for study in STUDIES.values():
        fields = dict(walk(study.Config))
        assert len(fields) >= 6, study.NAME
        undescribed = [k for k, f in fields.items() if not f.description]
        assert not undescribed, (study.NAME, undescribed)
        assert all(not f.is_required() for f in fields.values()), study.NAME


@pytest.mark.parametrize("study", ["cluster", "trend", "classify", "generate", "derive"])
def test_schema_flag_prints_a_json_schema_that_validates_the_shipped_configs_and_refuses_a_typo(study, cli):
    import jsonschema

    code, out, err = cli(study, "--schema")
    assert code == 0, err
    schema = json.loads(out)
    checker = jsonschema.Draft202012Validator(schema)
    for path in sorted(CONFIGS.glob(f"{study}-*.yaml")):
        checker.validate(yaml.safe_load(path.read_text()) or {})
    assert not list(checker.iter_errors({"seed": 0}))
    assert list(checker.iter_errors({"sede": 0})) and list(checker.iter_errors({"seed": -1}))


def test_the_schema_files_configs_point_editors_at_are_current():
    """configs/schema/<study>.json is what `dlstudy <study> --schema` prints: regenerate it when a key changes."""
    from dlstudy.studies import STUDIES

    for name, study in STUDIES.items():
        saved = json.loads((CONFIGS / "schema" / f"{name}.json").read_text())
        assert saved == json_schema(study.Config), f"configs/schema/{name}.json is stale: dlstudy {name} --schema"
    for path in CONFIGS.glob("*.yaml"):
        first = path.read_text().splitlines()[0]
        target = path.stem.split("-")[0]  # sweep-*.yaml are space files, not configs
        if target in STUDIES:
            assert first == f"# yaml-language-server: $schema=schema/{target}.json", path


def test_every_shipped_study_config_resolves_and_passes_its_checks():
    from dlstudy.api import check, resolve_config
    from dlstudy.studies import STUDIES

    root = Path(__file__).resolve().parent.parent / "configs"
    shipped = [(p, p.stem.split("-")[0]) for p in sorted(root.glob("*.yaml")) if p.stem.split("-")[0] in STUDIES]
    assert {study for _, study in shipped} >= {"classify", "cluster", "derive"}
    for path, study in shipped:  # GPU configs are checked on the CPU: this machine may have no CUDA
        sets = ["device=cpu"] if "device" in STUDIES[study].Config.model_fields else []
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
