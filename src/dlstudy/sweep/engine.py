"""Sweeps and repeated seeds on Optuna.

A sweep is an Optuna study plus a folder. Each trial is one (configuration, seed) pair and one ordinary
run folder (`trials/c003-s1/`) made by `run_study` with `--set` overrides: no study knows it is swept.

Exactly once: the coordinator enqueues every pair as a WAITING trial (sampled configurations get their
seed copies as soon as their first seed's parameters are drawn), and workers pop WAITING trials under a
lock file in the sweep folder. A trial whose worker died is marked failed and its pair enqueued again;
the retry resumes the same run folder from its last epoch checkpoint. A worker is dead when its pid is
gone (same host) or its heartbeat is stale: Optuna's own on RDB storages (SQLite, PostgreSQL), a
`heartbeat` trial attribute on the journal file, which has none.

Workers are placed by a backend (backends.py: processes of this machine, or Ray tasks) and all run
`work`, the same loop: params, seeds and pruning have one code path, Optuna's.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import statistics
import os
import socket
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dlstudy.config import dump_yaml
from dlstudy.errors import DiskError, InputError, Pruned
from dlstudy.runs import STATUS, Run, is_complete, read_json, read_status
from dlstudy.sweep.pruning import make_pruner, step, warmup
from dlstudy.sweep.space import Space

log = logging.getLogger("dlstudy")

MAX_RETRIES = 3  # a pair whose worker died this often stays failed
HEARTBEAT_S, GRACE_S = 20, 120  # a running trial unheard of for GRACE_S seconds has lost its worker


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
def check_storage(url: str | None, writers: int) -> None:
    """Refuse a storage that cannot work before anything is created (`writers`: processes writing at once)."""
    if url is None:
        return
    if url.startswith("journal:"):
        if not url[len("journal:") :].strip():
            raise InputError(f"--storage {url}: name the journal file, e.g. journal:/shared/sweeps/study.journal")
        return
    if url.startswith("sqlite:"):
        if not url.startswith("sqlite:///") or not url[len("sqlite:///") :].strip():
            raise InputError(
                f"--storage {url}: name the database file, e.g. sqlite:///sweep.db (or sqlite:////abs/path.db)"
            )
        if writers > 1:
            raise InputError(
                f"--storage {url}: SQLite is refused for more than one worker (one file lock serialises "
                "every writer, and Optuna's FAQ warns against concurrent use); use the default journal "
                "file or postgresql://"
            )
        return
    if url.startswith(("postgresql:", "postgres:")):
        try:
            import psycopg
        except ImportError:
            raise InputError(
                f"--storage {redacted(url)}: PostgreSQL needs a driver: pip install 'dlstudy[postgres]'"
            ) from None
        try:  # connect once now, so an unreachable server is one line before anything is created
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())[:200]
            raise InputError(
                f"--storage {redacted(url)}: cannot connect to PostgreSQL ({reason}); check that the "
                "server runs at that host and port and accepts this user and database"
            ) from None
        return
    raise InputError(f"--storage {redacted(url)}: use journal:PATH, sqlite:///FILE or postgresql://user@host/db")


def redacted(url: str) -> str:
    """A storage URL for messages, its password (user:PASSWORD@host) hidden."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not (sep and at and ":" in credentials):
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def open_storage(url: str | None, folder: Path):
    """The Optuna storage (its URL passed check_storage): by default a journal file in the sweep folder,
    safe for several processes."""
    import optuna

    path = journal_path(url, folder)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    import sqlalchemy.exc

    options = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S}
    if not url.startswith("sqlite:"):
        url, options["engine_kwargs"] = "postgresql+psycopg:" + url.split(":", 1)[1], {"pool_pre_ping": True}
    try:
        with warnings.catch_warnings():  # Optuna 5 flags the heartbeat as experimental: noise on a terminal
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, **options)
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise InputError(f"--storage {redacted(url)}: the database refused Optuna's tables ({reason})") from None


def journal_path(url: str | None, folder: Path) -> Path | None:
    """The journal file of a journal storage (by default in the sweep folder); None for a database."""
    if url is None:
        return folder / "optuna.journal"
    return Path(url[len("journal:") :]).expanduser() if url.startswith("journal:") else None


