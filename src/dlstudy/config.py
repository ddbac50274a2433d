"""Configs: study defaults < --quick < --config FILE.yaml < --set key=value < flags, then one typed check.

The layers are plain nested dicts merged in that order; the result is validated once against the
study's schema, a tree of pydantic models (`Schema` below) where every key has its type, default,
range or choices and a one-line description. Code reads the typed result (`cfg.train.epochs`).
A key a user gives must exist (a typo is an error, not a silent no-op), and every error is one line
naming the dotted key. YAML input is bounded: an alias bomb is refused before it expands. The
resolved config is saved with every run.
"""

from __future__ import annotations

import contextlib
import copy
import re
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema

from dlstudy.errors import InputError, readable

MAX_YAML_BYTES = 2**20
MAX_NODES = 10_000  # values in one YAML document once aliases are expanded; configs hold a few hundred
MAX_SEED = 2**32 - 1  # what every generator takes (numpy's, Optuna's samplers)


# the schema's building blocks -----------------------------------------------------------------------
class Schema(BaseModel):
    """A config section: unknown keys refused, values never coerced across types (1.5 is not an int,
    "yes" not a bool), no NaN or infinity, and frozen: a run's config is what it was resolved to."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


def key(default: Any = None, about: str = "", **bounds) -> Any:
    """A config key: its default, a one-line description and, for numbers, bounds (ge, gt, le, lt)."""
    return Field(default, description=about, **bounds)  # pydantic copies a list default for each config


def section(schema: type[Schema], about: str = "", **overrides) -> Any:
    """A nested section whose default is the schema's defaults with `overrides` (a study's own train settings):
    frozen, so one default serves every config, and the JSON Schema shows it."""
    return Field(schema(**overrides), description=about or (schema.__doc__ or "").strip().split("\n")[0])


def one_of(*names: str) -> Any:
    """A key whose value is one of `names` (a Literal: the JSON Schema lists the choices)."""
    return typing.Literal[names]


# the numbers most keys hold
Count = Annotated[int, Field(ge=1, le=10**9)]  # sizes, widths, how many of something
Epochs = Annotated[int, Field(ge=1, le=100_000)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Fraction = Annotated[float, Field(gt=0, lt=1)]  # a share of the data held out
Probability = Annotated[float, Field(ge=0, le=1)]
Rate = Annotated[float, Field(ge=0, lt=1)]  # dropout, label smoothing: 1 would remove everything
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


DURATION_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600}
DURATION_PATTERN = r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*"


def parse_duration(value: Any) -> Any:
    """'90s', '20m', '1.5h' or a number of seconds -> seconds (float); anything else is left for the type check."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = re.fullmatch(DURATION_PATTERN, value)
        if not match:
            raise ValueError(f"a duration is a number with s, m or h (90s, 20m, 1.5h), not {value!r}")
        return float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]
    return value


def format_duration(seconds: float) -> str:
    """Seconds as a person says them: '90 s', '6.5 min', '1.5 h'."""
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


# a wall-clock time in seconds; a config or flag may also write it as 90s, 20m or 1.5h
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(gt=0, le=10**7),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": 10**7},
                {"type": "string", "pattern": f"^{DURATION_PATTERN}$"},
            ]
        }
    ),
]


def budget_key(seconds: float | None) -> Any:
    """The `budget` key with a study's default (dlstudy.budget)."""
    return key(
        seconds,
        "the run's wall time (90s, 20m, 1.5h; kept in seconds): the epochs, and the net where the study has a "
        "ladder, are planned from the step time measured here to fit it, the report included; an explicit "
        "train.epochs wins; null: no planning",
    )


class StudyConfig(Schema):
    """What every study's config holds."""

    seed: Seed = key(0, "seeds every generator: the same seed, data and config give the same numbers")
    quick: bool = key(False, "set by --quick: the reduced setting that finishes in about a minute")


class TrainingConfig(StudyConfig):
    """What every training study's config holds."""

    device: one_of("auto", "cpu", "cuda") = key("auto", "auto: CUDA when torch sees a GPU, else the CPU")
    tensorboard: bool = key(False, "also write each epoch's scalars for TensorBoard (tensorboard/ in the run)")
    budget: Duration | None = budget_key(None)


# the typed check, and its one-line errors ----------------------------------------------------------
def validate(schema: type[Schema], data: dict) -> Schema:
    """The typed config, or an InputError naming the first bad key and what it must be."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise InputError(explain(schema, exc.errors(include_url=False)[0])) from None


def explain(schema: type[Schema], error: dict) -> str:
    """One pydantic error as one line: the dotted key, what it must be, what it got."""
    model, names, item, loc = schema, [], None, error["loc"]
    for part in loc:
        fields = model.model_fields if model is not None else {}
        if isinstance(part, int):
            item = part
        elif part in fields:
            names.append(part)
            parent, model = model, _section_of(fields[part].annotation)
        elif error["type"] == "extra_forbidden" and part == loc[-1]:
            names.append(part)
            parent = model
        # anything else is the tag of a union's member ('int', 'str'): not a key
    dotted = ".".join(names) or "config"
    if error["type"] == "extra_forbidden":
        return f"unknown config key '{dotted}' (known here: {', '.join(parent.model_fields)})"
    where = f" (item {item})" if item is not None else ""
    must = error["msg"].replace("Value error, ", "must be valid: ").replace("Input should", "must")
    must = must.replace("Input", "the value")
    return f"config key '{dotted}'{where} {must}, got {short(error.get('input'))}"


def _section_of(annotation: Any) -> type[Schema] | None:
    """The Schema class a field holds; None for a plain value."""
    return annotation if isinstance(annotation, type) and issubclass(annotation, Schema) else None


def json_schema(schema: type[Schema]) -> dict:
    """The JSON Schema of a study's config, for `--schema` and editors (configs/schema/)."""
    return schema.model_json_schema()


