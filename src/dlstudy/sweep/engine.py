"""Sweeps and repeated seeds on Optuna.

A sweep is an Optuna study plus a folder. Each trial is one (configuration, seed) pair and one ordinary
run folder (`trials/c003-s1/`) made by `run_study` with `--set` overrides: no study knows it is swept.

Exactly once: the coordinator enqueues every pair as a WAITING trial (sampled configurations get their
seed copies as soon as their first seed's parameters are drawn), and workers pop WAITING trials under a
lock file in the sweep folder. A trial whose worker died is marked failed and its pair enqueued again;
the retry resumes the same run folder from its last epoch checkpoint. A worker is dead when its pid is
gone (same host) or its heartbeat is stale: Optuna's own on RDB storages (SQLite, PostgreSQL), a
`heartbeat` trial attribute on the journal file, which has none.

Workers are processes of this machine (`--workers`), or Ray tasks (`--backend ray`) that run the same
loop: Ray only places them, so params, seeds and pruning have one code path, Optuna's.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import socket
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dlstudy.config import dump_yaml
from dlstudy.errors import InputError, Pruned
from dlstudy.runs import STATUS, Run, is_complete, read_status
from dlstudy.sweep.space import Space

log = logging.getLogger("dlstudy")

MAX_RETRIES = 3  # a pair whose worker died this often stays failed
HEARTBEAT_S, GRACE_S = 20, 120  # a running trial unheard of for GRACE_S seconds has lost its worker
PRUNERS = ("median", "hyperband", "none")


@dataclass
class SweepSpec:
    """Everything that decides what a sweep computes; a rerun must match it to continue the study."""

    study: str
    space: dict = field(default_factory=dict)
    trials: int = 1  # configurations; each runs with `seeds` seeds
    seeds: int = 1
    base_seed: int = 0
    metric: str = ""
    direction: str = "maximize"
    pruner: str = "none"
    data: str | None = None
    config: str | None = None
    sets: list = field(default_factory=list)
    quick: bool = False
    device: str | None = None

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


# storage -----------------------------------------------------------------------------------------
def check_storage(url: str | None, workers: int) -> None:
    """Refuse a storage that cannot work before anything is created."""
    if url is None or url.startswith("journal:"):
        return
    if url.startswith("sqlite:"):
        if workers > 1:
            raise InputError(f"--storage {url}: SQLite is refused for more than one worker (one file lock serialises "
                             "every writer, and Optuna's FAQ warns against concurrent use); use the default journal "
                             "file or postgresql://")
        return
    if url.startswith(("postgresql:", "postgres:")):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise InputError(f"--storage {url}: PostgreSQL needs a driver: pip install 'dlstudy[postgres]'") from None
        return
    raise InputError(f"--storage {url}: use journal:PATH, sqlite:///FILE or postgresql://user@host/db")


def open_storage(url: str | None, folder: Path, workers: int):
    """The Optuna storage: by default a journal file in the sweep folder, safe for several processes."""
    import optuna

    check_storage(url, workers)
    if url is None or url.startswith("journal:"):
        path = folder / "optuna.journal" if url is None else Path(url[len("journal:"):]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:"):
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    return optuna.storages.RDBStorage("postgresql+psycopg:" + url.split(":", 1)[1], heartbeat_interval=HEARTBEAT_S,
                                      grace_period=GRACE_S, engine_kwargs={"pool_pre_ping": True})


class FolderLock:
    """An exclusive advisory lock on the sweep folder, so that repairing the queue and popping a trial
    are atomic across the worker processes of this machine. release() may be called more than once."""

    def __init__(self, folder: Path):
        self.path = folder / ".queue.lock"
        self.file = None

    def acquire(self) -> FolderLock:
        self.file = open(self.path, "a")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def release(self) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None


def make_pruner(name: str):
    import optuna

    if name == "median":  # compares each epoch with the median of finished trials at the same epoch
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def load_study(spec: SweepSpec, storage, name: str, *, create: bool):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # dlstudy prints one line a trial instead
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler = optuna.samplers.TPESampler(seed=spec.base_seed)
    if create:
        study = optuna.create_study(storage=storage, study_name=name, direction=spec.direction, sampler=sampler,
                                    pruner=make_pruner(spec.pruner), load_if_exists=True)
        saved = study.user_attrs.get("spec")
        if saved is None:
            study.set_user_attr("spec", asdict(spec))
        elif saved != json.loads(json.dumps(asdict(spec))):
            differ = sorted(k for k in saved if saved.get(k) != json.loads(json.dumps(asdict(spec))).get(k))
            raise InputError(f"study '{name}' in this storage was made with other settings ({', '.join(differ)}); "
                             "rerun with the same flags, or choose another --name")
        return study
    return optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=make_pruner(spec.pruner))


# the queue ---------------------------------------------------------------------------------------
def pair(trial) -> tuple[int, int]:
    return trial.user_attrs["config"], trial.user_attrs["seed_index"]


def fill_queue(study, spec: SweepSpec, space: Space) -> int:
    """Enqueue every (configuration, seed) pair that has no trial that is waiting, running, finished,
    or failed for a reason of its own; returns how many were enqueued. Call under FolderLock."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    taken, lost, params_of = set(), {}, {}
    for t in trials:
        if "config" not in t.user_attrs:
            continue
        key = pair(t)
        if t.state == TrialState.FAIL and "error" not in t.user_attrs:
            lost[key] = lost.get(key, 0) + 1  # its worker died: retry, up to MAX_RETRIES
        else:
            taken.add(key)
        if t.params and (key[1] == 0 or key[0] not in params_of):
            params_of.setdefault(key[0], t.params)
    combos = space.combinations()
    added = 0
    for c in range(spec.trials):
        for s in range(spec.seeds):
            key = (c, s)
            if key in taken or lost.get(key, 0) >= MAX_RETRIES:
                continue
            if space.params and c not in params_of and s > 0:
                continue  # its parameters are drawn when seed 0 starts; the copies follow then
            params = params_of.get(c) or {p.key: p.choices()[p.values.index(v)] for p, v in
                                          ((space.param(k), v) for k, v in combos[c % len(combos)].items())}
            attrs = {"config": c, "seed_index": s, "seed": spec.base_seed + s}
            if key in lost:
                attrs["retry"] = lost[key]
            study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)
            taken.add(key)
            added += 1
    return added


