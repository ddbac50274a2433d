"""Benchmark the sweep machinery: one 8-trial trend grid (hidden size x learning rate, GRU, windows of
20 days, covid_19.csv) run as a plain loop of `run_study` calls (the baseline, no Optuna), as a sweep
with 1 and 2 local worker processes, and optionally through Ray and a PostgreSQL storage.

    python benchmarks/bench_sweep.py [--data ../shared/data] [--cases plain local-1 local-2 ray postgres]
                                     [--epochs 20]
    python benchmarks/bench_sweep.py --backend ray                  # plain, local-1, local-2 and ray
    python benchmarks/bench_sweep.py --storage postgresql://u@h/db  # ... and postgres on that server

Without --storage the postgres case starts a throwaway PostgreSQL 15 server (tests/pgserver.py).

For each case: wall time, the sum of the trials' own run times (each run folder's status.json), the
time outside the trials (wall / (trial sum / workers) - 1), the sweep machinery's share net of what the
plain loop also pays outside its trials (interpreter start, imports: ((wall - trial sum) - (plain wall -
plain trial sum)) / trial sum; target under 5 % for local-1), the wall ratio against the plain loop and
against local-1, and the journal writes per trial. Every case is a
fresh process, so interpreter start and imports count, as they do for a user. Prints a table and
writes benchmarks/results/sweep.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA, HERE, write_results

GRID = {"grid": {"model.hidden_size": [8, 16, 32, 64], "train.lr": [0.01, 0.003]}}
PLAIN = """
import itertools, json, sys
from dlstudy.api import run_study
data, out, epochs = sys.argv[1], sys.argv[2], sys.argv[3]
for i, (h, lr) in enumerate(itertools.product([8, 16, 32, 64], [0.01, 0.003])):
    run_study("trend", data=data, out=f"{out}/c{i:03d}", sets=[*json.loads(sys.argv[4]), f"model.hidden_size={h}",
              f"train.lr={lr}"])
"""


def sets(epochs: int) -> list[str]:
    return ["windows.lengths=[20]", "model.cells=[gru]", "correlation.subset=10", f"train.epochs={epochs}"]


def run_case(case: str, data: str, tmp: Path, epochs: int, postgres: str | None) -> dict:
    out = tmp / case
    if case == "plain":
        command = [sys.executable, "-c", PLAIN, data, str(out), str(epochs), json.dumps(sets(epochs))]
        workers = 1
    else:
        space = tmp / "space.yaml"
        space.write_text(json.dumps(GRID))
        command = [
            sys.executable,
            "-m",
            "dlstudy.cli",
            "sweep",
            "trend",
            "--space",
            str(space),
            "--out",
            str(out),
            "--data",
            data,
            "--pruner",
            "none",
            *(a for s in sets(epochs) for a in ("--set", s)),
        ]
        workers = {"local-1": 1, "local-2": 2, "ray": 2, "postgres": 2}[case]
        command += ["--workers", str(workers)]
        if case == "ray":
            command += ["--backend", "ray", "--trial-cpus", "1"]
        if case == "postgres":
            command += ["--storage", postgres, "--name", f"bench-{time.time_ns()}"]  # a new study every run
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{case} failed:\n{done.stderr[-3000:]}")
    statuses = [json.loads(p.read_text()) for p in out.glob("**/status.json") if p.parent != out]
    trial_sum = sum(s["seconds"] for s in statuses if s.get("study") == "trend")
    journal = out / "optuna.journal"
    writes = len(journal.read_text().splitlines()) if journal.exists() else None
    return {
        "case": case,
        "workers": workers,
        "trials": len(statuses),
        "wall_s": round(wall, 1),
        "trial_sum_s": round(trial_sum, 1),
        "overhead": round(wall / (trial_sum / workers) - 1, 3),
        "per_trial_overhead_s": round((wall - trial_sum / workers) / max(len(statuses), 1), 2),
        "journal_writes_per_trial": None if writes is None else round(writes / len(statuses), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--cases", nargs="+", default=["plain", "local-1", "local-2", "ray", "postgres"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--backend", choices=["ray"], help="only the local cases and this engine")
    parser.add_argument("--storage", metavar="URL", help="a PostgreSQL server to use for the postgres case")
    parser.add_argument("--json", default=str(HERE / "results" / "sweep.json"))
    opts = parser.parse_args()
    if opts.backend or (opts.storage and opts.cases == parser.get_default("cases")):
        opts.cases = [
            "plain",
            "local-1",
            "local-2",
            *(["ray"] if opts.backend else []),
            *(["postgres"] if opts.storage else []),
        ]
    data = str(Path(opts.data) / "covid" / "covid_19.csv")
    sys.path.insert(0, str(HERE.parent / "tests"))
    from pgserver import throwaway_postgres

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in opts.cases:
            if case == "postgres" and opts.storage:
                rows.append(run_case(case, data, Path(tmp), opts.epochs, opts.storage))
            elif case == "postgres":
                with throwaway_postgres() as url:
                    rows.append(run_case(case, data, Path(tmp), opts.epochs, url))
            else:
                rows.append(run_case(case, data, Path(tmp), opts.epochs, None))
            print(f"{case}: {rows[-1]['wall_s']} s", file=sys.stderr)
    by = {r["case"]: r for r in rows}
    for r in rows:
        if "plain" in by and r["workers"] == 1:
            fixed = by["plain"]["wall_s"] - by["plain"]["trial_sum_s"]
            r["machinery_overhead"] = round(((r["wall_s"] - r["trial_sum_s"]) - fixed) / r["trial_sum_s"], 3)
        r["wall_vs_plain"] = round(r["wall_s"] / by["plain"]["wall_s"], 3) if "plain" in by else None
        r["wall_vs_local_1"] = round(r["wall_s"] / by["local-1"]["wall_s"], 3) if "local-1" in by else None
    write_results(rows, opts.json, epochs=opts.epochs)


if __name__ == "__main__":
    main()