def defaults(schema: type[Schema]) -> dict:
    """A study's defaults as the nested dict the layers merge into."""
    return schema().model_dump()


# the dict layers: YAML files, --set items, merging ------------------------------------------------------
class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading 1e-3 as a number as YAML 1.2 (and every editor) does, not as a string."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def short(value: Any, limit: int = 60) -> str:
    """A value for an error message: its repr, cut to a prefix."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def bounded(value: Any, *, source: str, limit: int = MAX_NODES) -> Any:
    """Refuse a YAML value whose expanded size exceeds `limit` nodes (an alias bomb) without expanding it."""
    count, stack = 0, [value]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            raise InputError(
                f"{source}: more than {limit:,} values once YAML aliases are expanded; "
                "write the values out instead of nesting aliases"
            )
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return value


def merge(base: dict, override: dict) -> dict:
    """Return base updated by override, section by section; the schema judges the keys and values."""
    out = copy.deepcopy(base)
    for name, value in override.items():
        if isinstance(out.get(name), dict) and isinstance(value, dict):
            out[name] = merge(out[name], value)
        else:
            out[name] = copy.deepcopy(value)
    return out


def parse_set(item: str) -> dict:
    """'train.lr=1e-3' -> {'train': {'lr': 0.001}}; the value is read as YAML."""
    name, sep, text = item.partition("=")
    if not sep or not name.strip():
        raise InputError(f"--set expects key=value, got '{item}'")
    try:
        value = yaml.load(text, Loader=Loader) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise InputError(f"--set {short(item)}: the value is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    bounded(value, source=f"--set {name.strip()[:60]}")
    nested: Any = value
    for part in reversed(name.strip().split(".")):
        nested = {part: nested}
    return nested


def load_yaml(path: str | Path) -> dict:
    path = readable(path, "config file", limit=2 * MAX_YAML_BYTES)  # a pipe or device never ends: refused first
    try:
        with open(path, "rb") as f:  # read with a bound: configs and space files are a few kilobytes
            raw = f.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            raise InputError(f"config file {path} is over {MAX_YAML_BYTES // 2**20} MiB; a config is a few kilobytes")
        data = yaml.load(raw.decode("utf-8"), Loader=Loader)
    except FileNotFoundError:
        raise InputError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"config file {path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"config file {path} is not valid YAML: {str(exc)[:300]}") from None
    bounded(data, source=f"config file {path}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def resolve(
    schema: type[Schema],
    *,
    quick: dict | None = None,
    file: str | Path | None = None,
    sets: Iterable[str] = (),
    flags: dict | None = None,
) -> Schema:
    """The layers in order, then the one typed check."""
    cfg = defaults(schema)
    for layer in (quick, load_yaml(file) if file else None, *map(parse_set, sets), flags):
        if layer:
            cfg = merge(cfg, layer)
    return validate(schema, cfg)


def given(*, file: str | Path | None = None, sets: Iterable[str] = (), flags: dict | None = None) -> set[str]:
    """The dotted keys the user set (a config file, --set items, flags), not the defaults or --quick: an explicit
    train.epochs wins over a time budget."""
    keys: set[str] = set()
    for layer in (load_yaml(file) if file else None, *map(parse_set, sets), flags):
        keys |= set(flatten(layer or {}))
    return keys


# the keys every study's shared flags set: an error about one names the flag the user typed
SHARED_FLAGS = {"data.path": "--data", "seed": "--seed", "device": "--device", "budget": "--budget"}


@contextlib.contextmanager
def flags_named(flags: dict, names: dict[str, str]):
    """An InputError about a key that a flag set names the flag: `--set key=...` would not change it (flags win).
    A dotted key is also replaced where a message names it bare ('data.image_size 4096: ...'); a one-word key
    ('seed', 'budget') only in the "config key '...'" form, as the bare word is also plain English."""
    try:
        yield
    except InputError as exc:
        text = str(exc)
        for key in sorted(set(flatten(flags)) & set(names), key=len, reverse=True):
            text = text.replace(f"config key '{key}'", names[key])
            if "." in key:
                text = re.sub(rf"(?<![\w.-]){re.escape(key)}(?![\w.])", names[key], text)
        raise InputError(text) from None


def dump_yaml(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)


def flatten(cfg: dict, prefix: str = "") -> dict:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}: the dotted keys of --set."""
    out = {}
    for name, value in cfg.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """The first dotted key where two configs differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for name in sorted(set(a) | set(b)):
            diff = first_difference(a.get(name), b.get(name), f"{prefix}{name}.")
            if diff:
                return diff
        return None
    return None if a == b else prefix.rstrip(".")
