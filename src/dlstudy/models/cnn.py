"""The facial-expression CNN of the NTU ML HW3 reports: blocks of (conv 3x3 -> batch norm ->
LeakyReLU) x n, max-pool and dropout, then fully connected layers. Widths and depths come from the
config; any input size of at least 2**blocks pixels works. The head average-pools the last map to a grid of
at most 3x3 (the identity for 48x48 faces after four blocks), never larger than the map itself: a 1x1 map
copied to 3x3 would feed the first linear layer nine copies of the same numbers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlstudy.data.augment import random_affine, random_erasing
from dlstudy.errors import InputError
from dlstudy.train import ITEM_LOSS


class ExpressionCNN(nn.Module):
    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 7,
        image_size: int = 48,
        channels: tuple[int, ...] = (32, 64, 128, 256),
        convs: tuple[int, ...] = (1, 1, 1, 1),
        hidden: tuple[int, ...] = (256,),
        conv_dropout: float = 0.1,
        dropout: float = 0.4,
        negative_slope: float = 0.1,
        grid: int = 3,
    ):
        super().__init__()
        assert len(channels) == len(convs) >= 1, "channels and convs need one entry per block"
        if image_size < 2 ** len(channels):
            raise InputError(
                f"images of {image_size}x{image_size} are too small for {len(channels)} pooling blocks; "
                "use fewer model.channels or larger images"
            )
        blocks, c = [], in_channels
        for width, n in zip(channels, convs):
            layers = []
            for _ in range(n):
                # no conv bias: batch norm's shift does that job
                layers += [
                    nn.Conv2d(c, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.LeakyReLU(negative_slope),
                ]
                c = width
            blocks.append(nn.Sequential(*layers, nn.MaxPool2d(2), nn.Dropout(conv_dropout)))
        self.features = nn.Sequential(*blocks)
        self.last_map = image_size // 2 ** len(channels)  # the side of the last block's output
        self.grid = grid = min(grid, self.last_map)
        head: list[nn.Module] = [nn.AdaptiveAvgPool2d(grid), nn.Flatten()]
        width = c * grid * grid
        for h in hidden:
            head += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.LeakyReLU(negative_slope), nn.Dropout(dropout)]
            width = h
        head.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)

    def conv_layers(self) -> list[nn.Conv2d]:
        return [m for m in self.features.modules() if isinstance(m, nn.Conv2d)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # (B, C, H, W) -> (B, num_classes) logits


def expression_loss(cfg, weights: torch.Tensor | None, seed: int):
    """Cross-entropy with label smoothing and class weights, on batches augmented in training mode
    (shift, rotation, scale, flip, then random erasing with probability `erase`, from cfg.augment)."""
    aug = cfg.augment
    smoothing = cfg.loss.label_smoothing
    generator = torch.Generator().manual_seed(seed + 1)  # augmentation draws, apart from the batch order

    def loss_fn(model, batch):
        x, y = batch  # (B, C, H, W), (B,)
        if model.training:
            x = random_affine(
                x, shift=aug.shift, rotate=aug.rotate, scale=tuple(aug.scale), flip=aug.flip, generator=generator
            )
            if aug.erase:
                x = random_erasing(x, p=aug.erase, generator=generator)
        logits = model(x.contiguous(memory_format=torch.channels_last))
        w = None if weights is None else weights.to(logits.device)
        loss = F.cross_entropy(logits.float(), y, weight=w, label_smoothing=smoothing)
        metrics = {"accuracy": (logits.argmax(1) == y).float().mean()}
        if not model.training:  # each image's own cross-entropy, for the tests of the learning curve
            metrics[ITEM_LOSS] = F.cross_entropy(logits.float(), y, reduction="none")
        return loss, metrics

    loss_fn.generator = generator  # the Trainer checkpoints its state, so a resumed run draws the same
    return loss_fn
