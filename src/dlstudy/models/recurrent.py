"""A recurrent binary classifier: torch's RNN, LSTM or GRU over a window, then a linear head on the
last hidden state. One logit out: the chance the next value rises."""
from __future__ import annotations

import torch
from torch import nn

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentClassifier(nn.Module):
    def __init__(self, *, cell: str = "lstm", input_size: int = 1, hidden_size: int = 32, num_layers: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        assert cell in CELLS, f"cell must be one of {list(CELLS)}"
        # torch applies dropout between stacked layers only
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                               dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (B, L, H)
        return self.head(out[:, -1]).squeeze(1)  # (B,) logits
