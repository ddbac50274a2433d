"""The Python API: `run_study` does what `dlstudy <study>` does; `predict` what `dlstudy predict` does."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from dlstudy.config import resolve
from dlstudy.errors import InputError, Pruned
from dlstudy.runs import Run, is_complete, load_finished_run, read_status
from dlstudy.studies import STUDIES
from dlstudy.train import seed_everything

log = logging.getLogger("dlstudy")


def study_module(name: str):
    if name not in STUDIES:
        raise InputError(f"unknown study '{name}' (available: {', '.join(STUDIES)})")
    return STUDIES[name]


def resolve_config(name: str, *, config: str | Path | None = None, sets=(), flags: dict | None = None,
                   quick: bool = False) -> dict:
    module = study_module(name)
    return resolve(module.DEFAULTS, quick=module.QUICK if quick else None, file=config, sets=sets, flags=flags)


def default_out(name: str, *, resume: bool, base: Path = Path("runs")) -> Path:
    folder = base / name
    if resume:  # the newest unfinished run of this study
        candidates = sorted(p for p in folder.glob("*") if p.is_dir() and read_status(p) and not is_complete(p))
        if not candidates:
            raise InputError(f"--resume: no unfinished '{name}' run under {folder}; pass --out RUN_DIR")
        return candidates[-1]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, n = folder / stamp, 1
    while out.exists():
        n += 1
        out = folder / f"{stamp}-{n}"
    return out


def run_study(name: str, *, data: str | Path | None = None, out: str | Path | None = None,
              config: str | Path | None = None, sets=(), flags: dict | None = None, seed: int | None = None,
              device: str | None = None, quick: bool = False, resume: bool = False,
              tensorboard: bool = False) -> tuple[Path, dict]:
    """Run one study end to end; returns (run folder, metrics)."""
    module = study_module(name)
    top: dict = dict(flags or {})
    if data is not None:
        top.setdefault("data", {})["path"] = str(data)
    if seed is not None:
        top["seed"] = seed
    # `run all` passes these to every study; a study without the key (derive trains nothing) ignores them
    if device is not None and "device" in module.DEFAULTS:
        top["device"] = device
    if tensorboard and "tensorboard" in module.DEFAULTS:
        top["tensorboard"] = True
    cfg = resolve_config(name, config=config, sets=sets, flags=top, quick=quick)
    module.check_config(cfg)  # before any folder is made
    out = Path(out) if out is not None else default_out(name, resume=resume)
    run = Run.open(out, cfg, resume=resume, study=name)
    handler = logging.FileHandler(run.file("log.txt"), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    try:
        log.info("%s: run folder %s", name, run.root)
        seed_everything(cfg["seed"])
        metrics = module.run(run, cfg)
        metrics["seconds"] = round(run.elapsed(), 1)
        run.complete(metrics)
        log.info("%s: finished in %.1f s; report %s", name, run.elapsed(), run.file("report.html"))
    except Pruned as exc:
        run.prune(str(exc))
        raise
    except InputError as exc:
        run.fail(str(exc))
        raise
    except Exception as exc:  # never leave a stopped run marked 'running'
        run.fail(f"unexpected {type(exc).__name__}: {str(exc)[:200]}")
        raise
    finally:
        log.removeHandler(handler)
        handler.close()
    return run.root, metrics


def predict(run_dir: str | Path, *, data: str | Path, labels: str | Path | None = None,
            out: str | Path | None = None, device: str = "auto") -> dict:
    """Apply a finished run to new data; writes a CSV and returns a dict of what it measured."""
    import json

    root, cfg, status = load_finished_run(run_dir)
    module = study_module(status.get("study", ""))
    metrics = json.loads((root / "metrics.json").read_text())
    out = Path(out) if out else root / "predict" / f"{Path(data).stem or 'data'}.csv"
    return module.predict(root, cfg, metrics, data_path=str(data), labels=None if labels is None else str(labels),
                          out=out, device=device)
