"""A recurrent binary classifier: torch's RNN, LSTM or GRU over a window, then a linear head on the
last hidden state. One logit out: the chance the next value rises."""

from __future__ import annotations

import torch
from torch import nn

from dlstudy.train import ITEM_LOSS

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentClassifier(nn.Module):
    def __init__(
        self,
        *,
        cell: str = "lstm",
        input_size: int = 1,
        hidden_size: int = 32,
        num_layers: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        assert cell in CELLS, f"cell must be one of {list(CELLS)}"
        # torch applies dropout between stacked layers only
        self.rnn = CELLS[cell](
            input_size, hidden_size, num_layers=num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (B, L, H)
        return self.head(out[:, -1]).squeeze(1)  # (B,) logits


def build_recurrent(model_cfg, cell: str) -> RecurrentClassifier:
    m = model_cfg
    return RecurrentClassifier(cell=cell, hidden_size=m.hidden_size, num_layers=m.num_layers, dropout=m.dropout)


def rise_loss(pos_weight: float | None):
    """Binary cross-entropy for the Trainer, with the rarer class weighed up by pos_weight."""
    weight = None if pos_weight is None else torch.tensor(pos_weight)

    def loss_fn(model, batch):
        x, y = batch  # (B, L, 1), (B,)
        logits = model(x)
        w = None if weight is None else weight.to(x.device)
        per_item = nn.functional.binary_cross_entropy_with_logits(logits, y, pos_weight=w, reduction="none")
        metrics = {"accuracy": ((logits > 0).float() == y).float().mean()}
        return per_item.mean(), metrics if model.training else {**metrics, ITEM_LOSS: per_item}

    return loss_fn


def as_tensors(x, y):
    """Windows (n, L) and labels (n,) as numpy -> the model's (n, L, 1) and (n,) float tensors."""
    return torch.from_numpy(x).float().unsqueeze(-1), torch.from_numpy(y).float()


@torch.no_grad()
def rise_probabilities(model: nn.Module, x, device):
    model.eval()
    return torch.sigmoid(model(torch.from_numpy(x).float().unsqueeze(-1).to(device))).cpu().numpy()
