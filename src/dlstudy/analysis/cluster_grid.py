"""The cluster study's variant grid: every reduction chain and clustering method of every encoder's
features, scored against labels where there are any and always by label-free scores, saved to the
run folder (reductions per encoder, clusterings per encoder and k) so a resumed run skips them."""

from __future__ import annotations

import re

import time
from dataclasses import dataclass

import numpy as np

from dlstudy.analysis.clustering import cluster
from dlstudy.analysis.label_free import combined, k_curve, label_free_scores
from dlstudy.analysis.metrics import clustering_scores
from dlstudy.analysis.reduction import parse_chain, reduce_chains
from dlstudy.analysis.scan import mine_neighbours
from dlstudy.errors import InputError


def slug(spec: str) -> str:
    """An encoder spec as a file name: 'dense:128' -> 'dense-128', 'timm:vit@/w/v.safetensors' -> 'timm-vit--w-v.safetensors'
    (no separator survives: the name stays below the run folder)."""
    return re.sub(r"[^\w.-]", "-", spec.replace(">", "_"))


def parse_k(value) -> tuple[int | None, list[int]]:
    """clustering.n_clusters as (a fixed k or None, the range to choose from): 7 -> (7, []);
    'auto' -> (None, 2..20); '2-6' -> (None, [2, ..., 6]); None -> (None, [])."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value, []
    text = str(value).strip().lower()
    low, _, high = ("2-20" if text == "auto" else text).partition("-")
    if low.isdigit() and high.isdigit() and 2 <= int(low) < int(high) <= 200:
        return None, list(range(int(low), int(high) + 1))
    raise InputError(
        f"--clusters must be a whole number of at least 1, 'auto' (2-20) or a range like 2-20, got {value!r}"
    )


def check_grid(cfg) -> None:
    """The reduction chains and K, before any data is read or folder made (the schema checked the rest)."""
    for chain in cfg.grid.reductions:
        parse_chain(chain)
    parse_k(cfg.clustering.n_clusters)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Trained:
    """One trained encoder, as the grid's rows and the report read it."""

    history: list[dict]
    latents: np.ndarray  # (N, D)
    errors: (
        np.ndarray | None
    )  # (N,) reconstruction MSE per pixel in [0, 1]; None for an encoder that does not reconstruct
    features: dict[str, np.ndarray]  # reduction chain -> (N, d)
    seconds: float  # its training and encoding, before any reduction
    columns: dict  # what its rows share: latent size, reconstruction error, neighbour accuracy, seconds