def process_start(pid: int) -> str | None:
    """The kernel's start time of a process (so a reused pid is not taken for the old worker)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_id() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start(os.getpid())}


def recover_lost(study) -> int:
    """Mark failed the running trials whose worker is gone; returns how many. Gone: its pid on this host
    has ended, or (journal storage) its heartbeat is older than GRACE_S. Optuna checks RDB heartbeats."""
    from optuna.trial import TrialState

    me, now, lost = socket.gethostname(), time.time(), 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get("worker") or {}
        if w.get("host") == me:
            dead = process_start(w.get("pid", -1)) != w.get("start") or not w.get("start")
        else:
            dead = "heartbeat" in t.user_attrs and now - t.user_attrs["heartbeat"] > GRACE_S
        if not dead:
            continue
        study._storage.set_trial_user_attr(t._trial_id, "lost", f"worker {w.get('pid')} on {w.get('host')} died during the trial")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        log.warning("sweep: trial %d lost its worker; it is enqueued again and resumes its run folder", t.number)
        lost += 1
    return lost


@contextlib.contextmanager
def heartbeat(study, trial):
    """For storages without Optuna's heartbeat (the journal file): a trial attribute updated while it runs."""
    if getattr(study._storage, "get_heartbeat_interval", lambda: None)():
        yield
        return
    import threading

    stop = threading.Event()

    def beat():
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):  # a missed beat is retried; a finished trial stops the thread
                study._storage.set_trial_user_attr(trial._trial_id, "heartbeat", time.time())

    trial.set_user_attr("heartbeat", time.time())
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# workers -----------------------------------------------------------------------------------------
@dataclass
class Job:
    """What a worker process needs; plain data, so it crosses a process boundary."""

    folder: str
    spec: dict
    storage: str | None
    name: str
    threads: int
    workers: int
    backend: str = "local"


