"""`dlstudy`: one subcommand per study, `run all`, `predict`, `sweep` and `compare`.

Exit codes: 0 success, 2 bad input or usage (one line on stderr, no traceback), 1 unexpected.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

from dlstudy.budget import seconds_of
from dlstudy.config import format_duration
from dlstudy.errors import DiskError, InputError, one_line
from dlstudy.train import epoch_listener

log = logging.getLogger("dlstudy")


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, instead of argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_common(
    p: argparse.ArgumentParser,
    keys=("data", "device", "tensorboard"),
    *,
    out_help: str = "the run folder (default: runs/<study>/<timestamp>)",
    quick_help: str = "a reduced setting that finishes in about a minute",
) -> None:
    """The flags every study shares; `keys` drops those a study has no config key for."""
    if "data" in keys:
        p.add_argument(
            "--data", metavar="PATH", help="data file or folder (default: a small data set that ships offline)"
        )
    p.add_argument("--out", metavar="DIR", help=out_help)
    p.add_argument("--config", metavar="FILE.yaml", help="YAML file of config overrides")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, dots for nesting (repeatable)",
    )
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    if "device" in keys:
        p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (default auto)")
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in --out (or the newest one)")
    if "tensorboard" in keys:
        p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files")


def add_budget(p: argparse.ArgumentParser, about: str, *, dest: str = "budget") -> None:
    p.add_argument("--budget", dest=dest, metavar="DURATION", help=about)


def build_parser() -> argparse.ArgumentParser:
    from dlstudy import __version__
    from dlstudy.studies import STUDIES

    parser = Parser(
        prog="dlstudy",
        description="Classic deep-learning course experiments as reusable pipelines: "
        "each study runs end to end on real data and writes a run folder with an HTML report.",
    )
    parser.add_argument("--version", action="version", version=f"dlstudy {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also each epoch's line on stderr (always in log.txt)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    add_study_parsers(sub, STUDIES)
    add_run_parser(sub)
    add_predict_parser(sub)
    add_sweep_parser(sub, [n for n, m in STUDIES.items() if m.OBJECTIVE is not None])
    add_compare_parser(sub)
    return parser


def add_study_parsers(sub, studies: dict) -> None:
    for name, module in studies.items():
        p = sub.add_parser(name, help=module.TITLE, description=module.TITLE)
        add_common(p, keys=module.Config.model_fields)
        p.add_argument(
            "--schema",
            action="store_true",
            help="print the config's JSON Schema (every key: type, default, range, what it does) and exit",
        )
        if "budget" in module.Config.model_fields:
            full, quick = module.Config().budget, module.QUICK.get("budget")
            add_budget(
                p,
                "the run's wall time, e.g. 90s, 20m, 1.5h: epochs planned from the step time measured here, the report "
                f"included (default {format_duration(full) if full else 'none'}"
                + (f", --quick {format_duration(quick)}" if quick else "")
                + "; an explicit --epochs wins)",
            )
        module.add_arguments(p)
        if module.OBJECTIVE is not None:
            p.add_argument(
                "--seeds",
                type=int,
                metavar="K",
                help="run K seeds (seed, seed+1, ...) as a sweep and report mean, sd and a 95%% interval",
            )


def add_run_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run every study and write an index page",
        description="Run every study on its offline default data, one after another, and write an "
        "index page linking their reports. By default each study runs its tour setting "
        "(its --quick grid: minutes); --full runs the full grids (about an hour on 2 cores).",
    )
    p.add_argument("what", choices=["all"], help="'all': every study")
    add_common(
        p,
        keys=("device", "tensorboard"),
        out_help="the folder for all studies (default: runs/all/<timestamp>)",
        quick_help="the tour setting (the default for run all)",
    )
    p.add_argument("--full", action="store_true", help="the studies' full default grids instead of the tour")
    add_budget(p, "the wall time of all studies together (90s, 20m, 1.5h), shared by their own budgets' weights")
    p.add_argument("--seeds", type=int, metavar="K", help="each trained study with K seeds: its report over the seeds")


def add_predict_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="apply a finished run to new data",
        description="Apply the model of a finished run to new data and write a CSV of predictions "
        "(scores, where there are labels).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder, as a study wrote it (with status.json)")
    p.add_argument(
        "--data",
        required=True,
        metavar="PATH",
        help="new data in any format the study reads (a CSV of case counts for trend; images, .npy, "
        ".npz or an image folder for the others)",
    )
    p.add_argument("--labels", metavar="PATH", help="labels for the new data, to print accuracy")
    p.add_argument("--out", metavar="FILE.csv", help="where to write predictions (default RUN_DIR/predict/<data>.csv)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")


def add_compare_parser(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="runs of one study side by side in one HTML page",
        description="Runs of one study side by side: the config keys that differ, headline metrics, "
        "best and last epochs, learning curves overlaid.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", metavar="FILE.html", help="the page to write (default runs/compare/<timestamp>.html)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")


SWEEP_BUDGET = (
    "the sweep's wall time (90s, 20m, 1.5h): a trial that would not end within it is not started (each trial also "
    "keeps to its study's own budget)"
)


def add_sweep_parser(sub, studies: list[str]) -> None:
    from dlstudy.sweep.backends import BACKENDS
    from dlstudy.sweep.pruning import PRUNERS

    p = sub.add_parser(
        "sweep",
        help="a grid or sampled sweep, with seeds, on Optuna",
        description="Run a study over a search space (grid: every combination; params: sampled by "
        "Optuna's TPE) and/or several seeds. Each trial is an ordinary run folder. Rerun "
        "the same command to continue a stopped sweep.",
    )
    p.add_argument("study", choices=studies)
    p.add_argument("--space", metavar="SPACE.yaml", help="the search space (grid: and/or params:); none: seeds only")
    p.add_argument("--trials", type=int, metavar="N", help="configurations to run (default: every grid combination)")
    p.add_argument("--seeds", type=int, default=1, metavar="K", help="seeds per configuration (default 1)")
    p.add_argument(
        "--workers",
        type=int,
        metavar="W",
        help="trials at once (default 1 here; with --backend ray, as many as the cluster's CPUs allow)",
    )
    p.add_argument(
        "--backend",
        choices=list(BACKENDS),
        default="local",
        help="; ".join(f"{name}: {b.help}" for name, b in BACKENDS.items()),
    )
    p.add_argument("--ray-address", metavar="ADDR", help="a running Ray cluster (default: start Ray on this machine)")
    p.add_argument(
        "--trial-cpus", type=int, metavar="N", help="CPU threads each trial asks for (default: cores / workers)"
    )
    p.add_argument("--trial-gpus", type=float, default=0, metavar="N", help="GPUs each Ray trial asks for (default 0)")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="journal:PATH (default: a journal file in the sweep folder), sqlite:///FILE or postgresql://user@host/db",
    )
    p.add_argument("--name", help="the Optuna study name (default: study, space file and a hash of the settings)")
    p.add_argument("--out", metavar="DIR", help="the sweep folder (default runs/sweep/<name>)")
    p.add_argument(
        "--metric", metavar="KEY", help="a number in the runs' metrics.json (default: the study's honest score)"
    )
    p.add_argument("--direction", choices=["maximize", "minimize"])
    p.add_argument(
        "--pruner",
        choices=list(PRUNERS),
        help="; ".join(f"{name}: {text}" for name, (_, text) in PRUNERS.items())
        + " (default: median for a sampled params: space with one seed, else none: a grid keeps every cell)",
    )
    p.add_argument("--data", metavar="PATH")
    p.add_argument("--config", metavar="FILE.yaml")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--seed", type=int, help="the first seed (default: the config's, 0)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--resume", action="store_true", help="continue the sweep in --out (rerunning the same command does the same)"
    )
    add_budget(p, SWEEP_BUDGET, dest="sweep_budget")


def run_sweep(args, **given) -> int:
    from dlstudy.sweep import sweep

    for handler in log.handlers:  # one line a trial on the terminal; each trial's log.txt has the rest
        if getattr(handler, "dlstudy_cli", False):
            handler.setLevel(logging.WARNING)
    options = dict(
        space=getattr(args, "space", None),
        trials=getattr(args, "trials", None),
        seeds=args.seeds,
        workers=getattr(args, "workers", None),
        storage=getattr(args, "storage", None),
        backend=getattr(args, "backend", "local"),
        ray_address=getattr(args, "ray_address", None),
        trial_cpus=getattr(args, "trial_cpus", None),
        trial_gpus=getattr(args, "trial_gpus", 0),
        name=getattr(args, "name", None),
        out=args.out,
        metric=getattr(args, "metric", None),
        direction=getattr(args, "direction", None),
        pruner=getattr(args, "pruner", None),
        data=getattr(args, "data", None),
        config=args.config,
        sets=args.sets,
        seed=args.seed,
        quick=args.quick,
        device=getattr(args, "device", None),
        resume=args.resume,
        budget=getattr(args, "sweep_budget", None),
    )
    options.update(given)
    _, trials = sweep(options.pop("study"), **options)
    folder = Path(trials.attrs["folder"])
    summary = json.loads((folder / "summary.json").read_text())
    print(
        f"sweep: {summary['n_complete']} complete, {summary['n_pruned']} pruned, {summary['n_failed']} failed; "
        f"best {summary['metric']} {summary['best_value']:.4f} with {summary['best_params'] or 'the defaults'}"
        if summary["best_value"] is not None
        else f"sweep: no trial completed ({summary['n_failed']} failed)"
    )
    print(f"report: {folder / 'report.html'}")
    return 0 if summary["n_failed"] == 0 else 1


def run_seeds(args) -> int:
    """`dlstudy STUDY --seeds K`: a sweep with no space; the study's own flags travel as --set keys."""
    from dlstudy.config import flatten
    from dlstudy.studies import STUDIES

    if args.seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {args.seeds}")
    flags = [f"{k}={json.dumps(v)}" for k, v in flatten(STUDIES[args.command].flag_overrides(args)).items()]
    if getattr(args, "budget", None):  # each seed's run
        flags.append(f"budget={json.dumps(args.budget)}")
    return run_sweep(args, study=args.command, sets=[*args.sets, *flags])


