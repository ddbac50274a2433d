"""Where a sweep's workers run. A backend only places workers; each worker runs the same take-a-trial
loop (engine.work), so parameters, seeds, pruning and retries have one code path, Optuna's.

A backend is made before anything is created: `connect` checks that it can work (Ray reachable, the
extra installed) and says how many workers and threads per trial; `start`, `wait` and `stop` run them.
A new backend is one class here and one row of BACKENDS.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import ClassVar, Protocol

from dlstudy.errors import InputError
from dlstudy.sweep.engine import MAX_RETRIES, Job, work

log = logging.getLogger("dlstudy")


class Backend(Protocol):
    help: ClassVar[str]  # one line for --help

    def connect(self, workers: int | None) -> tuple[int, int]:
        """Check the backend can run (InputError if not); return (workers, CPU threads per trial)."""

    def writers(self, workers: int) -> int:
        """Processes that write the study at once (SQLite takes one)."""

    def start(self, job: Job) -> None: ...

    def wait(self) -> None:
        """Until every worker has ended."""

    def stop(self) -> None:
        """End what is left (idempotent)."""


class LocalBackend:
    """Worker processes on this machine; one worker runs in this process."""

    help = "worker processes on this machine"

    def __init__(self, *, address: str | None = None, trial_cpus: int | None = None, trial_gpus: float = 0):
        self.address, self.trial_cpus, self.trial_gpus = address, trial_cpus, trial_gpus
        self.job, self.procs = None, []

    def connect(self, workers: int | None) -> tuple[int, int]:
        if self.address or self.trial_gpus:
            raise InputError("--ray-address and --trial-gpus need --backend ray")
        cores = os.cpu_count() or 1
        if (workers or 1) > cores:  # each worker is a process training a model: more than cores only thrash
            raise InputError(
                f"--workers {workers}: this machine has {cores} cores; use at most {cores}, or --backend ray "
                "to spread trials over several machines"
            )
        workers = workers or 1
        return workers, self.trial_cpus or max(1, cores // workers)

    def writers(self, workers: int) -> int:
        return workers  # one worker runs in this process; more run while this one waits

    def start(self, job: Job) -> None:
        import multiprocessing

        self.job = job
        if job.workers == 1:
            return  # wait() runs the one worker here
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
        self.procs = [ctx.Process(target=_worker_main, args=(job, i), daemon=False) for i in range(job.workers)]
        for p in self.procs:
            p.start()

    def wait(self) -> None:
        if not self.procs:
            work(self.job)
            return
        for p in self.procs:
            p.join()
        bad = [p.exitcode for p in self.procs if p.exitcode]
        if bad:
            log.warning(
                "sweep: %d worker process(es) ended with exit codes %s; see %s/logs", len(bad), bad, self.job.folder
            )

    def stop(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.kill()


class RayBackend:
    """Ray tasks, each asking for the trial's CPUs and GPUs. Ray retries a task whose worker or node died;
    the retry first recovers the trial that was lost with it, which resumes its run folder."""

    help = "Ray tasks on a cluster (pip install 'dlstudy[ray]')"

    def __init__(self, *, address: str | None = None, trial_cpus: int | None = None, trial_gpus: float = 0):
        self.address, self.trial_cpus, self.trial_gpus = address, trial_cpus, trial_gpus
        self.started, self.pending = False, []

    def connect(self, workers: int | None) -> tuple[int, int]:
        ray = import_ray()
        if self.address:
            reachable(self.address)
        if not ray.is_initialized():
            try:  # log_to_driver: each worker's one line a trial reaches this terminal
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=True,
                    logging_level=logging.WARNING,
                    **({} if self.address else {"num_cpus": os.cpu_count()}),
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise InputError(
                    f"--ray-address {self.address}: Ray did not connect ({one_line(exc)}); check that "
                    "`ray start --head` runs there and this machine has the same Ray version"
                ) from None
            self.started = True
        threads = self.trial_cpus or 1
        slots = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        if workers is not None and workers > slots:
            raise InputError(
                f"--workers {workers}: the Ray cluster's CPUs hold {slots} trial(s) at once at --trial-cpus "
                f"{threads}; use at most {slots}, or add nodes"
            )
        return workers or slots, threads

    def writers(self, workers: int) -> int:
        return workers + 1  # the tasks, and this driver, which queues the trials

    def start(self, job: Job) -> None:
        ray = import_ray()
        task = ray.remote(_ray_worker).options(num_cpus=job.threads, num_gpus=self.trial_gpus, max_retries=MAX_RETRIES)
        self.pending = [task.remote(job, i) for i in range(job.workers)]

    def wait(self) -> None:
        import_ray().get(self.pending)

    def stop(self) -> None:
        if self.started:
            import_ray().shutdown()
            self.started = False


# name -> backend: the CLI's --backend choices and their help come from here
BACKENDS: dict[str, type[Backend]] = {"local": LocalBackend, "ray": RayBackend}


def make_backend(name: str, **options) -> Backend:
    if name not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, not '{name}'")
    return BACKENDS[name](**options)


def import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("--backend ray needs Ray: pip install 'dlstudy[ray]'") from None
    return ray


def reachable(address: str) -> None:
    """A host:port (or ray://host:port) address answers a TCP connection within seconds; 'auto' and
    'local' are Ray's own lookups and are left to ray.init."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InputError(f"--ray-address {address}: give HOST:PORT of the head node (e.g. 10.0.0.5:6379), or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise InputError(
            f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); start the cluster "
            "with `ray start --head` on that machine, or leave --ray-address out to start Ray here"
        ) from None


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def _worker_main(job: Job, index: int) -> None:
    """A local worker process: dies with the sweep process, logs to its own file, prints one line a trial."""
    with contextlib.suppress(Exception):  # Linux: SIGKILL this process when its parent dies
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
    if os.getppid() == 1:
        return
    with worker_log(Path(job.folder) / "logs" / f"worker-{index}.txt"):
        work(job)


def _ray_worker(job: Job, index: int) -> None:
    with worker_log(Path(job.folder) / "logs" / f"ray-worker-{index}.txt"):
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
