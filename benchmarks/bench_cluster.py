"""Benchmark the cluster study's default run on the real data sets.

Each case runs `dlstudy cluster` in its own process and records wall time and peak memory (RSS of
that process); accuracy is shown beside raw-pixel KMeans measured in the same run, as a ratio.

    python benchmarks/bench_cluster.py [--data ../shared/data] [--cases mnist cifar10 cifar2] [--quick]

Targets (issue 2): CIFAR-10 (10,000 images) in at most 300 s and 4 GB; the best variant beats raw
KMeans clearly; at least 0.85 on MNIST-5000. Prints a table and writes benchmarks/results/cluster.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CIFAR2 = ["--set", "data.groups=[[0,1,8,9],[2,3,4,5,6,7]]", "--set", "data.group_names=[vehicles,animals]"]


def cases(data_root: Path) -> dict[str, list[str]]:
    cifar = str(data_root / "cifar10" / "cifar10_test.npz")
    return {"mnist": [], "cifar10": ["--data", cifar], "cifar2": ["--data", cifar, *CIFAR2]}


def run_case(study: str, args: list[str], out: Path) -> dict:
    """Run one study in its own process; its metrics plus wall seconds and peak RSS of that process."""
    cmd = [sys.executable, "-m", "dlstudy", "-q", study, "--out", str(out), *args]
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.time() - start
    if status != 0:
        raise SystemExit(f"benchmark case failed (exit status {status}): {' '.join(cmd)}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"seconds": round(seconds, 1), "peak_mb": round(usage.ru_maxrss / 1024), **metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("DLSTUDY_DATA", str(HERE.parent.parent / "shared" / "data")))
    parser.add_argument("--cases", nargs="+", default=["mnist", "cifar10", "cifar2"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=str(HERE / "results" / "cluster.json"))
    opts = parser.parse_args()
    table = cases(Path(opts.data))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in opts.cases:
            args = table[name] + (["--quick"] if opts.quick else [])
            r = run_case("cluster", args, Path(tmp) / name)
            rows.append({
                "case": name, "images": r["n_images"], "K": r["n_clusters"], "seconds": r["seconds"], "peak_mb": r["peak_mb"],
                "best": f"{r['best_autoencoder']} + {r['best_reduction']}", "accuracy": r["accuracy"],
                "private_accuracy": r["private_accuracy"], "raw_kmeans_accuracy": r["raw_kmeans_accuracy"],
                "accuracy_ratio_vs_raw": round(r["accuracy"] / r["raw_kmeans_accuracy"], 3),
                "nmi": r["nmi"], "raw_kmeans_nmi": r["raw_kmeans_nmi"], "reconstruction_mse": r["reconstruction_mse"],
            })
            print(f"{name}: done in {r['seconds']} s", file=sys.stderr)
    from dlstudy.report import text_table

    print(text_table(rows))
    Path(opts.json).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.json).write_text(json.dumps({"cpu_count": os.cpu_count(), "quick": opts.quick, "rows": rows}, indent=2))
    print(f"wrote {opts.json}")


if __name__ == "__main__":
    main()
