"""`dlstudy sweep` and `dlstudy STUDY --seeds K`: grids, sampled spaces and repeated seeds on Optuna.
Read engine.py for how trials run exactly once, results.py for what a sweep folder holds."""

from __future__ import annotations

import errno
import logging
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from dlstudy.budget import seconds_of
from dlstudy.config import MAX_SEED, format_duration, load_yaml
from dlstudy.errors import DiskError, InputError, readable
from dlstudy.runs import apart_from_inputs
from dlstudy.sweep.backends import Backend, make_backend
from dlstudy.sweep.engine import (
    FolderLock,
    Job,
    SweepSpec,
    check_journal,
    check_storage,
    fill_queue,
    journal_path,
    load_study,
    open_folder,
    open_storage,
    recover_lost,
    study_module,
    trial_seconds,
)
from dlstudy.sweep.pruning import PRUNERS
from dlstudy.sweep.results import seeds_only, summarize, trials_frame, write
from dlstudy.sweep.seeds import write_seeds_report
from dlstudy.sweep.space import MAX_GRID, load_space

log = logging.getLogger("dlstudy")

MAX_TRIALS = MAX_GRID  # configurations, and seeds of each: more is a typo, not a plan


def sweep(
    study: str,
    *,
    space: str | Path | None = None,
    trials: int | None = None,
    seeds: int = 1,
    workers: int | None = None,
    storage: str | None = None,
    name: str | None = None,
    out: str | Path | None = None,
    metric: str | None = None,
    direction: str | None = None,
    pruner: str | None = None,
    data: str | Path | None = None,
    config: str | Path | None = None,
    sets=(),
    seed: int | None = None,
    quick: bool = False,
    device: str | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    trial_cpus: int | None = None,
    trial_gpus: float = 0,
    resume: bool = False,
    budget: str | float | None = None,
) -> tuple[dict | None, pd.DataFrame]:
    """Run (or continue) a sweep; returns the best configuration's resolved config and the trials table
    (its attrs["folder"] is the sweep folder). Rerunning the same call continues the same study:
    finished trials are never run again. Several calls (processes, machines) may share one storage. `budget`: the
    sweep's wall time (seconds, or '2h'): a trial that would not end within it is not started, and the report says so."""
    from dlstudy.api import check, input_paths, resolve_config

    seconds = seconds_of(budget)
    deadline = time.time() + seconds if seconds else None
    module = study_module(study)
    flags = {"seed": seed} if seed is not None else {}
    cfg = check(study, resolve_config(study, config=config, sets=sets, quick=quick, flags=flags))
    parsed = load_space(space, cfg, check=lambda c: check(study, c))
    spec = make_spec(
        study,
        module,
        parsed,
        cfg,
        trials=trials,
        seeds=seeds,
        metric=metric,
        direction=direction,
        pruner=pruner,
        data=data,
        config=config,
        sets=sets,
        quick=quick,
        device=device,
    )
    check_shared_out(out, ray_address)  # before any connection
    if data is not None:  # refused before the sweep folder exists: a pipe, a device, a missing file
        readable(data, "--data", folder=True)
    if out is not None:
        apart_from_inputs(out, "--out", {**input_paths(cfg), **({"--data": data} if data is not None else {})})
    runner = make_backend(backend, address=ray_address, trial_cpus=trial_cpus, trial_gpus=trial_gpus)
    name = name or f"{study}-{Path(space).stem if space else 'seeds'}-{spec.digest()}"
    placed = dict(workers=workers, trial_cpus=trial_cpus, trial_gpus=trial_gpus, storage=storage)
    run, optuna_study = run_trials(runner, spec, parsed, name=name, out=out, resume=resume, deadline=deadline, **placed)
    return finish(run, optuna_study, parsed, spec, budget=seconds)


def check_shared_out(out, ray_address: str | None) -> None:
    """A remote Ray cluster's workers write the sweep folder: it must be an absolute path they all share."""
    if ray_address and (out is None or not Path(out).is_absolute()):
        raise InputError(
            f"--out {out or '(none)'}: with a remote --ray-address, give an absolute path on storage every node shares"
        )


