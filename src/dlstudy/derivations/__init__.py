"""Hand derivations computed step by step in NumPy (float64) and checked against PyTorch autograd.

Each module has `Params` (its config section's schema) and `derive(params, seed) -> Derivation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def rel_error(ours, reference) -> float:
    """max |ours - reference| / max |reference| (absolute where the reference is all zeros)."""
    a, b = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    return diff / scale if scale > 0 else diff


@dataclass
class Check:
    name: str
    error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.error) and self.error <= self.tolerance)

    def row(self) -> dict:
        return {
            "check": self.name,
            "relative error": self.error,
            "tolerance": self.tolerance,
            "verdict": "pass" if self.passed else "FAIL",
        }


@dataclass
class Derivation:
    name: str
    title: str
    steps: list[str] = field(default_factory=list)  # the working, as a student would write it
    tables: list[tuple[str, list[dict]]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    results: dict = field(default_factory=dict)  # machine-readable answers for --json
    answer: str = ""  # the question's answer in words, every number from the working above

    def step(self, text: str) -> None:
        self.steps.append(text)

    def check(self, name: str, ours, reference, tolerance: float = 1e-10) -> Check:
        c = Check(name, rel_error(ours, reference), tolerance)
        self.checks.append(c)
        return c

    def require(self, name: str, ok: bool) -> Check:
        """A check that is a statement, not a comparison: error 0 when true, 1 when false."""
        c = Check(name, 0.0 if ok else 1.0, 0.0)
        self.checks.append(c)
        return c

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def agreement(self) -> str:
        """How the working compares with autograd, in words: for the end of an answer."""
        worst = max((c.error for c in self.checks), default=0.0)
        if self.passed:
            return f"all {len(self.checks)} checks against PyTorch pass (largest relative error {worst:.1e})"
        return f"{sum(not c.passed for c in self.checks)} of {len(self.checks)} checks against PyTorch FAIL"

    def verdict(self) -> str:
        worst = max((c.error for c in self.checks), default=0.0)
        failed = [c.name for c in self.checks if not c.passed]
        if failed:
            return f"{self.name}: FAIL ({len(failed)} of {len(self.checks)} checks: {', '.join(failed)})"
        return f"{self.name}: pass ({len(self.checks)} checks, largest relative error {worst:.1e})"


def fmt(a, digits: int = 4) -> str:
    """A compact, readable rendering of a scalar, vector or matrix."""
    a = np.asarray(a, np.float64)
    return np.array2string(a, precision=digits, suppress_small=True, max_line_width=100)
