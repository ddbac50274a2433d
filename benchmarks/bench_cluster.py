"""Benchmark the cluster study on the real data sets: the default grid (autoencoders) and the
contrastive one (`configs/cluster-contrastive.yaml`: SimCLR features, KMeans and SCAN, beside the
autoencoders).

Each case runs `dlstudy cluster` in its own process and records wall time and peak memory (RSS of
that process); accuracy is shown beside raw-pixel KMeans and the best autoencoder row of the same
run, as ratios.

    python benchmarks/bench_cluster.py [--data ../shared/data] [--cases mnist cifar10 cifar2] [--quick]
    python benchmarks/bench_cluster.py --cases mnist-simclr cifar10-simclr cifar2-simclr
    python benchmarks/bench_cluster.py --cases levers     # issue 38: one case per lever (LEVERS)
    python benchmarks/bench_cluster.py --cases cifar10-pretrained cifar10 --seeds 0 1 2   # issue 49

Targets (issue 20): the default grid, which includes a short SimCLR encoder, within 10 minutes on 2
cores for each CIFAR-10 case, at least 0.30 on 10 classes and 0.80 on vehicles against animals, with
raw-pixel KMeans beside it; the label-free pick (no labels used) within 0.03 of the best variant's
accuracy on both and on MNIST-5000. Contrastive road (issue 7), within 30 min each, at least 0.40 on
CIFAR-10, 0.85 vehicles against animals and 0.95 on MNIST-5000. Pretrained road (issue 49,
`configs/cluster-pretrained.yaml`: EfficientNet-Lite0's packaged ImageNet weights, frozen): at least 0.60 on CIFAR-10
within 10 minutes, encoding within 120 s (the `encode_seconds` column). Prints a table and writes
benchmarks/results/cluster.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import DATA, HERE, run_case, write_results

CIFAR2 = ["--set", "data.groups=[[0,1,8,9],[2,3,4,5,6,7]]", "--set", "data.group_names=[vehicles,animals]"]
CONTRASTIVE = ["--config", str(HERE.parent / "configs" / "cluster-contrastive.yaml")]
PRETRAINED = ["--config", str(HERE.parent / "configs" / "cluster-pretrained.yaml"), "--clusters", "10"]
DIGITS = ["--set", "contrastive.augment.flip=false"]  # a mirrored 2 is not a 2

# Issue 38's levers, one case each on CIFAR-10 (10,000 images): the self-supervised encoder alone, about five
# minutes of training each on 2 cores (epochs from each setting's measured step time, so that they compare at
# equal time), every reduction with and without L2 normalisation, KMeans and SCAN.
LEVER_GRID = [
    *("--set", "budget=null", "--set", "grid.reductions=[none, l2, l2>pca:32]"),
    *("--set", "grid.clusterings=[kmeans, scan]"),
]
BF16 = ["--set", "contrastive.train.amp=true"]
LEVERS = {
    "lever-simclr": ["--set", "grid.encoders=[simclr]", "--set", "contrastive.train.epochs=70"],  # today's encoder
    "lever-bf16": ["--set", "grid.encoders=[simclr]", *BF16, "--set", "contrastive.train.epochs=110"],
    "lever-crop32": [
        *("--set", "grid.encoders=[simclr]", *BF16, "--set", "contrastive.augment.crop_size=32"),
        *("--set", "contrastive.train.epochs=45"),
    ],
    "lever-resnet": [
        *("--set", "grid.encoders=[simclr]", *BF16, "--set", "model.simclr.backbone=resnet"),
        *("--set", "contrastive.train.epochs=42"),
    ],
    "lever-byol": ["--set", "grid.encoders=[byol]", *BF16, "--set", "contrastive.train.epochs=85"],
}


def cases(data_root: Path) -> dict[str, list[str]]:
    cifar = str(data_root / "cifar10" / "cifar10_test.npz")
    default = {"mnist": [], "cifar10": ["--data", cifar], "cifar2": ["--data", cifar, *CIFAR2]}
    return {
        **default,
        "mnist-simclr": [*CONTRASTIVE, *DIGITS],
        "cifar10-simclr": [*CONTRASTIVE, "--data", cifar],
        "cifar2-simclr": [*CONTRASTIVE, "--data", cifar, *CIFAR2],
        "cifar10-pretrained": [*PRETRAINED, "--data", cifar],
        **{name: ["--data", cifar, *LEVER_GRID, *args] for name, args in LEVERS.items()},
    }


def variants(folder: Path) -> dict:
    report = json.loads((folder / "report.json").read_text())
    grid = next(t["rows"] for t in report["tables"] if t["caption"] == "Every variant")[1:]  # after raw pixels
    return {
        "neighbour_accuracy": grid[0]["neighbour_accuracy"],
        **{f"{v['reduction']} + {v['clustering']}": round(v["accuracy"], 3) for v in grid},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--cases", nargs="+", default=["mnist", "cifar10", "cifar2"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=str(HERE / "results" / "cluster.json"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="each case once a seed; mean (sd) a case")
    opts = parser.parse_args()
    table = cases(Path(opts.data))
    opts.cases = [c for name in opts.cases for c in (LEVERS if name == "levers" else [name])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, seed in ((name, seed) for name in opts.cases for seed in opts.seeds):
            args = table[name] + (["--quick"] if opts.quick else []) + ["--seed", str(seed)]
            folder = Path(tmp) / f"{name}-{seed}"
            r = run_case("cluster", args, folder)
            rows.append(
                {
                    "case": name,
                    "seed": seed,
                    "images": r["n_images"],
                    "K": r["n_clusters"],
                    "seconds": r["seconds"],
                    "encode_seconds": max(
                        (s for e, s in (r.get("encoder_seconds") or {}).items() if e.startswith("timm:")), default=None
                    ),
                    "peak_mb": r["peak_mb"],
                    "best": f"{r['best_encoder']} + {r['best_reduction']} + {r['best_clustering']}",
                    "accuracy": r["accuracy"],
                    "private_accuracy": r["private_accuracy"],
                    "nmi": r["nmi"],
                    "ari": r["ari"],
                    "raw_kmeans_accuracy": r["raw_kmeans_accuracy"],
                    "raw_kmeans_nmi": r["raw_kmeans_nmi"],
                    "raw_kmeans_ari": r["raw_kmeans_ari"],
                    "ratio_vs_raw": round(r["accuracy"] / r["raw_kmeans_accuracy"], 3),
                    "best_autoencoder": r.get("best_autoencoder"),
                    "best_autoencoder_accuracy": r.get("best_autoencoder_accuracy"),
                    "best_autoencoder_nmi": r.get("best_autoencoder_nmi"),
                    "ratio_vs_autoencoder": (
                        round(r["accuracy"] / r["best_autoencoder_accuracy"], 3)
                        if r.get("best_autoencoder_accuracy")
                        else None
                    ),
                    "label_free_pick": r.get("label_free_pick"),
                    "label_free_pick_accuracy": r.get("label_free_pick_accuracy"),
                    "label_free_gap": (
                        round(r["accuracy"] - r["label_free_pick_accuracy"], 3)
                        if r.get("label_free_pick_accuracy") is not None
                        else None
                    ),
                }
            )
            if name in LEVERS:  # every variant of the lever's grid, and its encoder's neighbour accuracy
                rows[-1].update(variants(folder))
            print(f"{name}, seed {seed}: done in {r['seconds']} s", file=sys.stderr)
    write_results(rows, opts.json, quick=opts.quick, summary=over_seeds(rows))


def over_seeds(rows: list[dict]) -> str:
    """A line a case run with more than one seed: the mean and sample sd of its accuracy and wall time."""
    lines = []
    for case in dict.fromkeys(r["case"] for r in rows):
        runs = [r for r in rows if r["case"] == case]
        if len(runs) > 1:
            acc, sec = np.array([r["accuracy"] for r in runs]), np.array([r["seconds"] for r in runs])
            lines.append(
                f"{case}: accuracy {acc.mean():.3f} (sd {acc.std(ddof=1):.3f}) over seeds "
                f"{[r['seed'] for r in runs]}, {sec.mean():.0f} s a run (longest {sec.max():.0f} s)"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
