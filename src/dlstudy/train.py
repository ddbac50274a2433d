"""The one training loop. It knows nothing about the model: a study hands it a model, a loss function
`loss_fn(model, batch) -> (loss, {name: value})` and in-memory tensors.

Each epoch it records the mean of every metric in `history_`, saves a checkpoint (model, optimizer,
schedule, history, RNG state) so a killed run resumes at the next epoch, and optionally writes the
scalars to TensorBoard and stops early on the validation loss.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import functools
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from dlstudy.config import Count, Epochs, Schema, key, one_of
from dlstudy.errors import InputError

log = logging.getLogger("dlstudy")

LossFn = Callable[[nn.Module, tuple], tuple[torch.Tensor, dict]]

# Callbacks fn(trainer_name, row) for every epoch of every Trainer that writes into a run folder.
# A sweep registers one to report per-epoch values to its pruner, without any study knowing.
_epoch_listeners: list[Callable[[str, dict, int], None]] = []


@contextlib.contextmanager
def epoch_listener(fn: Callable[[str, dict, int], None]):
    """Within the block, fn(name, history_row, planned_epochs) runs after each epoch's checkpoint is saved,
    and for the epochs a resumed Trainer replays from its checkpoint. An exception from fn stops the training."""
    _epoch_listeners.append(fn)
    try:
        yield fn
    finally:
        _epoch_listeners.remove(fn)


# name -> builder from the Trainer's settings: the names a config's optimizer and schedule keys take
OPTIMIZERS = {
    "adam": lambda params, t: torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay),
    "adamw": lambda params, t: torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay),
    "sgd": lambda params, t: torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay),
    "nesterov": lambda params, t: torch.optim.SGD(
        params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, nesterov=True
    ),
}
SCHEDULES = {
    "cosine": lambda opt, t: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(t.epochs, 1)),
    "step": lambda opt, t: torch.optim.lr_scheduler.StepLR(opt, step_size=t.step_size, gamma=t.gamma),
    "none": lambda opt, t: None,
}


class Training(Schema):
    """The Trainer's settings: a config's train section. Studies subclass it to change the defaults."""

    epochs: Epochs = key(10, "passes over the training data")
    batch_size: Annotated[int, Field(ge=1, le=10**7)] = key(128, "examples a step")
    lr: Annotated[float, Field(gt=0, le=100)] = key(1e-3, "the optimizer's (peak) learning rate")
    optimizer: one_of(*OPTIMIZERS) = key("adam", "the optimizer (dlstudy.train.OPTIMIZERS)")
    weight_decay: Annotated[float, Field(ge=0, le=10)] = key(0.0, "L2 weight decay (decoupled for adamw)")
    schedule: one_of(*SCHEDULES) = key("none", "the learning rate over the epochs (cosine: down to 0 at the last)")
    patience: Count | None = key(None, "stop after this many epochs without a better validation loss; null: never")


TRAINING_BYTES_PER_PARAMETER = 16  # float32 weights, their gradients and Adam's two moments


def memory_bytes() -> int:
    """This machine's memory, the bound a model's training state must fit in."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is visible to torch; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, not '{name}'")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def progress(**kwargs):
    """A tqdm bar with the time left, on a terminal only (logs and CI get no bar lines)."""
    from tqdm import tqdm

    return tqdm(leave=False, disable=not sys.stderr.isatty(), dynamic_ncols=True, **kwargs)


def batches(tensors: Sequence[torch.Tensor], batch_size: int, *, generator: torch.Generator | None = None):
    """Yield tuples of rows; shuffled when a generator is given. Indexing whole tensors beats a
    DataLoader's per-sample collation for data that fits in memory."""
    n = len(tensors[0])
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield tuple(t[idx] for t in tensors)


@functools.cache  # asked before every batch; the answer is fixed for the process
def bf16_native(device: torch.device) -> bool:
    """Whether bfloat16 autocast speeds this device up: CUDA, or a CPU with AVX512-BF16 (the classify CNN's
    epoch 1.8x faster on 2 such cores); elsewhere bf16 is emulated and slower than float32."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()


def amx(device: torch.device) -> bool:
    """Whether this is a CPU with AMX tiles (Intel Xeon since Sapphire Rapids): bf16 convolutions there run
    about 3x as fast as with AVX512-BF16 alone, so the same config's time differs that much between CPUs."""
    return device.type == "cpu" and getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()


