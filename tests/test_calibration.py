"""The calibration benchmark's cases at fewer draws (benchmarks/bench_calibration.py; issue 46): the project's own
intervals cover known truths and its decision words stay quiet under a true null. Fixed seeds, so each rate is
the same on every run; the bounds are the benchmark's targets widened by the noise of 60 draws."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_calibration import rate, window_rates  # noqa: E402

FAST = [
    "trend-days",
    "better-days",
    "accuracy",
    "balanced-accuracy",
    "mean-nats",
    "seeds-mean",
    "seeds-next",
    "better-images",
    "overfits",
    "reduction",
    "collapses",
    "family-10",
]


@pytest.mark.parametrize("case", FAST)
def test_intervals_cover_and_words_stay_quiet_under_a_null(case):
    row = rate(case, reps=60)
    if row["kind"] == "coverage":
        assert row["rate"] >= 0.88, row
    else:
        assert row["rate"] <= 0.10, row


def test_no_signal_windows_after_holm():
    holm = next(r for r in window_rates(60) if r["case"] == "signal-holm")
    assert holm["rate"] <= 0.10, holm