def run_trials(
    runner: Backend,
    spec: SweepSpec,
    parsed,
    *,
    name: str,
    out,
    resume: bool,
    deadline: float | None,
    workers: int | None,
    trial_cpus: int | None,
    trial_gpus: float,
    storage: str | None,
):
    """Connect the backend, open the sweep folder and its study, and run the workers to the end: (run, study).
    Connecting comes first: an unreachable Ray or database is one line, with nothing created."""
    try:
        workers, threads = placement(runner, workers, trial_cpus=trial_cpus, trial_gpus=trial_gpus, storage=storage)
        run, optuna_study = open_sweep(spec, parsed, name=name, out=out, storage=storage, resume=resume)
        log.info(
            "sweep: %s, %d configuration(s) x %d seed(s), %d worker(s); folder %s",
            spec.study,
            spec.trials,
            spec.seeds,
            workers,
            run.root,
        )
        job = Job(
            folder=str(run.root), spec=spec.__dict__, storage=storage, name=name, threads=threads, workers=workers
        )
        runner.start(replace(job, deadline=deadline))
        runner.wait()
    finally:
        runner.stop()
    return run, optuna_study


def open_sweep(spec: SweepSpec, parsed, *, name: str, out, storage: str | None, resume: bool):
    """The sweep folder (made, or checked to be this sweep's) and its Optuna study with every (cell, seed)
    queued: trials lost with a dead worker, and failed ones, are queued again."""
    folder = (Path(out) if out else Path("runs") / "sweep" / name).resolve()
    if resume and not (folder / "status.json").exists():
        raise InputError(f"--resume: no sweep to continue in {folder}; run it without --resume, with the same flags")
    check_journal(journal_path(storage, folder), "--out" if storage is None else "--storage")
    run = open_folder(folder, spec)
    optuna_study = load_study(spec, open_storage(storage, folder), name, create=True)
    lock = FolderLock(folder).acquire()
    try:
        recover_lost(optuna_study)
        fill_queue(optuna_study, spec, parsed, retry_failed=True)
    finally:
        lock.release()
    return run, optuna_study


def finish(
    run, optuna_study, parsed, spec: SweepSpec, *, budget: float | None = None
) -> tuple[dict | None, pd.DataFrame]:
    """Write the sweep's tables and report; mark it complete when every trial ended (complete or pruned)."""
    folder = run.root
    frame = trials_frame(optuna_study, parsed)
    frame.attrs["folder"] = str(folder)
    summary = summarize(frame, parsed, spec)
    waiting = int((frame["state"] == "waiting").sum())
    if budget is not None:
        summary.update(budget_seconds=budget, n_not_started=waiting, trial_seconds=trial_seconds(optuna_study))
    write(run, optuna_study, parsed, spec, trials=frame, summary=summary)
    done = frame.loc[frame["state"] == "complete"].sort_values("seed")
    if seeds_only(parsed) and len(done):
        write_seeds_report(run, study_module(spec.study), [run.root / d for d in done["run_dir"]])
    running = int((frame["state"] == "running").sum())
    if running:  # other processes sharing the storage are still at work: the last one to finish reports
        log.warning(
            "sweep: %d trial(s) still run in other processes; the last one to finish completes %s", running, folder
        )
        return None, frame
    if budget is not None and waiting:  # not a failure: the budget ran out; the same command runs the rest
        run.fail(
            f"the budget of {format_duration(budget)} left {waiting} trial(s) not started (a trial took about "
            f"{format_duration(summary['trial_seconds'])}); rerun the same command with --resume to run them"
        )
        return best_config(folder, frame, summary), frame
    unfinished = spec.trials * spec.seeds - summary["n_complete"] - summary["n_pruned"] - summary["n_failed"]
    errors = frame.loc[frame["state"] == "failed", "reason"].dropna()
    if unfinished or (summary["n_complete"] == 0 and len(errors)):
        reason = errors.iloc[-1] if len(errors) else f"{unfinished} trial(s) did not run"
        run.fail(reason)
        message = f"sweep {folder}: stopped with {unfinished} trial(s) not run: {reason}"
        if any(t.user_attrs.get("disk_error") for t in optuna_study.get_trials(deepcopy=False)):
            raise DiskError(errno.ENOSPC, message)  # exit 1, like a full disk in a single run
        raise InputError(message)
    if summary["n_failed"]:  # complete means every trial complete or pruned; a rerun retries the failed ones
        run.fail(
            f"{summary['n_failed']} trial(s) failed, the last: {errors.iloc[-1] if len(errors) else 'its worker died'}; "
            "rerun the same command to retry them"
        )
    else:
        run.complete(summary)
    return best_config(folder, frame, summary), frame


