"""The cluster study's variant grid for one set of features: every reduction chain and clustering
method, scored against labels where there are any, saved per encoder so a resumed run skips them."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dlstudy.analysis.clustering import cluster
from dlstudy.analysis.metrics import clustering_scores
from dlstudy.analysis.reduction import reduce_chains
from dlstudy.analysis.scan import mine_neighbours


def slug(spec: str) -> str:
    """An encoder spec as a file name: 'dense:128' -> 'dense-128'."""
    return spec.replace(":", "-").replace(">", "_")


@dataclass
class Grid:
    """Reductions and clusterings of one encoder's features, saved per encoder so a resume skips them."""

    run: object
    cfg: dict
    labels: np.ndarray | None
    k: int

    def cluster(self, features: np.ndarray, method: str) -> np.ndarray:
        c = self.cfg
        return cluster(features, method, self.k, seed=c["seed"], n_init=c["clustering"]["n_init"], scan=c["scan"])

    def scores(self, clusters: np.ndarray) -> dict:
        return clustering_scores(self.labels, clusters) if self.labels is not None else {}

    def neighbours(self, features: np.ndarray) -> dict:
        if self.labels is None:
            return {}
        mined = mine_neighbours(features, self.cfg["scan"]["n_neighbors"])
        return {"neighbour_accuracy": np.array(np.mean(self.labels[mined] == self.labels[:, None]))}

    def baseline(self, pixels: np.ndarray) -> tuple[list[dict], dict]:
        """KMeans on raw pixels, in the same run."""
        raw = self.run.load_arrays("grid/raw.npz")
        if raw is None:
            t0 = time.time()
            raw = {"clusters": self.cluster(pixels, "kmeans"), **self.neighbours(pixels)}
            raw["seconds"] = np.array(time.time() - t0)
            self.run.save_arrays("grid/raw.npz", **raw)
        row = {"encoder": "raw pixels", "latent_dim": pixels.shape[1], "reduction": "none", "reduced_dim": pixels.shape[1],
               "clustering": "kmeans", "reconstruction_mse": None, **floats(raw, "neighbour_accuracy"),
               **self.scores(raw["clusters"]), "seconds": round(float(raw["seconds"]), 1)}
        return [row], {"raw pixels|none|kmeans": raw["clusters"]}

    def variants(self, spec: str, z: np.ndarray, err: np.ndarray | None, *, train_seconds: float):
        g = self.cfg["grid"]
        saved = self.run.load_arrays(f"grid/encoder-{slug(spec)}.npz")
        if saved is None:
            t0 = time.time()
            reduced = reduce_chains(z, g["reductions"], seed=self.cfg["seed"], n_jobs=self.cfg["reduction"]["n_jobs"],
                                    kpca_fit_samples=self.cfg["reduction"]["kpca_fit_samples"])
            saved = {"reduce_seconds": np.array(time.time() - t0), **self.neighbours(z)}
            for i, feats in enumerate(reduced.values()):
                saved[f"dim_{i}"] = np.array(feats.shape[1])
                if feats.shape[1] == 2:
                    saved[f"map_{i}"] = feats
                for j, method in enumerate(g["clusterings"]):
                    t0 = time.time()
                    saved[f"clusters_{i}_{j}"] = self.cluster(feats, method)
                    saved[f"seconds_{i}_{j}"] = np.array(time.time() - t0)
            self.run.save_arrays(f"grid/encoder-{slug(spec)}.npz", **saved)
        rows, clusters = [], {}
        shared = (train_seconds + float(saved["reduce_seconds"])) / (len(g["reductions"]) * len(g["clusterings"]))
        for i, chain in enumerate(g["reductions"]):
            for j, method in enumerate(g["clusterings"]):
                clusters[f"{spec}|{chain}|{method}"] = saved[f"clusters_{i}_{j}"]
                rows.append({"encoder": spec, "latent_dim": int(z.shape[1]), "reduction": chain,
                             "reduced_dim": int(saved[f"dim_{i}"]), "clustering": method,
                             "reconstruction_mse": None if err is None else float(err.mean()),
                             **floats(saved, "neighbour_accuracy"), **self.scores(saved[f"clusters_{i}_{j}"]),
                             "seconds": round(shared + float(saved[f"seconds_{i}_{j}"]), 1)})
        maps = {f"{spec}|{chain}": saved[f"map_{i}"] for i, chain in enumerate(g["reductions"]) if f"map_{i}" in saved}
        return rows, clusters, maps


def floats(saved: dict, *keys: str) -> dict:
    return {k: float(saved[k]) for k in keys if k in saved}