def run_all(args) -> int:
    from dlstudy.api import check, resolve_config
    from dlstudy.report import is_index_page
    from dlstudy.studies import STUDIES
    from dlstudy.train import progress

    started = time.time()
    root = Path(args.out) if args.out else Path("runs") / "all" / time.strftime("%Y%m%d-%H%M%S")
    quick = not args.full  # the tour: each study's --quick grid; --full: the full grids
    index = root / "index.html"
    if index.is_dir() or (index.exists() and not is_index_page(index)):
        raise InputError(
            f"{index} exists and is no dlstudy index; choose another --out (nothing a user made is replaced)"
        )
    own = {}  # every study's config is checked before any study runs; its own budget weighs its share
    for name in STUDIES:
        cfg = resolve_config(name, config=args.config, sets=study_sets(args.sets, name, STUDIES), quick=quick)
        own[name] = getattr(check(name, cfg), "budget", None) or 0.0
    total, entries = seconds_of(args.budget), []
    with hold(root):  # one `run all` writes a folder at a time: a second one is refused, not interleaved
        for i, name in enumerate(progress(iterable=list(STUDIES), desc="run all", unit="study", position=0)):
            later = sum(list(own.values())[i + 1 :]) / max(sum(own.values()), 1e-9)
            share = study_share(total, time.time() - started, later) if total and own[name] else None
            entries.append(tour_entry(args, root, name, quick=quick, budget=share))
        write_index(root, entries, started, quick=quick)
    print(f"index: {(root / 'index.html').resolve()}")
    failed = [e for e in entries if e["state"] == "failed"]
    return 1 if any(e.get("unexpected") for e in failed) else 2 if failed else 0


