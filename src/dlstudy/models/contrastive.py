"""Self-supervised encoders for small images, trained on the images the cluster study clusters.

SimCLR (Chen et al. 2020): a convnet whose globally pooled features are what the study clusters, a small
projection head that only the loss sees, and the NT-Xent loss over two augmented views of every image in a
batch. BYOL (Grill et al. 2020): the same encoder and head plus a predictor regress what a teacher, an
exponential moving average of the encoder, projects for the other view; no negatives, so it does not need
SimCLR's large batches.

The head is thrown away after training because the layer before it keeps more of what the
augmentations do not control (the paper's finding); the features are L2-normalised downstream.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

BACKBONES = ("convnet", "resnet")


class ContrastiveEncoder(nn.Module):
    reconstructs = False  # no decoder: features only
    trains = True  # trained on the images it encodes
    objective = "NT-Xent"

    def __init__(
        self,
        *,
        in_channels: int,
        channels: tuple[int, ...] = (32, 64, 128, 256),
        projection_dim: int = 64,
        backbone: str = "convnet",
    ):
        super().__init__()
        assert len(channels) >= 1, "need at least one conv block"
        assert backbone in BACKBONES, f"backbone must be one of {BACKBONES}, got {backbone!r}"
        widths = [in_channels, *channels]
        blocks = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            # halve the map after every block but the last; the global pool does the rest
            if backbone == "resnet" and i > 0:  # after the first conv, one residual block a stage, strided
                blocks.append(Residual(a, b, stride=2))
                continue
            blocks += [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
            if i < len(channels) - 1 and backbone == "convnet":
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


def conv_bn(a: int, b: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(a, b, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(b))


class Residual(nn.Module):
    """ResNet's basic block (He et al. 2016): two 3x3 convs beside a shortcut, 1x1 where the shape changes."""

    def __init__(self, a: int, b: int, *, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(conv_bn(a, b, stride), nn.ReLU(inplace=True), conv_bn(b, b))
        self.shortcut = conv_bn(a, b, stride, kernel=1) if (a, stride) != (b, 1) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))  # (B, b, H / stride, W / stride)


class BYOL(nn.Module):
    """A student encoder with a predictor, and its teacher: a copy that follows the student's weights by an
    exponential moving average after every optimiser step (`after_step`, called by the Trainer)."""

    reconstructs = False
    trains = True
    objective = "BYOL: 2 - 2 cos, both views"

    def __init__(self, *, student: ContrastiveEncoder, momentum: float = 0.99):
        super().__init__()
        assert 0 <= momentum < 1, f"momentum must be in [0, 1), got {momentum}"
        self.student, self.momentum = student, momentum
        d, hidden = student.head[-1].out_features, student.head[0].out_features
        self.predictor = nn.Sequential(
            nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, d)
        )
        self.teacher = copy.deepcopy(student).requires_grad_(False)
        self.feature_dim = student.feature_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.student.encode(x)  # (B, C_last): the student's features are the ones clustered

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.student(x))  # (B, projection_dim): the student's guess of the teacher's

    @torch.no_grad()
    def targets(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher(x)  # (B, projection_dim)

    def after_step(self) -> None:
        ema_update(self.teacher, self.student, self.momentum)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student, parameter by parameter; buffers (batch norm's
    running statistics) are copied, as BYOL's teacher normalises with its own batches anyway."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.lerp_(s, 1 - momentum)
    for t, s in zip(teacher.buffers(), student.buffers()):
        t.copy_(s)


def byol_loss(p1: torch.Tensor, p2: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """BYOL's symmetric regression: each view's prediction against the teacher's projection of the other,
    2 - 2 cos (the squared distance of unit vectors); 0 when they agree, 4 when opposite. All (B, D)."""
    return (2 - 2 * F.cosine_similarity(p1, t2.detach(), dim=1)).mean() + (
        2 - 2 * F.cosine_similarity(p2, t1.detach(), dim=1)
    ).mean()


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