def best_config(folder: Path, frame: pd.DataFrame, summary: dict) -> dict | None:
    """The resolved config of the best configuration's first complete trial."""
    best_dir = frame.loc[(frame["config"] == summary["best_config"]) & (frame["state"] == "complete"), "run_dir"]
    return load_yaml(folder / best_dir.iloc[0] / "config.yaml") if len(best_dir) else None


def placement(
    runner: Backend, workers: int | None, *, trial_cpus: int | None, trial_gpus: float, storage: str | None
) -> tuple[int, int]:
    """(workers, CPU threads per trial), checked (and the backend and storage reached) before anything is created."""
    if (trial_cpus is not None and trial_cpus < 1) or trial_gpus < 0:
        raise InputError("--trial-cpus must be at least 1 and --trial-gpus at least 0")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    workers, threads = runner.connect(workers)
    check_storage(storage, runner.writers(workers))
    return workers, threads


def make_spec(
    study, module, space, cfg, *, trials, seeds, metric, direction, pruner, data, config, sets, quick, device
) -> SweepSpec:
    combos = len(space.combinations())
    if trials is None:
        trials = combos if not space.params else max(combos, 20)
    if not (1 <= trials <= MAX_TRIALS and 1 <= seeds <= MAX_TRIALS):
        raise InputError(f"--trials and --seeds must lie in 1..{MAX_TRIALS:,}, got {trials} and {seeds}")
    if cfg.seed + seeds - 1 > MAX_SEED:
        raise InputError(
            f"--seed {cfg.seed} with --seeds {seeds} passes {MAX_SEED}, the largest seed every generator "
            "takes; choose a smaller --seed"
        )
    if not space.params and trials > combos:
        raise InputError(
            f"--trials {trials}: the grid has only {combos} combination(s); add keys under params: to sample more"
        )
    if metric is None:
        metric, default_direction = module.OBJECTIVE
        direction = direction or default_direction
    elif metric not in module.METRICS:  # checked now, not after a whole trial
        raise InputError(
            f"--metric {metric}: the {study} study writes no such number; choose one of {', '.join(module.METRICS)}"
        )
    elif direction is None:
        raise InputError(f"--metric {metric}: say whether to --direction maximize or minimize it")
    if direction not in ("maximize", "minimize"):
        raise InputError(f"--direction must be maximize or minimize, not '{direction}'")
    # a grid is written to see every cell, and seeds of one configuration must not prune each other:
    # pruning is the default only for a sampled space with one seed
    pruner = pruner or ("median" if space.params and seeds == 1 else "none")
    if pruner not in PRUNERS:
        raise InputError(f"--pruner must be one of {', '.join(PRUNERS)}, not '{pruner}'")
    if data is not None and not Path(data).exists():
        raise InputError(f"--data {data} does not exist; give the data file or folder")
    return SweepSpec(
        study=study,
        space=space.text,
        trials=trials,
        seeds=seeds,
        base_seed=cfg.seed,
        metric=metric,
        direction=direction,
        pruner=pruner,
        data=None if data is None else str(Path(data).resolve()),
        config=None if config is None else str(Path(config).resolve()),
        sets=list(sets),
        quick=quick,
        device=device,
    )
