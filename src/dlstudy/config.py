"""Nested-dict configs: study defaults < --quick < --config FILE.yaml < --set key=value < flags.

Every key a user gives must exist in the defaults (a typo is an error, not a silent no-op), a value
must have the default's type, and a number must lie in its key's range (RANGES). YAML input is
bounded: an alias bomb is refused before it expands. The resolved config is saved with every run.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from dlstudy.errors import InputError

# the keys every training study shares (derive trains nothing and has only seed and quick)
TRAINING_RUN = {"seed": 0, "device": "auto", "quick": False, "tensorboard": False}

MAX_YAML_BYTES = 2**20
MAX_NODES = 10_000  # values in one YAML document once aliases are expanded; configs hold a few hundred

# Ranges by full dotted key, else by the last part of a key: (low, high, low is allowed, high is allowed).
# None as a value is left to the study (it means "not set"). A study's RANGES add or override by full key.
INF = float("inf")
RANGES = {
    "seed": (0, 2**32 - 1, True, True),  # what every generator takes (numpy's, Optuna's samplers)
    "epochs": (1, 100_000, True, True), "warmup_epochs": (0, 100_000, True, True),
    "self_label_epochs": (0, 100_000, True, True), "patience": (1, 100_000, True, True),
    "batch_size": (1, 10**7, True, True), "max_steps_per_epoch": (1, 10**7, True, True),
    "lr": (0, 100, False, True), "weight_decay": (0, 10, True, True), "temperature": (0, 100, False, True),
    "limit": (0, 10**9, True, True), "test_fraction": (0, 1, False, False), "val_fraction": (0, 1, False, False),
    "dropout": (0, 1, True, False), "conv_dropout": (0, 1, True, False), "label_smoothing": (0, 1, True, False),
    "grayscale": (0, 1, True, True), "jitter": (0, 10, True, True), "hue": (0, 0.5, True, True),
    "shift": (0, 1, True, False), "rotate": (0, 180, True, True), "erase": (0, 1, True, True), "sigma": (0, INF, False, False),
    "beta": (0, INF, True, False), "entropy_weight": (0, INF, True, False), "negative_slope": (0, 1, True, True),
    "self_label_threshold": (0, 1, True, True), "threshold": (-1, 1, True, True), "min_cases": (0, INF, True, False),
    "n_clusters": (2, 100_000, True, True), "image_size": (4, 4096, True, True), "data.channels": (1, 3, True, True),
    "crop_size": (0, 4096, True, True), "n_jobs": (-1, 1024, True, True), "layer": (-1000, 1000, True, True),
    "example": (0, 10**9, True, True),
    **{k: (1, 10**9, True, True) for k in (
        "hidden_size", "num_layers", "latent_dim", "projection_dim", "hidden", "n_heads", "n_neighbors", "n_init",
        "subset", "kpca_fit_samples", "map_points", "neighbour_rows", "per_class", "samples", "filters", "steps",
        "mistakes", "n", "posterior_samples", "random_checks", "random_projections", "out_channels", "channels",
        "convs")},
}


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
            raise InputError(f"{source}: more than {limit:,} values once YAML aliases are expanded; "
                             "write the values out instead of nesting aliases")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return value


def _coerce(value: Any, default: Any, key: str) -> Any:
    if default is None:  # an optional key: None, or a value the study checks
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
    raise InputError(f"config key '{key}' must be {type(default).__name__} like {short(default)}, got {short(value)}")


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
        raise InputError(f"--set {short(item)}: the value is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    bounded(value, source=f"--set {key.strip()[:60]}")
    nested: dict = value
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as f:  # read with a bound: configs and space files are a few kilobytes
            raw = f.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            raise InputError(f"config file {path} is over {MAX_YAML_BYTES // 2**20} MiB; a config is a few kilobytes")
        data = yaml.safe_load(raw.decode("utf-8"))
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


def check_ranges(cfg: dict, extra: dict | None = None) -> None:
    """Every number (and every number in a list) inside its key's range; the message names the key."""
    rules = dict(extra or {})
    for key, value in flatten(cfg).items():
        rule = rules.get(key) or RANGES.get(key) or RANGES.get(key.rsplit(".", 1)[-1])
        values = value if isinstance(value, list) else [value]
        for v in values:
            if rule is None or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            low, high, low_ok, high_ok = rule
            inside = (low < v or (low_ok and v == low)) and (v < high or (high_ok and v == high))
            if not inside or v != v:
                span = f"{'[' if low_ok else '('}{low:g}, {high:g}{']' if high_ok else ')'}"
                raise InputError(f"config key '{key}' must lie in {span}, got {short(v)}")


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