def precision(device: torch.device, amp: bool) -> str:
    """What a Trainer with this amp setting computes in on this device, for the log (about 2x apart on a CPU)."""
    if not (amp and bf16_native(device)):
        return "float32"
    return "bf16 autocast (AMX)" if amx(device) else "bf16 autocast"


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        *,
        epochs: int,
        batch_size: int,
        lr: float,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        schedule: str = "none",
        step_size: int = 10,
        gamma: float = 0.1,
        patience: int | None = None,
        grad_clip: float | None = None,
        amp: bool = False,
        channels_last: bool = False,
        device: torch.device | str = "cpu",
        seed: int = 0,
        run=None,
        name: str = "model",
        tensorboard: bool = False,
        after_epoch: Callable[[int, dict], None] | None = None,
        verbose: bool = True,
    ):
        self.model = model
        self.loss_fn = loss_fn
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.schedule = schedule
        self.step_size = step_size
        self.gamma = gamma
        self.patience = patience
        self.grad_clip = grad_clip
        self.amp = amp
        self.channels_last = channels_last  # NHWC convolutions: SimCLR epochs 1.3-1.5x faster on 2 CPU cores
        self.device = torch.device(device)
        self.seed = seed
        self.run = run
        self.name = name
        self.tensorboard = tensorboard
        self.after_epoch = after_epoch
        self.verbose = verbose  # False: epoch lines go to DEBUG (for many short fits, e.g. SCAN heads)

    # building blocks -------------------------------------------------------------------------
    def _make_optimizer(self) -> torch.optim.Optimizer:
        return OPTIMIZERS[self.optimizer](self.model.parameters(), self)

    def _make_schedule(self, opt: torch.optim.Optimizer):
        return SCHEDULES[self.schedule](opt, self)

    def _autocast(self):
        return torch.autocast(
            device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp and bf16_native(self.device)
        )

    def _epoch(self, tensors, *, train: bool, opt=None, generator=None) -> dict:
        self.model.train(train)
        totals: dict[str, float] = {}
        seen = 0
        batch_size = self.batch_size or len(tensors[0])  # 0: full batch
        steps = batches(tensors, batch_size, generator=generator)
        with torch.set_grad_enabled(train):
            for batch in steps:
                batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
                with self._autocast():
                    loss, metrics = self.loss_fn(self.model, batch)
                if train:
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.grad_clip:
                        nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
                    opt.step()
                n = len(batch[0])
                seen += n
                for key, value in {"loss": loss, **metrics}.items():
                    totals[key] = totals.get(key, 0.0) + float(value.detach() if torch.is_tensor(value) else value) * n
        return {k: v / seen for k, v in totals.items()}

    def evaluate(self, tensors: Sequence[torch.Tensor]) -> dict:
        """Mean loss and metrics over data, in eval mode, without gradients."""
        return self._epoch(tensors, train=False)

    # the loop ---------------------------------------------------------------------------------
    def fit(
        self, train: Sequence[torch.Tensor], val: Sequence[torch.Tensor] | None = None, **evals: Sequence[torch.Tensor]
    ) -> Trainer:
        """Train; `val` (and any other named set, e.g. test=...) is scored each epoch into the history
        as val_loss, test_loss, ... Early stopping watches val_loss only. A loss with a
        `start_epoch(epoch)` method hears the 0-based epoch before each one (a KL warm-up needs it)."""
        self.model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        opt = self._make_optimizer()
        sched = self._make_schedule(opt)
        generator = torch.Generator().manual_seed(self.seed)
        self.history_: list[dict] = []
        self.epoch_ = 0
        self._best = {"loss": math.inf, "state": None, "stale": 0}
        done = self._restore(opt, sched, generator)
        writer = self._writer() if not done else None
        bar = progress(total=self.epochs, initial=self.epoch_, desc=self.name) if self.verbose and not done else None
        while not done and self.epoch_ < self.epochs:
            if hasattr(self.loss_fn, "start_epoch"):
                self.loss_fn.start_epoch(self.epoch_)
            row = {"epoch": self.epoch_ + 1, "lr": opt.param_groups[0]["lr"]}
            row.update(self._epoch(train, train=True, opt=opt, generator=generator))
            for prefix, data in {"val": val, **evals}.items():
                if data is not None:
                    row.update({f"{prefix}_{k}": v for k, v in self._epoch(data, train=False).items()})
            if sched is not None:
                sched.step()
            self.epoch_ += 1
            self.history_.append(row)
            if self.after_epoch:
                self.after_epoch(self.epoch_, row)
            done = self._early_stop(row) if val is not None and self.patience is not None else False
            done = done or self.epoch_ >= self.epochs
            self._record(row, writer, bar)
            if self.run:
                self._checkpoint(opt, sched, generator, done=done)
            self._notify(row)
        for closing in (writer, bar):
            if closing is not None:
                closing.close()
        if self._best["stale"] and self.epoch_ < self.epochs:
            log.info("%s: stopped early after %d epochs without a better val_loss", self.name, self._best["stale"])
        if self._best["state"]:
            self.model.load_state_dict(self._best["state"])
        self.model.eval()
        return self

    def _checkpoint(self, opt, sched, generator: torch.Generator, *, done: bool) -> None:
        """Everything a killed run needs to go on at the next epoch as if never stopped."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": opt.state_dict(),
            "schedule": sched.state_dict() if sched is not None else {},
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            **self._loss_rng(),
            "history": json.dumps(self.history_),
            "epoch": self.epoch_,
            "best_loss": self._best["loss"],
            "stale": self._best["stale"],
            "best_state": self._best["state"] or {},
            "done": done,
        }
        self.run.save_torch(self._checkpoint_name(), state)

    def _loss_rng(self) -> dict:
        """The state of a loss's own generator (its augmentation draws), for the checkpoint."""
        return {"loss_rng": self.loss_fn.generator.get_state()} if hasattr(self.loss_fn, "generator") else {}

    def _checkpoint_name(self) -> str:
        return f"checkpoints/{self.name}.pt"

    def _restore(self, opt, sched, generator) -> bool:
        """Continue from the run folder's checkpoint, if any; True when that training had finished."""
        state = self.run.load_torch(self._checkpoint_name()) if self.run else None
        if not state:
            return False
        self.model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None and state["schedule"]:
            sched.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        if "torch_rng" in state:  # dropout and augmentation draw from the global generator
            torch.set_rng_state(state["torch_rng"])
        if "loss_rng" in state and hasattr(self.loss_fn, "generator"):
            self.loss_fn.generator.set_state(state["loss_rng"])
        self.history_ = json.loads(state["history"])
        self.epoch_ = state["epoch"]
        self._best = {"loss": state["best_loss"], "state": state["best_state"] or None, "stale": state["stale"]}
        for row in self.history_:  # listeners see the whole history, also across a resume
            self._notify(row)
        if state["done"]:
            log.info("%s: finished earlier (%d epochs), loaded from its checkpoint", self.name, self.epoch_)
        else:
            log.info("%s: resuming after epoch %d", self.name, self.epoch_)
        return bool(state["done"])

    def _early_stop(self, row: dict) -> bool:
        best = self._best
        if row["val_loss"] < best["loss"]:
            best.update(loss=row["val_loss"], stale=0, state=copy.deepcopy(self.model.state_dict()))
            return False
        best["stale"] += 1
        return best["stale"] >= self.patience

    def _writer(self):
        if not (self.tensorboard and self.run):
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.run.file("tensorboard", self.name)))

    def _record(self, row: dict, writer, bar) -> None:
        """The epoch's line in log.txt (on the terminal with -v, else a bar), and in TensorBoard."""
        log.log(
            logging.INFO if self.verbose else logging.DEBUG,
            "%s epoch %d/%d  %s",
            self.name,
            self.epoch_,
            self.epochs,
            "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "lr")),
            extra={"detail": True},
        )
        if bar is not None:
            bar.update(1)
        if writer:
            for key, value in row.items():
                if key != "epoch":
                    writer.add_scalar(f"{self.name}/{key}", value, self.epoch_)
            writer.flush()

    def _notify(self, row: dict) -> None:
        if self.run is not None:  # inner fits without a run folder (SCAN heads) are not the study's epochs
            for fn in list(_epoch_listeners):
                fn(self.name, row, self.epochs)


def train_variant(
    run,
    cfg,
    model: nn.Module,
    loss_fn: LossFn,
    name: str,
    *,
    train,
    val=None,
    device,
    settings: Training | None = None,
    **evals,
) -> Trainer:
    """The studies' one way to train a named model inside a run folder (checkpointed, resumable) and
    keep its weights under the name predict loads them by. `settings`: the train section (default cfg.train)."""
    from dlstudy.runs import weights_file

    trainer = Trainer(
        model,
        loss_fn,
        **(settings or cfg.train).model_dump(),
        device=device,
        seed=cfg.seed,
        run=run,
        name=name,
        tensorboard=cfg.tensorboard,
    )
    trainer.fit(train, val, **evals)
    run.save_weights(weights_file(name), model)
    return trainer
