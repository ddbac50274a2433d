"""Benchmark time budgets (issue 37): does each run end within its --budget, and what did it plan?

    python benchmarks/bench_budget.py [--data ../shared/data] [--cases tour classify-6m cluster-4m] [--keep DIR]

Cases: `tour` is `dlstudy run all --budget 5m` (every study on its offline data, the time shared between them);
`classify-6m` is `classify --budget 6m` on FER2013 (PublicTest scored); `cluster-4m` is `cluster --budget 4m` on the
10,000 CIFAR-10 test images; `classify-60m` is the classify default (its own 60-minute budget) on FER2013.
Targets: each run within its budget plus 5 % (or one epoch, whichever is more); the report included.
Prints a table and writes benchmarks/results/budget.json, with the CPU kind that ran it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import DATA, HERE, run_case, write_results

from dlstudy.train import amx, bf16_native

CASES = {  # name -> (study, flags given the data folder, the metric shown, the budget in seconds)
    "classify-6m": (
        "classify",
        lambda d: ["--data", f"{d}/fer2013/fer2013.npz", "--budget", "6m"],
        "public_accuracy",
        360,
    ),
    "cluster-4m": ("cluster", lambda d: ["--data", f"{d}/cifar10/cifar10_test.npz", "--budget", "4m"], "accuracy", 240),
    "classify-60m": ("classify", lambda d: ["--data", f"{d}/fer2013/fer2013.npz"], "public_accuracy", 3600),
}


def planned(metrics: dict) -> dict:
    """What the run planned: its rung, and per training the epochs planned and trained and the measured step."""
    plans = metrics.get("plan") or {}
    return {
        "rung": metrics.get("rung"),
        "epochs": "; ".join(f"{n} {p['epochs']}/{p['ceiling']}" for n, p in plans.items()),
        "s_per_step": "; ".join(f"{p['seconds_per_step']:.3g}" for p in plans.values()),
        "replans": sum(len(p["replans"]) for p in plans.values()),
    }


def slack(seconds: float, budget: float, metrics_list: list[dict]) -> bool:
    """Within the budget plus 5 %, or plus the longest epoch of the run, whichever is more."""
    epoch = max((p["epoch_seconds"] for m in metrics_list for p in (m.get("plan") or {}).values()), default=0.0)
    return seconds <= budget + max(0.05 * budget, epoch)


def tour(out: Path) -> dict:
    """`dlstudy run all --budget 5m` in its own process: wall seconds and each study's plan."""
    start = time.time()
    subprocess.run(
        [sys.executable, "-m", "dlstudy", "-q", "run", "all", "--budget", "5m", "--out", str(out)], check=True
    )
    seconds = round(time.time() - start, 1)
    studies = {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/metrics.json"))}
    return {
        "case": "tour",
        "budget_s": 300,
        "seconds": seconds,
        "used": round(seconds / 300, 3),
        "within": slack(seconds, 300, list(studies.values())),
        "rung": None,
        "epochs": "; ".join(f"{s} {m.get('planned_epochs')}" for s, m in studies.items() if m.get("plan")),
        "s_per_step": "",
        "replans": sum(len(p["replans"]) for m in studies.values() for p in (m.get("plan") or {}).values()),
        "metric": "; ".join(f"{s} {m.get('budget_seconds')} s" for s, m in studies.items() if m.get("budget_seconds")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--cases", nargs="+", default=["tour", "classify-6m", "cluster-4m"], choices=["tour", *CASES])
    parser.add_argument("--json", default=str(HERE / "results" / "budget.json"))
    parser.add_argument("--keep", metavar="DIR", help="keep the run folders under DIR")
    opts = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in opts.cases:
            out = Path(opts.keep or tmp) / name
            if name == "tour":
                rows.append(tour(out))
            else:
                study, flags, metric, budget = CASES[name]
                r = run_case(study, flags(opts.data), out)
                rows.append(
                    {
                        "case": name,
                        "budget_s": budget,
                        "seconds": r["seconds"],
                        "used": round(r["seconds"] / budget, 3),
                        "within": slack(r["seconds"], budget, [r]),
                        **planned(r),
                        "metric": f"{metric} {r[metric]:.3f}",
                    }
                )
            print(f"{name}: done in {rows[-1]['seconds']} s", file=sys.stderr)
    cpu = torch.device("cpu")  # the kind of CPU: the same budget buys up to 4x more steps on one than another
    write_results(rows, opts.json, cpu_bf16=bf16_native(cpu), cpu_amx=amx(cpu))


if __name__ == "__main__":
    main()
