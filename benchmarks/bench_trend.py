"""Benchmark the trend study's default grid (RNN / LSTM / GRU x 8 window lengths x 2 splits) on the
real COVID-19 files: wall time, peak memory, and the selected model against the majority-class and
logistic-regression baselines measured in the same run, on the honest (time) split.

    python benchmarks/bench_trend.py [--data ../shared/data] [--cases course jhu]

Targets (issue 3): covid_19.csv in at most 180 s, the 2020 JHU file in at most 600 s, on 2 CPU cores.
Prints a table and writes benchmarks/results/trend.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import DATA, HERE, run_case, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--cases", nargs="+", default=["course", "jhu"])
    parser.add_argument("--json", default=str(HERE / "results" / "trend.json"))
    opts = parser.parse_args()
    files = {"course": "covid/covid_19.csv", "jhu": "covid/time_series_covid19_confirmed_global.csv"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in opts.cases:
            r = run_case("trend", ["--data", str(Path(opts.data) / files[name])], Path(tmp) / name)
            best_baseline = max(r["majority_baseline_accuracy"], r["logistic_baseline_accuracy"])
            rows.append(
                {
                    "case": name,
                    "countries": r["n_countries"],
                    "days": r["n_days"],
                    "windows": r["n_windows"],
                    "seconds": r["seconds"],
                    "peak_mb": r["peak_mb"],
                    "best": f"{r['best_model']} L={r['best_window']}",
                    "test_accuracy": r["test_accuracy"],
                    "test_balanced_accuracy": r["test_balanced_accuracy"],
                    "test_roc_auc": r["test_roc_auc"],
                    "majority": r["majority_baseline_accuracy"],
                    "logistic": r["logistic_baseline_accuracy"],
                    "accuracy_ratio_vs_best_baseline": round(r["test_accuracy"] / best_baseline, 3),
                    "random_split_accuracy": r["random_split_test_accuracy"],
                }
            )
            print(f"{name}: done in {r['seconds']} s", file=sys.stderr)
    write_results(rows, opts.json)


if __name__ == "__main__":
    main()