@contextlib.contextmanager
def hold(root: Path):
    """The folder's lock for the whole invocation (its studies' run folders take their own inside it)."""
    from dlstudy.runs import Run

    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {root}: cannot create the folder ({exc.strerror}); choose another --out") from None
    run = Run(root).lock()
    try:
        yield run
    finally:
        run.close()


def study_share(total: float, spent: float, later: float) -> float:
    """`run all --budget`: the next study's seconds: what is left, less half the fair shares of the studies after it
    (`later`: their part of all the studies' own budgets). A study ends early once its epochs are trained, while its
    fixed costs (loading, reductions, maps) do not shrink with its budget: an early one may take more than its part."""
    return max(total - spent - 0.5 * later * total, 1.0)


def tour_entry(args, root: Path, name: str, *, quick: bool, budget: float | None = None) -> dict:
    """Run (or, with --resume, keep or continue) one study of `run all`: its row on the index page. One study's
    bad input or bug does not cost the others; its log.txt has the traceback."""
    from dlstudy.api import run_study
    from dlstudy.runs import is_complete, read_json, read_status
    from dlstudy.studies import STUDIES

    out = root / name
    try:
        seeded = bool(args.seeds) and STUDIES[name].OBJECTIVE is not None  # a sweep: it resumes itself
        if args.resume and is_complete(out) and not seeded:
            log.info("%s: finished earlier, kept", name)
            metrics = read_json(out / "metrics.json")
        else:
            resume = args.resume and read_status(out) is not None
            # each study's tables are in its report; on the terminal, one line a study (-v: the tables too)
            options = dict(
                config=args.config,
                sets=study_sets(args.sets, name, STUDIES),
                seed=args.seed,
                device=args.device,
                quick=quick,
                resume=resume,
            )
            with contextlib.redirect_stdout(sys.stdout if args.verbose else io.StringIO()):
                if seeded:
                    return seeds_entry(name, out, seeds=args.seeds, **options)
                _, metrics = run_study(name, out=out, tensorboard=args.tensorboard, budget=budget, **options)
    except (InputError, DiskError) as exc:
        said = exc.strerror if isinstance(exc, DiskError) else str(exc)
        print(one_line(f"dlstudy: error: {name}: {said}"), file=sys.stderr)
        return {"study": name, "href": f"{name}/", "state": "failed", "summary": said}
    except Exception as exc:
        where = getattr(exc, "dlstudy_log", "the terminal above")
        said = f"{type(exc).__name__}: {str(exc)[:200]}"
        print(
            one_line(f"dlstudy: unexpected error: {name}: {said}; the traceback is in {where}; please report it"),
            file=sys.stderr,
        )
        return {"study": name, "href": f"{name}/", "state": "failed", "summary": said, "unexpected": True}
    summary = STUDIES[name].summary(metrics)
    return {
        "study": name,
        "href": f"{name}/report.html",
        "state": "complete",
        "summary": summary,
        "data": metrics.get("data"),
        "seconds": metrics.get("seconds"),
    }


