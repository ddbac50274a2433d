"""The table of layers the homework asks for (layer, output shape, parameters), for any network,
measured by forward hooks on a real batch rather than read from the constructor."""

from __future__ import annotations

import torch
from torch import nn


def layer_table(model: nn.Module, example: torch.Tensor) -> list[dict]:
    """One row per leaf layer in the order it runs on `example` (a real batch, (B, ...)): its name,
    its output shape for one input, and its parameters; then a total row."""
    rows: list[dict] = []

    def record(name: str):
        def hook(module, _inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            rows.append(
                {
                    "layer": f"{name} ({type(module).__name__})",
                    "output": " x ".join(map(str, out.shape[1:])),
                    "parameters": sum(p.numel() for p in module.parameters(recurse=False)),
                }
            )

        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if not list(m.children())]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example.to(next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    rows.append({"layer": "total", "output": "", "parameters": sum(p.numel() for p in model.parameters())})
    return rows