@dataclass
class Grid:
    run: object
    cfg: object  # the cluster study's Config
    labels: np.ndarray | None  # -1: unlabelled

    def cluster(self, features: np.ndarray, method: str, k: int) -> np.ndarray:
        c = self.cfg
        return cluster(features, method, k, seed=c.seed, n_init=c.clustering.n_init, scan=c.scan.model_dump())

    def scores(self, space: np.ndarray, clusters: np.ndarray) -> dict:
        """Label-free scores in `space` (the encoder's L2-normalised features), and the labelled ones."""
        free = label_free_scores(space, clusters, seed=self.cfg.seed)
        labelled = clustering_scores(self.labels, clusters) if self.labels is not None else {}
        return {**free, "label_free": combined(free), **labelled}

    def neighbours(self, features: np.ndarray) -> dict:
        """The share of each labelled image's mined neighbours (those labelled) that share its label."""
        if self.labels is None:
            return {}
        known = self.labels >= 0
        mined = mine_neighbours(features, self.cfg.scan.n_neighbors, rows=np.flatnonzero(known))
        theirs = self.labels[mined]
        same = (theirs == self.labels[known][:, None])[theirs >= 0]
        return {"neighbour_accuracy": float(same.mean()) if same.size else None}

    def reduce(self, spec: str, z: np.ndarray, err: np.ndarray | None, *, seconds: float) -> tuple[dict, dict]:
        """For one encoder's features z (and per-image reconstruction errors): (chain -> reduced features,
        the columns its rows share). `seconds`: its training time, shared among its rows."""
        chains = self.cfg.grid.reductions
        saved = self.run.load_arrays(f"grid/encoder-{slug(spec)}.npz")
        if saved is None:
            t0 = time.time()
            reduced = reduce_chains(
                z,
                chains,
                seed=self.cfg.seed,
                n_jobs=self.cfg.reduction.n_jobs,
                kpca_fit_samples=self.cfg.reduction.kpca_fit_samples,
            )
            saved = {f"chain_{i}": f for i, (chain, f) in enumerate(reduced.items()) if parse_chain(chain)}
            saved["reduce_seconds"] = np.array(time.time() - t0)
            saved.update({k: np.array(np.nan if v is None else v) for k, v in self.neighbours(z).items()})
            self.run.save_arrays(f"grid/encoder-{slug(spec)}.npz", **saved)
        features = {chain: saved.get(f"chain_{i}", z) for i, chain in enumerate(chains)}
        neighbours = float(saved.get("neighbour_accuracy", np.nan))
        rows = len(chains) * len(self.cfg.grid.clusterings)
        return features, {
            "latent_dim": int(z.shape[1]),
            "reconstruction_mse": None if err is None else float(err.mean()),
            "neighbour_accuracy": neighbours if np.isfinite(neighbours) else None,
            "seconds": (seconds + float(saved["reduce_seconds"])) / rows,
        }

    def evaluate(self, k: int, pixels: np.ndarray, trained: dict[str, Trained]) -> tuple[list[dict], dict]:
        """The raw-pixel baseline and every variant at k clusters: (rows, "encoder|chain|method" -> clusters)."""
        raw, raw_clusters = self.baseline(pixels, k)
        rows, assignments = [raw], {"raw pixels|none|kmeans": raw_clusters}
        for spec, t in trained.items():
            more, clusters = self.variants(spec, t.latents, t.features, k, base=t.columns)
            rows += more
            assignments.update(clusters)
        return rows, assignments

    def variants(self, spec: str, z: np.ndarray, features: dict[str, np.ndarray], k: int, *, base: dict):
        """Every (chain, method) of one encoder at k: (rows, "encoder|chain|method" -> clusters)."""
        methods = self.cfg.grid.clusterings
        saved = self.run.load_arrays(f"grid/encoder-{slug(spec)}-k{k}.npz")
        if saved is None:
            saved = {}
            for i, feats in enumerate(features.values()):
                for j, method in enumerate(methods):
                    t0 = time.time()
                    saved[f"clusters_{i}_{j}"] = self.cluster(feats, method, k)
                    saved[f"seconds_{i}_{j}"] = np.array(time.time() - t0)
            self.run.save_arrays(f"grid/encoder-{slug(spec)}-k{k}.npz", **saved)
        rows, clusters = [], {}
        space = unit(z)
        for i, (chain, feats) in enumerate(features.items()):
            for j, method in enumerate(methods):
                found = saved[f"clusters_{i}_{j}"]
                clusters[f"{spec}|{chain}|{method}"] = found
                rows.append(
                    {
                        "encoder": spec,
                        "reduction": chain,
                        "reduced_dim": int(feats.shape[1]),
                        "clustering": method,
                        **base,
                        **self.scores(space, found),
                        "seconds": round(base["seconds"] + float(saved[f"seconds_{i}_{j}"]), 1),
                    }
                )
        return rows, clusters

    def baseline(self, pixels: np.ndarray, k: int) -> tuple[dict, np.ndarray]:
        """KMeans on raw pixels, in the same run."""
        saved = self.run.load_arrays(f"grid/raw-k{k}.npz")
        if saved is None:
            t0 = time.time()
            saved = {"clusters": self.cluster(pixels, "kmeans", k), "seconds": np.array(time.time() - t0)}
            self.run.save_arrays(f"grid/raw-k{k}.npz", **saved)
        mined = self.run.load_arrays("grid/raw.npz")  # k does not change the pixels' neighbours: mined once
        if mined is None:
            mined = {k_: np.array(np.nan if v is None else v) for k_, v in self.neighbours(pixels).items()}
            self.run.save_arrays("grid/raw.npz", **mined)
        neighbours = {k_: float(v) if np.isfinite(v) else None for k_, v in mined.items()}
        row = {
            "encoder": "raw pixels",
            "latent_dim": pixels.shape[1],
            "reduction": "none",
            "reduced_dim": pixels.shape[1],
            "clustering": "kmeans",
            "reconstruction_mse": None,
            **neighbours,
            **self.scores(unit(pixels), saved["clusters"]),
            "seconds": round(float(saved["seconds"]), 1),
        }
        return row, saved["clusters"]

    def choose_k(self, features: np.ndarray, z: np.ndarray, ks: list[int]) -> tuple[int, list[dict]]:
        """KMeans on `features` for each k in `ks`, scored in the encoder's features z: the k with the best
        silhouette, and the whole curve."""
        curve = k_curve(
            features, ks, seed=self.cfg.seed, labels=self.labels, n_init=self.cfg.clustering.n_init, space=unit(z)
        )
        return max(curve, key=lambda r: r["silhouette"])["k"], curve
