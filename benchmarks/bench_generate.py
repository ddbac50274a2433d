"""Benchmark the generate study's default grid (MLP and conv VAE x beta 0, 1, 100) on the real faces.

The study runs in its own process (benchmarks/common.run_case) for wall time and peak memory;
the table has one row per variant, with the conv VAE's test negative ELBO as a ratio of the MLP
VAE's at the same beta (both measured in the same run).

    python benchmarks/bench_generate.py [--data ../shared/data] [--quick] [--device cpu]

Targets (issue 5): the default study on the 8,000 faces at 32x32 within 20 minutes on 2 CPU cores;
conv below MLP at beta 1; active units collapse at beta 100, KL grows at beta 0.
Prints a table and writes benchmarks/results/generate.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import DATA, HERE, run_case, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--json", default=str(HERE / "results" / "generate.json"))
    opts = parser.parse_args()
    args = ["--data", str(Path(opts.data) / "faces" / "faces"), "--device", opts.device] + (
        ["--quick"] if opts.quick else []
    )
    with tempfile.TemporaryDirectory() as tmp:
        r = run_case("generate", args, Path(tmp) / "faces")
    mlp = {v["beta"]: v["test_neg_elbo"] for v in r["grid"] if v["model"] == "mlp"}
    rows = [
        {
            **{
                k: v[k]
                for k in (
                    "model",
                    "beta",
                    "epochs",
                    "parameters",
                    "train_neg_elbo",
                    "test_neg_elbo",
                    "test_reconstruction",
                    "test_kl",
                    "active_units",
                    "seconds",
                )
            },
            "ratio_vs_mlp": round(v["test_neg_elbo"] / mlp[v["beta"]], 3) if v["beta"] in mlp else None,
        }
        for v in r["grid"]
    ]
    summary = (
        f"whole study: {r['seconds']} s ({r['seconds'] / 60:.1f} min), peak {r['peak_mb']} MB, "
        f"{r['n_train']} train / {r['n_test']} test images at {r['image_size']}x{r['image_size']}"
    )
    write_results(
        rows,
        opts.json,
        summary=summary,
        device=opts.device,
        quick=opts.quick,
        seconds=r["seconds"],
        peak_mb=r["peak_mb"],
    )


if __name__ == "__main__":
    main()
