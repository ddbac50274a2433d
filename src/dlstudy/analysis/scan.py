"""SCAN-style clustering (Van Gansbeke et al. 2020, "Learning to classify images without labels") on
fixed features, with scikit-learn's interface so it sits beside KMeans in the cluster study.

1. Mine each image's k nearest neighbours by cosine similarity of its features.
2. Train clustering heads (features -> K softmax) so that an image and a random one of its neighbours
   get the same cluster: loss = -log <p_i, p_j> - entropy_weight * H(mean p). The entropy term
   keeps clusters from emptying. Several heads train at once; the one with the lowest loss is kept.
3. Optional self-labelling (self_label_epochs > 0): images the kept head is confident about (max p >
   threshold) become labels, and the head is trained on them with cross-entropy weighted against class
   imbalance. Without the paper's strong augmentations it has little to learn from; off by default.

Unlike the paper the backbone stays frozen (its features come from the study's encoder); that keeps
the step to seconds on a CPU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlstudy.train import Trainer


def mine_neighbours(features: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """(N, D) -> (len(rows), k) indices of the k nearest other rows by cosine similarity, nearest first,
    for the given rows (default: all N)."""
    from sklearn.neighbors import NearestNeighbors

    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    rows = np.arange(len(features)) if rows is None else np.asarray(rows)
    k = min(k, len(features) - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(unit).kneighbors(unit[rows])
    # the nearest is normally the row itself, but duplicates can swap places with it
    own = idx == rows[:, None]
    own[own.sum(1) == 0, -1] = True  # rows whose self fell off the list drop their farthest neighbour
    return idx[~own].reshape(len(rows), k)


class ClusteringHeads(nn.Module):
    def __init__(self, *, in_dim: int, n_clusters: int, n_heads: int = 5, hidden: int = 0):
        super().__init__()
        self.n_clusters, self.n_heads = n_clusters, n_heads
        layers = [nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU()] if hidden else []
        self.net = nn.Sequential(*layers, nn.Linear(hidden or in_dim, n_clusters * n_heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(len(x), self.n_heads, self.n_clusters)  # (B, heads, K) logits


def scan_loss(logits: torch.Tensor, neighbour_logits: torch.Tensor, entropy_weight: float):
    """(B, heads, K) logits of images and of one neighbour each -> per-head loss, consistency and entropy
    of the mean prediction, each (heads,)."""
    p, q = logits.softmax(-1), neighbour_logits.softmax(-1)
    consistency = -torch.log((p * q).sum(-1).clamp_min(1e-8)).mean(0)
    mean_p = p.mean(0).clamp_min(1e-8)  # (heads, K)
    entropy = -(mean_p * mean_p.log()).sum(-1)
    return consistency - entropy_weight * entropy, consistency, entropy


class SCAN:
    """fit(features) -> self; labels_ (N,), neighbours_ (N, k), head_ (the kept head's index),
    confident_ (share of images above the self-labelling threshold)."""

    def __init__(
        self,
        n_clusters: int,
        *,
        n_neighbors: int = 20,
        entropy_weight: float = 5.0,
        n_heads: int = 5,
        hidden: int = 512,
        epochs: int = 30,
        batch_size: int = 256,
        lr: float = 1e-2,
        self_label_threshold: float = 0.99,
        self_label_epochs: int = 0,
        seed: int = 0,
    ):
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.entropy_weight = entropy_weight
        self.n_heads = n_heads
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.self_label_threshold = self_label_threshold
        self.self_label_epochs = self_label_epochs
        self.seed = seed

    def fit(self, features: np.ndarray) -> SCAN:
        torch.manual_seed(self.seed)
        self.neighbours_ = mine_neighbours(features, self.n_neighbors)
        x = F.normalize(torch.as_tensor(features, dtype=torch.float32), dim=1)  # (N, D)
        nbrs = torch.as_tensor(self.neighbours_)
        pick = torch.Generator().manual_seed(self.seed)
        heads = ClusteringHeads(in_dim=x.shape[1], n_clusters=self.n_clusters, n_heads=self.n_heads, hidden=self.hidden)

        def neighbour_loss(model, batch):
            xb, nb = batch  # (B, D) features and (B, k) neighbour indices
            j = nb[torch.arange(len(nb)), torch.randint(nb.shape[1], (len(nb),), generator=pick)]
            per_head, consistency, entropy = scan_loss(model(xb), model(x[j]), self.entropy_weight)
            return per_head.sum(), {"consistency": consistency.min(), "entropy": entropy.max()}

        train = dict(
            batch_size=self.batch_size, lr=self.lr, optimizer="adam", weight_decay=1e-4, seed=self.seed, verbose=False
        )  # a few seconds a fit, many fits a run: epoch lines only at DEBUG
        Trainer(heads, neighbour_loss, epochs=self.epochs, name="scan", **train).fit((x, nbrs))
        with torch.no_grad():
            heads.eval()
            logits = heads(x)  # (N, heads, K)
            per_head, _, _ = scan_loss(logits, logits[nbrs[:, 0]], self.entropy_weight)
        self.head_ = int(per_head.argmin())
        probs = logits[:, self.head_].softmax(-1)

        if self.self_label_epochs:
            probs = self._self_label(heads, x, probs, train)
        self.confident_ = float((probs.max(1).values > self.self_label_threshold).float().mean())
        self.labels_ = probs.argmax(1).numpy().astype(np.int64)
        return self

    def _self_label(self, heads: ClusteringHeads, x: torch.Tensor, probs: torch.Tensor, train: dict) -> torch.Tensor:
        """Cross-entropy on the confident images' own predictions, classes weighted by their inverse share."""
        confident = probs.max(1).values > self.self_label_threshold
        if confident.sum() < self.n_clusters:
            return probs  # too few to learn from
        target = probs.argmax(1)
        counts = torch.bincount(target[confident], minlength=self.n_clusters).float()
        weight = torch.where(counts > 0, counts.sum() / (self.n_clusters * counts.clamp_min(1)), 0.0)
        head = self.head_

        def self_label_loss(model, batch):
            xb, yb = batch
            return F.cross_entropy(model(xb)[:, head], yb, weight=weight), {}

        Trainer(heads, self_label_loss, epochs=self.self_label_epochs, name="scan-self-label", **train).fit(
            (x[confident], target[confident])
        )
        with torch.no_grad():
            return heads(x)[:, head].softmax(-1)

    def fit_predict(self, features: np.ndarray) -> np.ndarray:
        return self.fit(features).labels_
