"""A sweep's search space, read from YAML and checked against the study's config before anything runs.

    grid:                        # every combination, each key a list
      model.hidden_size: [16, 32]
    params:                      # sampled by Optuna: a list is categorical, a mapping a range
      train.weight_decay: {low: 1.0e-6, high: 1.0e-2, log: true}
      train.epochs: {low: 5, high: 20, step: 5}

Keys are the dotted config keys of `--set`. A value reaches the study as `--set key=<JSON>` (JSON is
YAML), so a swept run is an ordinary run whose config.yaml says what it was given.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlstudy.config import Schema, load_yaml, merge, parse_set, validate
from dlstudy.errors import InputError

MAX_GRID = 10_000  # combinations; a larger grid is a typo, not a plan
SCALAR = (str, int, float, bool, type(None))


def default_at(defaults: dict, key: str) -> Any:
    node: Any = defaults
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


@dataclass(frozen=True)
class Param:
    """One swept key: categorical `values`, or a numeric range low..high (int when `integer`)."""

    key: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    integer: bool = False

    def choices(self) -> list:
        # Optuna's categorical choices must be scalars; lists (e.g. a grid of layer widths) go as JSON text
        return [v if isinstance(v, SCALAR) else json.dumps(v) for v in self.values]

    def decode(self, choice: Any) -> Any:
        return self.values[self.choices().index(choice)] if self.values else choice

    def suggest(self, trial) -> Any:
        if self.values:
            return self.decode(trial.suggest_categorical(self.key, self.choices()))
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def as_set(self, value: Any) -> str:
        return f"{self.key}={json.dumps(value)}"


@dataclass(frozen=True)
class Space:
    grid: tuple[Param, ...] = ()
    params: tuple[Param, ...] = ()
    source: str = "(no space)"
    text: dict = field(default_factory=dict)  # the file as read, for the sweep's spec

    @property
    def keys(self) -> list[str]:
        return [p.key for p in (*self.grid, *self.params)]

    def combinations(self) -> list[dict]:
        """Every grid combination, in file order (the last key varies fastest); [{}] without a grid."""
        return [
            dict(zip([p.key for p in self.grid], values))
            for values in itertools.product(*(p.values for p in self.grid))
        ]

    def param(self, key: str) -> Param:
        return next(p for p in (*self.grid, *self.params) if p.key == key)


def load_space(path: str | Path | None, base: Schema, check=None) -> Space:
    """Read and check a space file against a study's resolved config `base` (its schema types every value);
    `check(cfg)` is the study's own check_config, run on every grid combination with the ranges at both ends."""
    if path is None:
        return Space()
    path, defaults = Path(path), Typed(base)
    text = load_yaml(path)
    unknown = set(text) - {"grid", "params"}
    if unknown or not text:
        raise InputError(
            f"{path}: a space file holds 'grid:' and/or 'params:' mappings, not {sorted(unknown) or 'nothing'}"
        )
    grid = tuple(_grid_param(path, k, v, defaults) for k, v in _mapping(path, text, "grid").items())
    params = tuple(_sampled_param(path, k, v, defaults) for k, v in _mapping(path, text, "params").items())
    both = {p.key for p in grid} & {p.key for p in params}
    if both:
        raise InputError(f"{path}: {sorted(both)[0]} is both in grid: and params:; keep it in one")
    space = Space(grid, params, str(path), text)
    n = math.prod(len(p.values) for p in grid)
    if n > MAX_GRID:
        raise InputError(
            f"{path}: the grid has {n:,} combinations (at most {MAX_GRID:,}); sample some keys under params:"
        )
    if check is not None:
        for cfg in _corners(space, defaults):
            try:
                check(cfg)
            except InputError as exc:
                raise InputError(f"{path}: {exc}") from None
    return space


def _mapping(path: Path, text: dict, section: str) -> dict:
    value = text.get(section) or {}
    if not isinstance(value, dict):
        raise InputError(f"{path}: '{section}:' must map config keys to values, not {type(value).__name__}")
    return value


class Typed(dict):
    """A resolved config as a dict (what the dotted keys index), with the schema that types its values."""

    def __init__(self, base: Schema):
        super().__init__(base.model_dump())
        self.schema = type(base)

    def merged(self, values: dict) -> dict:
        """The config with `values` (dotted key -> value) set, checked against the schema."""
        cfg = dict(self)
        for key, value in values.items():
            cfg = merge(cfg, parse_set(f"{key}={json.dumps(value)}"))
        return validate(self.schema, cfg).model_dump()


def _typed(path: Path, key: str, value: Any, defaults: Typed) -> Any:
    """The value as the config would hold it: unknown keys and wrong types are errors naming the file."""
    try:
        default_at(defaults, key)
    except KeyError:
        raise InputError(f"{path}: unknown config key '{key}' (use the dotted keys of --set)") from None
    try:
        return default_at(defaults.merged({key: value}), key)
    except InputError as exc:
        raise InputError(f"{path}: {str(exc)[:300]}") from None


def _grid_param(path: Path, key: str, values: Any, defaults: Typed) -> Param:
    if not isinstance(values, list) or not values:
        raise InputError(f"{path}: grid key '{key}' needs a non-empty list of values, got {str(values)[:80]}")
    typed = tuple(_typed(path, key, v, defaults) for v in values)
    if len({json.dumps(v) for v in typed}) < len(typed):
        raise InputError(f"{path}: grid key '{key}' lists a value twice")
    return Param(key, values=typed)


def _sampled_param(path: Path, key: str, spec: Any, defaults: Typed) -> Param:
    if isinstance(spec, list):
        return _grid_param(path, key, spec, defaults)
    if not isinstance(spec, dict) or {"low", "high"} - set(spec) or set(spec) - {"low", "high", "step", "log"}:
        raise InputError(
            f"{path}: params key '{key}' needs a list (categorical) or {{low, high, step?, log?}}, got {str(spec)[:80]}"
        )
    try:
        default = default_at(defaults, key)
    except KeyError:
        raise InputError(f"{path}: unknown config key '{key}' (use the dotted keys of --set)") from None
    integer = isinstance(default, int) and not isinstance(default, bool)
    if not (integer or isinstance(default, float)):
        raise InputError(
            f"{path}: '{key}' holds {type(default).__name__} values; a range needs a number key, "
            "or give a list of choices"
        )
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    numbers = [v for v in (low, high, step) if v is not None]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in numbers):
        raise InputError(f"{path}: '{key}' low, high and step must be finite numbers")
    if integer and any(not float(v).is_integer() for v in numbers):
        raise InputError(f"{path}: '{key}' is a whole number; low, high and step must be whole too")
    if not low < high:
        raise InputError(f"{path}: '{key}' needs low < high, got {low} and {high}")
    if not isinstance(log, bool) or (log and (low <= 0 or step is not None)):
        raise InputError(f"{path}: '{key}' log: true needs low > 0 and no step")
    if step is not None and step <= 0:
        raise InputError(f"{path}: '{key}' step must be positive")
    for end in (low, high):
        _typed(path, key, int(end) if integer else float(end), defaults)
    return Param(
        key, low=float(low), high=float(high), step=None if step is None else float(step), log=log, integer=integer
    )


def _corners(space: Space, defaults: Typed):
    """Configs to check: each grid combination with every range at its low end, then at its high end."""
    for combo in space.combinations():
        for end in ("low", "high"):
            values = dict(combo)
            for p in space.params:
                values[p.key] = (
                    p.values[0 if end == "low" else -1]
                    if p.values
                    else (int(getattr(p, end)) if p.integer else getattr(p, end))
                )
            yield defaults.merged(values)