def seeds_entry(name: str, out: Path, *, seeds: int, **options) -> dict:
    """One study of `run all --seeds K`: its seeds sweep, whose report.html is the study's report over the seeds."""
    from dlstudy.sweep import sweep

    sweep(name, seeds=seeds, out=out, **options)
    summary = json.loads((out / "summary.json").read_text())
    best = (summary.get("configurations") or [{}])[0]
    said = f"{summary['metric']} {best.get('mean', float('nan')):.3f} ± {best.get('sd') or 0:.3f} over {seeds} seeds"
    state = "complete" if summary["n_failed"] == 0 else "failed"
    return {"study": name, "href": f"{name}/report.html", "state": state, "summary": said}


TOUR = (
    "The tour: each study ran its reduced --quick setting (fewer epochs, images and grid cells) on the small data "
    "that ships offline, standing in for the homework's (HW9's images, the course's covid_19.csv, FER2013, the "
    "anime faces); each report says what it reduced and names its full study's command. `dlstudy run all --full` "
    "runs the full grids. The stand-ins change what some questions can show: cluster clusters ten digits, not HW9's "
    "two classes (Q1-Q6); trend's WHO series have no country names, so there is no world map (Q11); generate and "
    "classify learn digits, not faces (Q13-Q23)."
)


def write_index(root: Path, entries: list[dict], started: float, *, quick: bool) -> None:
    """The tour's index page, and a link back to it from each finished report."""
    from dlstudy.report import add_index_link, index_page
    from dlstudy.runs import atomic_write_bytes

    command = "dlstudy " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("dlstudy") else "dlstudy run all"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
    page = index_page(
        "dlstudy: all studies",
        entries,
        started=when,
        seconds=time.time() - started,
        command=command,
        reduced=TOUR if quick else None,
    )
    atomic_write_bytes(root / "index.html", page.encode())
    for e in entries:
        if e["state"] == "complete":
            add_index_link(root / e["href"])


def study_sets(sets: list[str], study: str, studies) -> list[str]:
    """For `run all`: 'cluster.train.epochs=5' goes to the cluster study only (without its prefix);
    a key with no study prefix goes to every study."""
    out = []
    for item in sets:
        head, _, rest = item.partition(".")
        if head in studies:
            if head == study:
                out.append(rest)
        else:
            out.append(item)
    return out


def logged(message, category, filename, lineno, file=None, line=None) -> None:
    """warnings.showwarning for a command: the warning as one line of the run's log (log.txt), not of the terminal."""
    log.warning("%s: %s (%s:%d)", category.__name__, message, filename, lineno, extra={"file_only": True})


