"""Frozen pretrained encoders through timm, for users who have the weights: 'timm:<model name>' (timm's own
weights, from the local Hugging Face cache) or 'timm:<model name>@weights.safetensors' (a local file).

Nothing is downloaded here: the weights are a file on this machine or they are an exit-2 line saying how to
get them. Images go through the model's own evaluation preprocessing (timm's pretrained config: resize by
its crop share, centre crop to its input size, its mean and std), done with tensor ops on the whole batch.
The network is frozen: the cluster study encodes with it and trains nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dlstudy.errors import InputError

PREFIX = "timm:"
EXTRA = "pip install -c constraints-pretrained.txt -e '.[pretrained]' (README: Pretrained encoders)"


def is_pretrained(spec: str) -> bool:
    return spec.startswith(PREFIX)


def parse(spec: str) -> tuple[str, Path | None]:
    """'timm:vit_small_patch14_dinov2.lvd142m@w.safetensors' -> (the timm name, the file or None)."""
    name, _, file = spec.removeprefix(PREFIX).partition("@")
    return name, Path(file).expanduser() if file else None


def load_timm():
    try:
        import timm
    except Exception as e:  # ImportError, or torchvision failing to load beside a torch it was not built for
        raise InputError(f"timm encoders need timm, which did not import ({str(e).splitlines()[0]}); {EXTRA}") from None
    return timm


def locate_weights(spec: str) -> Path:
    """Where a spec's weights lie on this machine: its file, or timm's own in the local Hugging Face cache."""
    timm = load_timm()
    name, file = parse(spec)
    if not name or not timm.is_model(name):
        raise InputError(
            f"{spec}: timm has no model '{name}'; list the names with "
            "python -c \"import timm; print(timm.list_models('*dinov2*', pretrained=True))\""
        )
    if file is not None:
        if file.suffix != ".safetensors":
            raise InputError(
                f"{file}: give the weights as a .safetensors file (checkpoints that unpickle code are not loaded); "
                "convert one with safetensors.torch.save_file(torch.load(path, weights_only=True), 'w.safetensors')"
            )
        if not file.is_file():
            raise InputError(f"{file}: no such weights file; give the path of a .safetensors file of timm's '{name}'")
        return file
    from huggingface_hub import try_to_load_from_cache

    hub_id = timm.models.get_pretrained_cfg(name).hf_hub_id
    cached = try_to_load_from_cache(hub_id, "model.safetensors") if hub_id else None
    if not isinstance(cached, str):
        raise InputError(
            f"{spec}: the weights of '{name}' are not in the local Hugging Face cache, and this run downloads "
            f'nothing; fetch them once where there is a network (python -c "import timm; timm.create_model('
            f"'{name}', pretrained=True)\") or give a file: timm:{name}@weights.safetensors"
        )
    return Path(cached)


class PretrainedEncoder(nn.Module):
    reconstructs = False  # features only
    trains = False  # frozen: encoded as it is
    objective = "none: pretrained, frozen"

    def __init__(self, *, spec: str, in_channels: int):
        super().__init__()
        assert in_channels in (1, 3), f"images need 1 or 3 channels, got {in_channels}"
        timm = load_timm()
        name, _ = parse(spec)
        self.weights = locate_weights(spec)
        self.net = timm.create_model(name, pretrained=False, num_classes=0)
        load_into(self.net, self.weights, name)
        self.net.eval().requires_grad_(False)
        data = timm.data.resolve_model_data_config(self.net)  # the model's own preprocessing
        self.size, self.crop_share, self.interpolation = data["input_size"][1:], data["crop_pct"], data["interpolation"]
        self.register_buffer("mean", torch.tensor(data["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(data["std"]).view(1, 3, 1, 1))
        self.feature_dim = self.net.num_features

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: batch norm keeps its statistics whatever a caller asks

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1] -> (B, 3, S, S) as timm's eval transform makes it: the short side resized to
        S / crop share, a centre crop of S, normalised."""
        x = ((x + 1) / 2).expand(-1, 3, -1, -1)  # grey images to the three channels the network was trained on
        h, w = self.size
        scale = max(h, w) / self.crop_share / min(x.shape[-2:])
        resized = (round(x.shape[-2] * scale), round(x.shape[-1] * scale))
        mode = self.interpolation if self.interpolation in ("bilinear", "bicubic") else "bilinear"
        x = F.interpolate(x, size=resized, mode=mode, antialias=True, align_corners=False).clamp(0, 1)
        top, left = (resized[0] - h) // 2, (resized[1] - w) // 2
        return (x[..., top : top + h, left : left + w] - self.mean) / self.std

    def encode(self, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        # (B, C, H, W) -> (B, D) pooled features; small chunks, as the network's input is ImageNet-sized
        return torch.cat([self.net(self.preprocess(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


def load_into(net: nn.Module, file: Path, name: str) -> None:
    """The file's weights into the headless network, strictly: a file of another model is an exit-2 line, not
    a network left half random. The classifier is dropped; the model's own filter maps original layouts."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(file))
    except (SafetensorError, OSError) as e:
        raise InputError(f"{file}: not a readable safetensors file ({e}); save it again with safetensors") from None
    classifier = net.pretrained_cfg.get("classifier") or ()
    for head in [classifier] if isinstance(classifier, str) else classifier:
        state = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}
    fit = getattr(sys.modules[type(net).__module__], "checkpoint_filter_fn", None)
    if fit is not None:
        state = fit(state, net)
    missing, unexpected = (set(net.state_dict()) - set(state)), (set(state) - set(net.state_dict()))
    if missing or unexpected:
        raise InputError(
            f"{file}: these are not the weights of timm's '{name}' ({len(missing)} of its tensors missing, e.g. "
            f"{sorted(missing)[:2]}; {len(unexpected)} unknown, e.g. {sorted(unexpected)[:2]}); give that model's file"
        )
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        why = [line.strip() for line in str(e).splitlines() if line.strip()][-1]
        raise InputError(f"{file}: its tensors do not fit timm's '{name}' ({why})") from None