def work(job: Job) -> None:
    """Pop and run trials until none waits. Runs in the sweep process, or in each worker process."""
    import torch

    from dlstudy.api import resolve_config
    from dlstudy.sweep.space import load_space

    torch.set_num_threads(job.threads)
    spec = SweepSpec(**job.spec)
    folder = Path(job.folder)
    space = load_space(folder / "space.yaml" if spec.space else None, resolve_config(spec.study))
    study = load_study(spec, open_storage(job.storage, folder, job.workers), job.name, create=False)
    from optuna.trial import TrialState

    while True:
        lock = FolderLock(folder).acquire()
        try:
            recover_lost(study)
            fill_queue(study, spec, space)
            if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                return
            # the objective releases the lock once its trial is popped and its parameters drawn
            study.optimize(lambda trial, lock=lock: objective(trial, spec, space, folder, study=study, lock=lock), n_trials=1,
                           catch=(Exception,))
        finally:
            lock.release()
        if any(t.user_attrs.get("input_error") for t in study.get_trials(deepcopy=False)[-max(job.workers, 2):]):
            return  # bad data or a bad metric: every further trial would fail the same way


def objective(trial, spec: SweepSpec, space: Space, folder: Path, *, study, lock) -> float:
    import optuna

    from dlstudy.api import run_study
    from dlstudy.train import epoch_listener

    try:
        if "config" not in trial.user_attrs:  # another machine popped the last waiting trial first
            trial.set_user_attr("spare", True)
            raise SpareTrial("no queued trial was left for this worker")
        values = {p.key: p.suggest(trial) for p in (*space.grid, *space.params)}
        c, s = pair(trial)
        run_dir = folder / "trials" / f"c{c:03d}-s{s}"
        trial.set_user_attr("run_dir", str(run_dir.relative_to(folder)))
        trial.set_user_attr("values", values)  # as the run got them (lists stay lists), for dashboard readers
        trial.set_user_attr("worker", worker_id())  # last: a trial with a worker has its run_dir
        if space.params and s == 0:
            fill_queue(study, spec, space)  # this configuration's other seeds, with the parameters just drawn
    finally:
        lock.release()
    watched = study_module(spec.study).PRUNE_ON
    step = [0]

    def report(name: str, row: dict) -> None:  # per-epoch values, signed to the study's direction
        if watched[0] not in row:
            return
        value = row[watched[0]] if watched[1] == spec.direction else -row[watched[0]]
        trial.report(value, step[0])
        step[0] += 1
        if trial.should_prune():
            raise Pruned(f"pruned by the {spec.pruner} pruner after {name} epoch {row['epoch']} "
                         f"({watched[0]} {row[watched[0]]:.4g}; step {step[0]} of the trial)")

    started = time.time()
    label = f"trial {trial.number} (config {c}, seed {spec.base_seed + s})"
    try:
        try:
            if is_complete(run_dir):  # finished just before its worker died
                metrics = json.loads((run_dir / "metrics.json").read_text())
            else:
                with heartbeat(study, trial), epoch_listener(report), contextlib.redirect_stdout(io.StringIO()):
                    _, metrics = run_study(spec.study, data=spec.data, out=run_dir, config=spec.config,
                                           sets=[*spec.sets, *(space.param(k).as_set(v) for k, v in values.items())],
                                           seed=spec.base_seed + s, device=spec.device, quick=spec.quick,
                                           resume=read_status(run_dir) is not None)
            value = metric_value(metrics, spec.metric, run_dir)
        finally:
            trial.set_user_attr("seconds", round(time.time() - started, 1))
    except Pruned as exc:
        print(f"sweep: {label} pruned: {exc}", flush=True)
        raise optuna.TrialPruned(str(exc)) from None
    except Exception as exc:
        trial.set_user_attr("error", str(exc)[:500])
        trial.set_user_attr("input_error", isinstance(exc, InputError))
        print(f"sweep: {label} failed: {str(exc)[:300]}", flush=True)
        if not isinstance(exc, InputError):
            log.exception("sweep: %s failed", label)
        raise
    print(f"sweep: {label} complete: {spec.metric} {value:.4f} in {time.time() - started:.0f} s", flush=True)
    return value


class SpareTrial(Exception):
    """A trial Optuna created because the queue emptied between a worker's look and its pop; it is
    marked failed with the attribute 'spare' and left out of every table."""


def metric_value(metrics: dict, key: str, run_dir: Path) -> float:
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        numbers = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        raise InputError(f"{run_dir / 'metrics.json'}: --metric {key} is {'missing' if value is None else 'not a number'}; "
                         f"numbers there: {', '.join(numbers)}")
    return float(value)