class Held(logging.StreamHandler):
    """The terminal's handler. INFO lines wait until the command's first epoch has trained (`let_through`), or until it
    ends well; a refusal before that prints its one line alone. Warnings pass at once, after what waited."""

    def __init__(self, stream):
        super().__init__(stream)
        self.held: list[logging.LogRecord] | None = []  # None: released

    def emit(self, record: logging.LogRecord) -> None:
        if self.held is not None and record.levelno < logging.WARNING:
            self.held.append(record)
            return
        self.let_through()
        super().emit(record)

    def let_through(self, *_) -> None:
        held, self.held = self.held or [], None
        for record in held:
            super().emit(record)


def log_to_stderr(*, quiet: bool, verbose: bool = False) -> Held:
    """One stderr handler on the 'dlstudy' logger (replaced on each call, so in-process callers work)."""
    for old in [h for h in log.handlers if getattr(h, "dlstudy_cli", False)]:
        log.removeHandler(old)
    handler = Held(sys.stderr)
    handler.dlstudy_cli = True
    # file_only (the run folder: printed at the end) never; detail (each epoch) only with -v
    handler.addFilter(lambda r: not getattr(r, "file_only", False) and (verbose or not getattr(r, "detail", False)))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # libraries' own INFO chatter (openTSNE, numba) stays out of the terminal
    return handler


def dispatch(args) -> int:
    """Run the command the arguments name; its exit code."""
    if args.command == "run":
        return run_all(args)
    if args.command == "sweep":
        return run_sweep(args, study=args.study)
    if args.command == "compare":
        from dlstudy.compare import compare

        print(f"compare: {compare(args.run_dirs, out=args.out, force=args.force)}")
        return 0
    if getattr(args, "schema", False):
        from dlstudy.config import json_schema
        from dlstudy.studies import STUDIES

        print(json.dumps(json_schema(STUDIES[args.command].Config), indent=2))
        return 0
    if getattr(args, "seeds", None) is not None:
        return run_seeds(args)
    if args.command == "predict":
        from dlstudy.api import predict

        result = predict(
            args.run_dir, data=args.data, labels=args.labels, out=args.out, device=args.device, force=args.force
        )
        for key, value in result.items():
            print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
        return 0
    from dlstudy.api import run_study
    from dlstudy.studies import STUDIES

    module = STUDIES[args.command]
    root, metrics = run_study(
        args.command,
        data=getattr(args, "data", None),
        out=args.out,
        config=args.config,
        sets=args.sets,
        flags=module.flag_overrides(args),
        seed=args.seed,
        device=getattr(args, "device", None),
        quick=args.quick,
        resume=args.resume,
        tensorboard=getattr(args, "tensorboard", False),
        budget=getattr(args, "budget", None),
    )
    stream = sys.stderr if getattr(args, "json", False) else sys.stdout  # keep --json output pure
    print(f"{args.command}: {module.summary(metrics)}", file=stream)
    print(f"report: {root / 'report.html'}", file=stream)
    return 1 if metrics.get("checks_failed") else 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors (2) and --help (0), as a return value for in-process callers
        return int(exc.code or 0)
    terminal = log_to_stderr(quiet=args.quiet, verbose=args.verbose)
    previous = (
        signal.signal(signal.SIGTERM, terminated) if threading.current_thread() is threading.main_thread() else None
    )
    try:
        with epoch_listener(terminal.let_through), warnings.catch_warnings():
            warnings.showwarning = logged  # a library's warning goes to the run's log.txt, never raw to the terminal
            code = dispatch(args)
        terminal.let_through()
        return code
    except InputError as exc:
        print(one_line(f"dlstudy: error: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dlstudy: interrupted; continue the run with --resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dlstudy derive all | head`: the reader has stopped, which is no error of the run
        with contextlib.suppress(OSError, ValueError):  # and Python's own flush at exit must not complain either
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except DiskError as exc:  # full disk, quota, permissions: the message names the file and the fix
        print(one_line(f"dlstudy: error: {exc.strerror}"), file=sys.stderr)
        return 1
    except Exception as exc:
        where = getattr(exc, "dlstudy_log", None)
        if where is None:
            traceback.print_exc()
            print("dlstudy: unexpected error (above); please report it", file=sys.stderr)
        else:  # one line; the run folder's log holds the traceback
            print(
                one_line(
                    f"dlstudy: unexpected error: {type(exc).__name__}: {str(exc)[:200]}; the traceback is in "
                    f"{where}; please report it"
                ),
                file=sys.stderr,
            )
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def terminated(signum, frame):
    """SIGTERM (a scheduler's stop, `kill`) ends a run as Ctrl-C does: one line, and a run --resume continues."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