def check_journal(path: Path | None, flag: str = "--out") -> None:
    """Before a sweep opens its folder: a journal's last line cut short (a kill during an append) is
    dropped, under Optuna's own journal lock so that no append is in flight; any other line that is not an
    Optuna log entry means the file is damaged or no journal at all, and is refused, naming the file. `flag`: the
    one that chose the file (--storage, or --out for the sweep folder's own journal), the one a fix changes."""
    from optuna.storages.journal import JournalFileSymlinkLock

    if path is None or not path.exists():
        return
    if not path.is_file():
        raise InputError(f"{flag} {path}: the journal is not a file; choose another {flag}")
    lock = JournalFileSymlinkLock(str(path))
    try:
        lock.acquire()
    except OSError as exc:  # Optuna's lock is a symbolic link beside the file: a read-only folder refuses it
        raise InputError(f"--storage {path}: cannot lock the journal ({exc.strerror}); give a writable --out") from None
    try:
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1  # past the last whole line
        for number, line in enumerate(data[:cut].splitlines(), start=1):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not isinstance(entry, dict) or "op_code" not in entry:
                raise InputError(
                    f"{path}: line {number} is not an Optuna journal entry, so the file is damaged or no "
                    f"journal; move it aside to start afresh, or choose another {flag}"
                )
        if cut < len(data):
            log.warning("sweep: %s ended in a line cut short (a writer was killed); it is dropped", path)
            with open(path, "r+b") as f:
                f.truncate(cut)
    finally:
        lock.release()


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


def load_study(spec: SweepSpec, storage, name: str, *, create: bool):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # dlstudy prints one line a trial instead
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler = optuna.samplers.TPESampler(seed=spec.base_seed)
    if create:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=spec.direction,
            sampler=sampler,
            pruner=make_pruner(spec.pruner),
            load_if_exists=True,
        )
        saved = study.user_attrs.get("spec")
        if saved is None:
            study.set_user_attr("spec", asdict(spec))
        elif saved != json.loads(json.dumps(asdict(spec))):
            differ = sorted(k for k in saved if saved.get(k) != json.loads(json.dumps(asdict(spec))).get(k))
            raise InputError(
                f"study '{name}' in this storage was made with other settings ({', '.join(differ)}); "
                "rerun with the same flags, or choose another --name"
            )
        return study
    return optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=make_pruner(spec.pruner))


# the queue ---------------------------------------------------------------------------------------
def pair(trial) -> tuple[int, int]:
    return trial.user_attrs["config"], trial.user_attrs["seed_index"]


def fill_queue(study, spec: SweepSpec, space: Space, *, retry_failed: bool = False) -> int:
    """Enqueue every (configuration, seed) pair that has no trial that is waiting, running, finished,
    or (unless `retry_failed`: a rerun of the sweep) failed for a reason of its own; returns how many
    were enqueued. A retry resumes the pair's run folder. Call under FolderLock."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    taken, lost, params_of = set(), {}, {}
    for t in trials:
        if "config" not in t.user_attrs:
            continue
        key = pair(t)
        if t.state == TrialState.FAIL and "error" not in t.user_attrs:
            lost[key] = lost.get(key, 0) + 1  # its worker died: retry, up to MAX_RETRIES
        elif t.state == TrialState.FAIL and retry_failed:
            lost.setdefault(key, 0)  # a full disk, a fixed bug: the user reran the sweep to try again
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
            params = params_of.get(c) or {
                p.key: p.choices()[p.values.index(v)]
                for p, v in ((space.param(k), v) for k, v in combos[c % len(combos)].items())
            }
            attrs = {"config": c, "seed_index": s, "seed": spec.base_seed + s}
            if key in lost:
                attrs["retry"] = lost[key] or 1
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
    """Host, pid and the pid's start time; under Ray also the node, since several nodes can share a host."""
    me = {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start(os.getpid())}
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        me["node"] = ray.get_runtime_context().get_node_id()
    return me


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
        study._storage.set_trial_user_attr(
            t._trial_id, "lost", f"worker {w.get('pid')} on {w.get('host')} died during the trial"
        )
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
    deadline: float | None = None  # the sweep's --budget as a wall-clock time: later trials that would not fit wait


def work(job: Job) -> None:
    """Pop and run trials until none waits. Runs in the sweep process, or in each worker process."""
    import torch

    from dlstudy.api import resolve_config
    from dlstudy.sweep.space import load_space

    torch.set_num_threads(job.threads)
    spec = SweepSpec(**job.spec)
    folder = Path(job.folder)
    space = load_space(folder / "space.yaml" if spec.space else None, resolve_config(spec.study))
    study = load_study(spec, open_storage(job.storage, folder), job.name, create=False)
    from optuna.trial import TrialState

    while True:
        lock = FolderLock(folder).acquire()
        try:
            recover_lost(study)
            fill_queue(study, spec, space)
            if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                return
            if job.deadline is not None and not fits(study, job.deadline):
                return
            # the objective releases the lock once its trial is popped and its parameters drawn
            study.optimize(
                lambda trial, lock=lock: objective(trial, spec, space, folder, study=study, lock=lock),
                n_trials=1,
                catch=(Exception,),
            )
        finally:
            lock.release()
        if any(t.user_attrs.get("stops_sweep") for t in study.get_trials(deepcopy=False)[-max(job.workers, 2) :]):
            return  # bad data, a bad metric, a full disk: every further trial would fail the same way