def study_module(name: str):
    from dlstudy.api import study_module as lookup

    module = lookup(name)
    if getattr(module, "OBJECTIVE", None) is None:
        raise InputError(f"the {name} study trains nothing to sweep; choose one of the training studies")
    return module


def _worker_main(job: Job, index: int) -> None:
    """A worker process: dies with the sweep process, logs to its own file, prints one line a trial."""
    with contextlib.suppress(Exception):  # Linux: SIGKILL this process when its parent dies
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
    if os.getppid() == 1:
        return
    with worker_log(Path(job.folder) / "logs" / f"worker-{index}.txt"):
        work(job)


@contextlib.contextmanager
def worker_log(path: Path):
    """A worker's own log file (its host named: Ray workers may run anywhere) instead of the terminal."""
    path.parent.mkdir(exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(f"%(asctime)s {socket.gethostname()} %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()


def run_workers(job: Job, *, ray_address: str | None = None, trial_gpus: float = 0) -> None:
    if job.backend == "ray":
        run_on_ray(job, ray_address, trial_gpus)
    elif job.workers == 1:
        work(job)
    else:
        run_processes(job)


def run_processes(job: Job) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
    procs = [ctx.Process(target=_worker_main, args=(job, i), daemon=False) for i in range(job.workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        log.warning("sweep: %d worker process(es) ended with exit codes %s; see %s/logs", len(bad), bad, job.folder)


def import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("--backend ray needs Ray: pip install 'dlstudy[ray]'") from None
    return ray


def _ray_worker(job: Job, index: int) -> None:
    with worker_log(Path(job.folder) / "logs" / f"ray-worker-{index}.txt"):
        work(job)


def run_on_ray(job: Job, address: str | None, trial_gpus: float) -> None:
    """job.workers Ray tasks, each asking for job.threads CPUs and trial_gpus GPUs, each running the
    pop-and-run loop. Ray retries a task whose worker or node died; the retry first recovers the trial
    that was lost with it."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        # log_to_driver: each worker's one line a trial reaches this terminal
        ray.init(address=address, include_dashboard=False, log_to_driver=True, logging_level=logging.WARNING,
                 **({} if address else {"num_cpus": os.cpu_count()}))
    try:
        task = ray.remote(_ray_worker).options(num_cpus=job.threads, num_gpus=trial_gpus, max_retries=MAX_RETRIES)
        ray.get([task.remote(job, i) for i in range(job.workers)])
    finally:
        if started:
            ray.shutdown()


def ray_slots(address: str | None, trial_cpus: int) -> int:
    """How many trials fit at once: the cluster's CPUs (this machine's without an address) per trial."""
    if address is None:
        return max(1, (os.cpu_count() or 1) // trial_cpus)
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    return max(1, int(ray.cluster_resources().get("CPU", 1)) // trial_cpus)


def open_folder(folder: Path, spec: SweepSpec) -> Run:
    """The sweep folder is a run folder of its own (status.json, config.yaml = the sweep's spec). Workers
    started together open it at once: each writes status.json before anything else, and lists the folder
    before reading it, so a folder another worker is opening never looks foreign."""
    # an atomic write's temporary file (runs.atomic_write_bytes) is all a concurrent opener may have left yet
    foreign = folder.exists() and any(not p.name.startswith(f".{STATUS}.") for p in folder.iterdir())
    status = read_status(folder)
    if foreign and status is None:
        raise InputError(f"{folder} is not empty and is no dlstudy sweep; choose another --out")
    if status and status.get("study") != "sweep":
        raise InputError(f"{folder} is a '{status.get('study')}' run, not a sweep; choose another --out")
    if status and status.get("spec") != spec.digest():
        raise InputError(f"{folder} holds a sweep with other settings (see its config.yaml); rerun with the same "
                         "flags, or choose another --out")
    run = Run(folder)
    run.root.mkdir(parents=True, exist_ok=True)
    run._write_status("running", study="sweep", spec=spec.digest(), swept=spec.study)  # first: see above
    run.write_text("config.yaml", dump_yaml(asdict(spec)))
    if spec.space:
        run.write_text("space.yaml", dump_yaml(spec.space))
    return run


