"""Benchmark the classify study on the real FER2013 copy (Training to learn, PublicTest to score).

Each case runs `dlstudy classify` in its own process (benchmarks/common.run_case) and records
wall time and peak memory; accuracy is shown beside the majority-class baseline of the same run.

    python benchmarks/bench_classify.py [--data ../shared/data] [--cases quick default] [--device cpu] [--keep DIR]

Targets (issue 19, on the sharp FER2013 copy): the default CPU config at least 0.68 public accuracy
within 60 minutes on 2 cores, --quick at least 0.58 within 6 minutes; the gains of flip and ten-crop
test-time averaging are reported separately (the headline is without them). The default is made for
2 cores with AMX; `--cases avx512` runs configs/classify-avx512-bf16.yaml, for cores with AVX512-BF16
but no AMX, and `--cases float32` configs/classify-float32.yaml, for cores that train in float32 (AVX2
only). The JSON records which kind of CPU ran it.
Prints a table and writes benchmarks/results/classify.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from common import DATA, HERE, run_case, write_results

from dlstudy.analysis.classification import TTA_VIEWS
from dlstudy.train import amx, bf16_native


def tta_columns(r: dict) -> dict:
    """Public accuracy with each test-time averaging, and its gain over the plain score."""
    cols = {}
    for views in TTA_VIEWS:
        acc = r.get(f"public_accuracy_{views}_tta")
        cols[f"{views}_tta"] = acc
        cols[f"{views}_tta_gain"] = None if acc is None else round(acc - r["public_accuracy"], 4)
    return cols


# avx512: the narrower net (widths 32-64-128-256) for cores with AVX512-BF16 but no AMX; float32: that net with
# one conv less on the full-size map and 23 epochs, for cores without AVX512-BF16
CASES = {
    "quick": ["--quick"],
    "default": [],
    "avx512": ["--config", str(HERE.parent / "configs" / "classify-avx512-bf16.yaml")],
    "float32": ["--config", str(HERE.parent / "configs" / "classify-float32.yaml")],
    "gpu": ["--config", str(HERE.parent / "configs" / "classify-gpu.yaml")],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--cases", nargs="+", default=["quick", "default"], choices=list(CASES))
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--json", default=str(HERE / "results" / "classify.json"))
    parser.add_argument("--keep", metavar="DIR", help="keep the run folders (report, log, history) under DIR")
    opts = parser.parse_args()
    fer = str(Path(opts.data) / "fer2013" / "fer2013.npz")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in opts.cases:
            out = Path(opts.keep or tmp) / name
            r = run_case("classify", ["--data", fer, "--device", opts.device, *CASES[name]], out)
            rows.append(
                {
                    "case": name,
                    "epochs": r["epochs"],
                    "parameters": r["parameters"],
                    "seconds": r["seconds"],
                    "minutes": round(r["seconds"] / 60, 1),
                    "peak_mb": r["peak_mb"],
                    "public_accuracy": r["public_accuracy"],
                    "val_accuracy": r["val_accuracy"],
                    "train_accuracy": r["train_accuracy"],
                    "macro_f1": r["macro_f1"],
                    "majority_class_accuracy": r["majority_class_accuracy"],
                    "ratio_vs_majority": round(r["public_accuracy"] / r["majority_class_accuracy"], 2),
                    **tta_columns(r),
                    "public_blur_sigma": r["blur_sigma"].get("public"),
                }
            )
            print(f"{name}: done in {r['seconds']} s", file=sys.stderr)
    cpu = torch.device("cpu")  # which of the three kinds of CPU: the same config's time differs up to 4x among them
    write_results(rows, opts.json, device=opts.device, cpu_bf16=bf16_native(cpu), cpu_amx=amx(cpu))


if __name__ == "__main__":
    main()