def trial_seconds(study) -> float | None:
    """The median wall time of the finished trials (complete or pruned), or None before any finished."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    seconds = [t.user_attrs["seconds"] for t in done if "seconds" in t.user_attrs]
    return statistics.median(seconds) if seconds else None


def fits(study, deadline: float) -> bool:
    """Whether one more trial, as long as the median finished one, ends before the deadline (the first starts)."""
    seconds = trial_seconds(study)
    if seconds is None or time.time() + seconds <= deadline:
        return True
    log.info(
        "sweep: a trial takes about %.0f s, %.0f s of the budget are left: no further trial starts",
        seconds,
        deadline - time.time(),
    )
    return False


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
    report = pruning_reporter(trial, spec)
    started = time.time()
    label = f"trial {trial.number} (config {c}, seed {spec.base_seed + s})"
    try:
        try:
            if is_complete(run_dir):  # finished just before its worker died
                metrics = read_json(run_dir / "metrics.json")
            else:
                with heartbeat(study, trial), epoch_listener(report), contextlib.redirect_stdout(io.StringIO()):
                    _, metrics = run_study(
                        spec.study,
                        data=spec.data,
                        out=run_dir,
                        config=spec.config,
                        sets=[*spec.sets, *(space.param(k).as_set(v) for k, v in values.items())],
                        seed=spec.base_seed + s,
                        device=spec.device,
                        quick=spec.quick,
                        resume=read_status(run_dir) is not None,
                        sweep=str(folder),
                    )
            value = metric_value(metrics, spec.metric, run_dir)
        finally:
            trial.set_user_attr("seconds", round(time.time() - started, 1))
    except Pruned as exc:
        print(f"sweep: {label} pruned: {exc}", flush=True)
        raise optuna.TrialPruned(str(exc)) from None
    except Exception as exc:
        said = exc.strerror if isinstance(exc, DiskError) else str(exc)
        if not isinstance(exc, (InputError, DiskError)):  # a bug's message can be empty: its type still says much
            said = f"{type(exc).__name__}: {said}" if said else type(exc).__name__
        trial.set_user_attr("error", said[:500])
        trial.set_user_attr("stops_sweep", isinstance(exc, (InputError, DiskError)))
        trial.set_user_attr("disk_error", isinstance(exc, DiskError))
        print(f"sweep: {label} failed: {said[:300]}", flush=True)
        if not isinstance(exc, (InputError, DiskError)):  # the two say all in one line; anything else is a bug
            log.exception("sweep: %s failed", label)
        raise
    print(f"sweep: {label} complete: {spec.metric} {value:.4f} in {time.time() - started:.0f} s", flush=True)
    return value


def pruning_reporter(trial, spec: SweepSpec):
    """An epoch listener that reports each model's per-epoch value to the trial, signed to the study's
    direction, and stops the run when the pruner says so."""
    watched = study_module(spec.study).PRUNE_ON

    def report(name: str, row: dict, epochs: int) -> None:
        if watched[0] not in row:
            return
        value = row[watched[0]] if watched[1] == spec.direction else -row[watched[0]]
        trial.report(value, step(name, row["epoch"]))  # each model its own steps: compared like with like
        if row["epoch"] >= warmup(epochs) and trial.should_prune():
            raise Pruned(
                f"pruned by the {spec.pruner} pruner after {name} epoch {row['epoch']} of {epochs} "
                f"({watched[0]} {row[watched[0]]:.4g}, worse than the median of the finished trials there)"
            )

    return report


class SpareTrial(Exception):
    """A trial Optuna created because the queue emptied between a worker's look and its pop; it is
    marked failed with the attribute 'spare' and left out of every table."""


def metric_value(metrics: dict, key: str, run_dir: Path) -> float:
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        numbers = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        raise InputError(
            f"{run_dir / 'metrics.json'}: --metric {key} is {'missing' if value is None else 'not a number'}; "
            f"numbers there: {', '.join(numbers)}"
        )
    return float(value)


def study_module(name: str):
    from dlstudy.api import study_module as lookup

    module = lookup(name)
    if getattr(module, "OBJECTIVE", None) is None:
        raise InputError(f"the {name} study trains nothing to sweep; choose one of the training studies")
    return module


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
        raise InputError(
            f"{folder} holds a sweep with other settings (see its config.yaml); rerun with the same "
            "flags, or choose another --out"
        )
    run = Run(folder)
    try:  # status.json is the first file (see above); a reason left by an earlier stop no longer holds
        run.root.mkdir(parents=True, exist_ok=True)
        run._write_status("running", study="sweep", spec=spec.digest(), swept=spec.study, reason=None)
    except OSError as exc:  # a read-only mount, a file in the way, no permission
        raise InputError(
            f"--out {folder}: cannot write the sweep folder ({exc.strerror}); choose another --out"
        ) from None
    run.write_text("config.yaml", dump_yaml(asdict(spec)))
    if spec.space:
        run.write_text("space.yaml", dump_yaml(spec.space))
    return run
