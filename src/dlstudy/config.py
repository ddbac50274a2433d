"""Nested-dict configs: study defaults < --quick < --config FILE.yaml < --set key=value < flags.

Every key a user gives must exist in the defaults (a typo is an error, not a silent no-op), and a
value must have the default's type. The resolved config is saved with every run.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

import yaml

from dlstudy.errors import InputError


# the keys every training study shares (derive trains nothing and has only seed and quick)
TRAINING_RUN = {"seed": 0, "device": "auto", "quick": False, "tensorboard": False}


def _coerce(value: Any, default: Any, key: str) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float):
        # PyYAML reads "1e-3" as a string (YAML 1.1), so accept anything float() takes.
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, list):
        if isinstance(value, list):
            return value
    elif isinstance(default, dict):
        if isinstance(value, dict):
            return value
    raise InputError(
        f"config key '{key}' must be {type(default).__name__} like {default!r}, got {value!r}"
    )


def merge(base: dict, override: dict, prefix: str = "") -> dict:
    """Return base updated by override; keys must already exist in base."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        full = f"{prefix}{key}"
        if key not in out:
            known = ", ".join(sorted(out)) or "none"
            raise InputError(f"unknown config key '{full}' (known here: {known})")
        if isinstance(out[key], dict) and out[key] and isinstance(value, dict):
            out[key] = merge(out[key], value, prefix=f"{full}.")
        else:
            out[key] = _coerce(value, out[key], full)
    return out


def parse_set(item: str) -> dict:
    """'train.lr=1e-3' -> {'train': {'lr': 0.001}}; the value is read as YAML."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise InputError(f"--set expects key=value, got '{item}'")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise InputError(f"--set {item}: the value is not valid YAML ({exc.problem})") from None
    nested: dict = value
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"config file {path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def resolve(
    defaults: dict,
    *,
    quick: dict | None = None,
    file: str | Path | None = None,
    sets: Iterable[str] = (),
    flags: dict | None = None,
) -> dict:
    cfg = copy.deepcopy(defaults)
    if quick:
        cfg = merge(cfg, quick)
    if file:
        cfg = merge(cfg, load_yaml(file))
    for item in sets:
        cfg = merge(cfg, parse_set(item))
    if flags:
        cfg = merge(cfg, flags)
    return cfg


def dump_yaml(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)


def flatten(cfg: dict, prefix: str = "") -> dict:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}: the dotted keys of --set."""
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """The first dotted key where two configs differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            diff = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if diff:
                return diff
        return None
    return None if a == b else prefix.rstrip(".")
