"""`dlstudy compare RUN_DIR...`: runs of one study side by side, in one offline HTML page: the config
keys that differ, the headline metrics, each trained model's best and last epoch, and the learning
curves overlaid (read from the epoch checkpoints, which hold the history)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dlstudy import plots  # noqa: F401  (matplotlib set up for data text)
from dlstudy.config import flatten, load_yaml
from dlstudy.errors import DiskError, InputError
from dlstudy.report import Report
from dlstudy.runs import atomic_write_bytes, output_file, read_json, require_status


def load_run(path: str | Path) -> dict:
    """config, metrics, status and {trainer: history} of one run folder (finished or not)."""
    import json

    import torch

    root = Path(path)
    status = require_status(root)
    metrics = read_json(root / "metrics.json") if (root / "metrics.json").exists() else {}
    histories = {}
    for ckpt in sorted((root / "checkpoints").glob("*.pt")):
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            histories[ckpt.stem] = json.loads(state["history"])
        except Exception as exc:  # a damaged checkpoint costs its curve, not the comparison
            raise InputError(
                f"{ckpt}: not a readable dlstudy checkpoint ({type(exc).__name__}); remove it or its run"
            ) from None
    return {
        "root": root,
        "name": root.name,
        "status": status,
        "config": load_yaml(root / "config.yaml"),
        "metrics": metrics,
        "histories": histories,
    }


def headline(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def epoch_rows(run: dict) -> list[dict]:
    """Each trained model's last epoch and its best epoch by validation (else training) loss."""
    rows = []
    for name, history in run["histories"].items():
        if not history:
            continue
        watch = next((k for k in ("val_loss", "test_loss", "loss") if k in history[-1]), None)
        best = min(history, key=lambda r: r.get(watch, np.inf)) if watch else history[-1]
        rows.append(
            {
                "run": run["name"],
                "model": name,
                "epochs": len(history),
                "watched": watch,
                "best_epoch": best["epoch"],
                f"best_{watch}": best.get(watch),
                **{f"last_{k}": v for k, v in history[-1].items() if k not in ("epoch", "lr")},
            }
        )
    return rows


def curves(runs: list[dict]):
    """One panel per history key shared by all runs; a colour per run, a line per trained model."""
    import matplotlib.pyplot as plt

    keys = None
    for run in runs:
        for history in run["histories"].values():
            present = {k for k in history[-1] if k not in ("epoch", "lr")} if history else set()
            keys = present if keys is None else keys & present
    keys = sorted(keys or [], key=lambda k: (k.split("_")[-1], k))[:6]
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for i, run in enumerate(runs):
            for j, history in enumerate(run["histories"].values()):
                ax.plot(
                    [r["epoch"] for r in history],
                    [r[key] for r in history],
                    color=f"C{i % 10}",
                    lw=1,
                    alpha=0.8,
                    label=run["name"] if j == 0 else None,
                )
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("epoch")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def compare(run_dirs: list[str | Path], *, out: str | Path | None = None, force: bool = False) -> Path:
    if len(run_dirs) < 2:
        raise InputError("compare needs at least two run folders")
    runs = [load_run(p) for p in run_dirs]
    studies = {r["status"].get("study") for r in runs}
    if len(studies) > 1:
        raise InputError(f"compare takes runs of one study; these are {', '.join(sorted(map(str, studies)))}")
    out = output_file(
        out or Path("runs") / "compare" / f"{time.strftime('%Y%m%d-%H%M%S')}.html", suffix=".html", force=force
    )
    flat = [flatten(r["config"]) for r in runs]
    keys = sorted(set().union(*flat))
    differ = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]
    report = Report(f"Comparison of {len(runs)} {studies.pop()} runs")
    report.paragraph("Runs: " + "; ".join(f"{r['name']} ({r['root']}, {r['status'].get('state')})" for r in runs) + ".")
    report.heading("Config keys that differ")
    if differ:
        report.table([{"run": r["name"], **{k: f.get(k) for k in differ}} for r, f in zip(runs, flat)])
    else:
        report.paragraph("The resolved configs are identical: the runs differ only by chance (threads, hardware).")
    report.heading("Headline metrics")
    report.table([{"run": r["name"], **headline(r["metrics"])} for r in runs])
    rows = [row for r in runs for row in epoch_rows(r)]
    if rows:
        report.heading("Training: best and last epoch of each model")
        report.table(rows)
        fig = curves(runs)
        if fig is not None:
            report.figure(fig, "curves", "Learning curves overlaid: one colour per run, one line per trained model")
    try:
        atomic_write_bytes(out, report.render().encode("utf-8"))
    except DiskError:
        raise
    except OSError as exc:  # under /proc, a folder that cannot be made
        raise InputError(f"--out {out}: cannot write it ({exc.strerror}); choose another --out") from None
    return out
