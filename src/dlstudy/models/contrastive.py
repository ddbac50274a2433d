"""SimCLR (Chen et al. 2020) for small images: a convnet encoder whose globally pooled features are
what the cluster study clusters, a small projection head that only the contrastive loss sees, and
the NT-Xent loss over two augmented views of every image in a batch.

The head is thrown away after training because the layer before it keeps more of what the
augmentations do not control (the paper's finding); the features are L2-normalised downstream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ContrastiveEncoder(nn.Module):
    reconstructs = False  # no decoder: features only
    trains = True  # trained on the images it encodes

    def __init__(self, *, in_channels: int, channels: tuple[int, ...] = (32, 64, 128, 256), projection_dim: int = 64):
        super().__init__()
        assert len(channels) >= 1, "need at least one conv block"
        widths = [in_channels, *channels]
        blocks = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            # halve the map after every block but the last; the global pool does the rest
            blocks += [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
            if i < len(channels) - 1:
                blocks.append(nn.MaxPool2d(2))
        self.backbone = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = channels[-1]
        self.head = nn.Sequential(
            nn.Linear(channels[-1], channels[-1]),
            nn.BatchNorm1d(channels[-1]),
            nn.ReLU(inplace=True),
            nn.Linear(channels[-1], projection_dim),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, C_last): the features to cluster

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))  # (B, projection_dim): what the loss compares


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """Normalised temperature-scaled cross-entropy: each of the 2B views must pick its partner out of
    the other 2B - 1 views by cosine similarity. z1, z2: (B, D), row i of both from the same image."""
    assert z1.shape == z2.shape and z1.ndim == 2, (
        f"need two (B, D) batches of the same shape, got {z1.shape}, {z2.shape}"
    )
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2B, D)
    self_pairs = torch.eye(2 * b, dtype=torch.bool, device=z.device)
    sim = (z @ z.T / temperature).masked_fill(self_pairs, float("-inf"))  # (2B, 2B); a view is not its own partner
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, partner)
