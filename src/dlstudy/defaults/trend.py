"""The trend study's defaults: `dlstudy trend` runs these; --quick applies QUICK on top."""
from dlstudy.config import TRAINING_RUN

DEFAULTS = {
    **TRAINING_RUN,
    "data": {"path": None, "negative_policy": "clip", "start_date": None},
    "correlation": {"threshold": 0.5, "rule": "any", "subset": 25},
    "windows": {"lengths": [3, 5, 7, 9, 10, 15, 20, 30], "normalize": "window", "min_cases": 1},
    "split": {"test_fraction": 0.3, "val_fraction": 0.2},
    # class_weights: weigh the rarer class up in the loss (and balance the logistic baseline the same
    # way). Without it, a training period with few rises (early, mostly-zero days) makes every model
    # answer 'no rise' at the 0.5 threshold although it ranks days well (AUC ~0.69 on the WHO series).
    "model": {"cells": ["rnn", "lstm", "gru"], "hidden_size": 32, "num_layers": 1, "dropout": 0.0,
              "class_weights": True},
    "train": {"epochs": 20, "batch_size": 256, "lr": 1e-2, "optimizer": "adam", "weight_decay": 0.0,
              "schedule": "none", "patience": None},
    # on long files (JHU: 60k windows) batches grow so that an epoch takes at most this many steps;
    # small recurrent nets on a CPU are bound by per-step overhead, not by arithmetic
    "max_steps_per_epoch": 40,
}
QUICK = {"quick": True, "windows": {"lengths": [3, 10, 30]}, "train": {"epochs": 10}}  # short to long windows
