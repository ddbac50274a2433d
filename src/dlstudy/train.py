"""The one training loop. It knows nothing about the model: a study hands it a model, a loss function
`loss_fn(model, batch) -> (loss, {name: value})` and in-memory tensors.

Each epoch it records the mean of every metric in `history_`, saves a checkpoint (model, optimizer,
schedule, history, RNG state) so a killed run resumes at the next epoch, and optionally writes the
scalars to TensorBoard and stops early on the validation loss. A loss that also returns each item's loss under
ITEM_LOSS (in evaluation) has them kept per epoch and evaluated set in `item_losses_`: tests of the learning
curve pair the same items across epochs.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import functools
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from torch import nn

from dlstudy import budget as budgets
from dlstudy.config import Count, Epochs, Schema, format_duration, key, one_of
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


ITEM_LOSS = "item_loss"  # the metrics key under which a loss returns each item's loss, (B,), in evaluation

# name -> builder from the Trainer's settings: the names a config's optimizer and schedule keys take
OPTIMIZERS = {
    "adam": lambda params, t: torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay),
    "adamw": lambda params, t: torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay),
    "sgd": lambda params, t: torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay),
    "nesterov": lambda params, t: torch.optim.SGD(
        params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, nesterov=True
    ),
}


class CosinePlan:
    """The cosine schedule's factor by epoch, as segments (start, height, end): from `start` the factor falls from
    `height` to 0 at `end`. A re-plan (fewer epochs fit) starts a segment where the rate stands, so it never
    jumps and still reaches 0 at the new last epoch. LambdaLR keeps the segments in its state_dict."""

    def __init__(self, epochs: int):
        self.segments = [(0, 1.0, max(epochs, 1))]

    def __call__(self, epoch: int) -> float:
        start, height, end = self.segments[-1]
        done = min(max(epoch - start, 0), end - start) / max(end - start, 1)
        return height * 0.5 * (1 + math.cos(math.pi * done))

    def replan(self, epoch: int, end: int) -> None:
        """From `epoch` on, fall to 0 at `end`."""
        segment = (epoch, self(epoch), max(end, epoch + 1))
        self.segments = [s for s in self.segments if s[0] < epoch] + [segment]


SCHEDULES = {
    "cosine": lambda opt, t: torch.optim.lr_scheduler.LambdaLR(opt, CosinePlan(t.epochs)),
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


WARM_STEPS, TIMED_STEPS = 2, 5  # a budget's measurement: the first steps build kernels and caches, untimed
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
        budget: budgets.Budget | None = None,
        remaining: int = 1,
        fixed_epochs: bool = False,
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
        self.budget = budget  # plan the epochs to fit its share; `remaining`: trainings left in it, this one included
        self.remaining = remaining
        self.fixed_epochs = fixed_epochs  # the user set the epochs: they win over the budget

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
        seen, items = 0, []
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
                    if hasattr(self.model, "after_step"):
                        self.model.after_step()  # e.g. an EMA teacher following its student
                n = len(batch[0])
                seen += n
                per_item = metrics.pop(ITEM_LOSS, None)
                if per_item is not None and not train:
                    items.append(per_item.detach().float().cpu())
                for key, value in {"loss": loss, **metrics}.items():
                    totals[key] = totals.get(key, 0.0) + float(value.detach() if torch.is_tensor(value) else value) * n
        out = {k: v / seen for k, v in totals.items()}
        return {**out, ITEM_LOSS: torch.cat(items).numpy()} if items else out

    def evaluate(self, tensors: Sequence[torch.Tensor]) -> dict:
        """Mean loss and metrics over data, in eval mode, without gradients."""
        return self._epoch(tensors, train=False)

    # the loop ---------------------------------------------------------------------------------
    def fit(
        self, train: Sequence[torch.Tensor], val: Sequence[torch.Tensor] | None = None, **evals: Sequence[torch.Tensor]
    ) -> Trainer:
        """Train; `val` (and any other named set, e.g. test=...) is scored each epoch into the history
        as val_loss, test_loss, ... Early stopping watches val_loss only. A loss with a
        `start_epoch(epoch)` method hears the 0-based epoch before each one (a KL warm-up needs it); a model
        with an `after_step()` method hears every optimiser step (an EMA teacher follows its student)."""
        self.model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        opt = self._make_optimizer()
        sched = self._make_schedule(opt)
        generator = torch.Generator().manual_seed(self.seed)
        self.history_: list[dict] = []
        self.item_losses_: dict[str, list[np.ndarray]] = {}  # evaluated set -> each epoch's per-item losses
        self.epoch_ = 0
        self._best = {"loss": math.inf, "state": None, "stale": 0}
        self.plan_: dict | None = None
        self.scheduler_ = sched
        self._deadline: float | None = None  # on the budget's clock; None: no plan to keep to (or a resumed one)
        done = self._restore(opt, sched, generator)
        if self.budget is not None and not done and self.plan_ is None:
            self._plan(train, [d for d in (val, *evals.values()) if d is not None], sched)
        writer = self._writer() if not done else None
        bar = progress(total=self.epochs, initial=self.epoch_, desc=self.name) if self.verbose and not done else None
        started = self.budget.clock() if self.budget is not None else 0.0
        while not done and self.epoch_ < self.epochs:
            if hasattr(self.loss_fn, "start_epoch"):
                self.loss_fn.start_epoch(self.epoch_)
            row = {"epoch": self.epoch_ + 1, "lr": opt.param_groups[0]["lr"]}
            row.update(self._epoch(train, train=True, opt=opt, generator=generator))
            for prefix, data in {"val": val, **evals}.items():
                if data is not None:
                    scored = self._epoch(data, train=False)
                    if ITEM_LOSS in scored:  # each item's loss this epoch: tests of the curve pair items
                        self.item_losses_.setdefault(prefix, []).append(scored.pop(ITEM_LOSS))
                    row.update({f"{prefix}_{k}": v for k, v in scored.items()})
            if sched is not None:
                sched.step()
            self.epoch_ += 1
            self.history_.append(row)
            if self.after_epoch:
                self.after_epoch(self.epoch_, row)
            done = self._early_stop(row) if val is not None and self.patience is not None else False
            done = done or self.epoch_ >= self.epochs
            self._record(row, writer, bar)
            if self.budget is not None and not done:  # an epoch's time includes the checkpoint before it
                started, seconds = self.budget.clock(), self.budget.clock() - started
                done = self._keep_to_plan(seconds, sched)
            if self.run:
                self._checkpoint(opt, sched, generator, done=done)
            self._notify(row)
        if self.plan_ is not None:
            self.plan_["epochs"] = self.epoch_
        for closing in (writer, bar):
            if closing is not None:
                closing.close()
        if self._best["stale"] and self.epoch_ < self.epochs:
            log.info("%s: stopped early after %d epochs without a better val_loss", self.name, self._best["stale"])
        if self._best["state"]:
            self.model.load_state_dict(self._best["state"])
        self.model.eval()
        return self

    # the budget -------------------------------------------------------------------------------
    def measure(self, train: Sequence[torch.Tensor], evaluated: list) -> tuple[float, float]:
        """(seconds a training step, seconds an epoch: its steps and an evaluation pass over `evaluated`), timed
        after warm-up on a copy of the model, with every generator put back: the training that follows is the one
        it would be unplanned."""
        clock = self.budget.clock if self.budget is not None else time.monotonic
        model, rng, loss_rng = self.model, torch.get_rng_state(), self._loss_rng()
        size = self.batch_size or len(train[0])
        rows = torch.arange((WARM_STEPS + TIMED_STEPS) * size) % len(train[0])  # wraps around a small data set
        layout = torch.channels_last if self.channels_last else torch.preserve_format
        self.model = copy.deepcopy(model).to(self.device, memory_format=layout)
        try:
            opt = self._make_optimizer()
            self._epoch([t[rows[: WARM_STEPS * size]] for t in train], train=True, opt=opt)
            times = []
            for k in range(WARM_STEPS, WARM_STEPS + TIMED_STEPS):  # the median step: one hiccup does not count
                start = clock()
                self._epoch([t[rows[k * size : (k + 1) * size]] for t in train], train=True, opt=opt)
                times.append(clock() - start)
            step = statistics.median(times)
            start, shown = clock(), [[t[: TIMED_STEPS * size] for t in d] for d in evaluated]
            for data in shown:
                self._epoch(data, train=False)
            shown_rows = sum(len(d[0]) for d in shown)
            evaluation = (clock() - start) / max(shown_rows, 1) * sum(len(d[0]) for d in evaluated)
        finally:
            self.model = model
            torch.set_rng_state(rng)
            if loss_rng:
                self.loss_fn.generator.set_state(loss_rng["loss_rng"])
        steps = math.ceil(len(train[0]) / size)
        return step, steps * step + evaluation

    def _plan(self, train: Sequence[torch.Tensor], evaluated: list, sched) -> None:
        """Plan the epochs that fit this training's share of the budget (at most the configured ones), and the
        schedule for them; an explicit train.epochs is kept. Too little time for one epoch is an InputError."""
        b = self.budget
        step, epoch = self.measure(train, evaluated)
        b.first_epoch = b.first_epoch or epoch  # what follows training is reckoned in the first training's epochs
        allotted = b.allot(self.remaining)
        fits = budgets.plan_epochs(allotted, epoch, self.epochs)
        if fits < 1 and not self.fixed_epochs and not b.plans:  # the run's first training: nothing spent yet
            if "budget" in b.given:
                raise b.too_small(self.name, epoch, self.remaining)
            b.stretch(self.name, epoch, self.remaining)
            allotted = b.allot(self.remaining)
            fits = budgets.plan_epochs(allotted, epoch, self.epochs)
        if fits < 1 and not self.fixed_epochs:  # the trainings before took more than their share: one epoch each
            log.warning("%s: no epoch fits the budget's %s left; training one", self.name, format_duration(b.left()))
        planned = self.epochs if self.fixed_epochs else max(fits, 1)
        self._deadline = b.clock() + allotted
        self.plan_ = b.plans[self.name] = {
            "ceiling": self.epochs,
            "planned_epochs": planned,
            "epochs": 0,
            "fixed": self.fixed_epochs,
            "seconds_per_step": round(step, 5),
            "epoch_seconds": round(epoch, 3),
            "allotted_seconds": round(allotted, 1),
            "replans": [],
        }
        self.epochs = planned
        if isinstance(getattr(sched, "lr_lambdas", [None])[0], CosinePlan):
            sched.lr_lambdas[0].replan(0, planned)
        log.info(
            "%s: %.3g s a step, %s an epoch here: %d epochs %s in %s%s",
            self.name,
            step,
            format_duration(epoch),
            planned,
            "set in the config, planned" if self.fixed_epochs else "fit",
            format_duration(allotted),
            f" (the config asks for {self.plan_['ceiling']})" if planned < self.plan_["ceiling"] else "",
            extra={"detail": True},  # one a training: in log.txt and with -v, not in the terminal's few lines
        )

    def _keep_to_plan(self, seconds: float, sched) -> bool:
        """After an epoch that took `seconds`: when the epochs left no longer fit before the deadline (the machine
        slowed), plan fewer, and when more fit (it sped up, or the first steps were slow) more, up to the configured
        ones; the schedule is re-planned to end at the new last epoch. True: training ends now."""
        if self._deadline is None or self.plan_["fixed"]:
            return False  # a resumed run finishes the schedule of its first start
        left, seconds = max(self._deadline - self.budget.clock(), 0.0), max(seconds, 1e-9)
        fits = self.epoch_ + int(left // seconds)
        if fits >= self.epochs:  # more only where they fit 10 % slower too: the plan does not flap by one
            fits = max(self.epochs, min(self.plan_["ceiling"], self.epoch_ + int(left // (1.1 * seconds))))
        if fits == self.epochs:
            return False
        log.info(
            "%s: an epoch took %s, %s than planned: %d epochs fit now, the schedule re-planned to end there",
            self.name,
            format_duration(seconds),
            "slower" if fits < self.epochs else "faster",
            fits,
            extra={"detail": True},
        )
        self.epochs = self.plan_["planned_epochs"] = fits
        self.plan_["replans"].append({"after_epoch": self.epoch_, "epochs": fits})
        if isinstance(getattr(sched, "lr_lambdas", [None])[0], CosinePlan):
            sched.lr_lambdas[0].replan(self.epoch_, fits)
        return fits <= self.epoch_

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
            "item_losses": {k: torch.from_numpy(np.stack(v)) for k, v in self.item_losses_.items()},
            "epoch": self.epoch_,
            "epochs": self.epochs,
            "plan": json.dumps(self.plan_),
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
        self.item_losses_ = {k: list(v.numpy()) for k, v in state.get("item_losses", {}).items()}
        self.epoch_ = state["epoch"]
        self.epochs = state.get("epochs", self.epochs)  # the plan of the first start
        self.plan_ = json.loads(state.get("plan", "null"))
        if self.plan_ is not None and self.budget is not None:
            self.budget.plans[self.name] = self.plan_
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
    remaining: int = 1,
    epochs_key: str = "train.epochs",
    **evals,
) -> Trainer:
    """The studies' one way to train a named model inside a run folder (checkpointed, resumable) and
    keep its weights under the name predict loads them by. `settings`: the train section (default cfg.train);
    `remaining`: the trainings of the run still to come, this one included, that share the time budget;
    `epochs_key`: where the config sets these epochs (the user's explicit value wins over the budget)."""
    from dlstudy.runs import weights_file

    budget = budgets.current()
    trainer = Trainer(
        model,
        loss_fn,
        **(settings or cfg.train).model_dump(),
        budget=budget,
        remaining=remaining,
        fixed_epochs=budget is not None and epochs_key in budget.given,
        device=device,
        seed=cfg.seed,
        run=run,
        name=name,
        tensorboard=cfg.tensorboard,
    )
    trainer.fit(train, val, **evals)
    run.save_weights(weights_file(name), model)
    return trainer
