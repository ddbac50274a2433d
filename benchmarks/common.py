"""What every benchmark script shares: where the real data is, one study run in its own process (for
its wall time and peak memory, as a user would pay them), and the printed table with its JSON file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = os.environ.get("DLSTUDY_DATA", str(HERE.parent.parent / "shared" / "data"))  # every script's --data default


def run_case(study: str, args: list[str], out: Path) -> dict:
    """Run one study in its own process; its metrics plus wall seconds and peak RSS of that process."""
    cmd = [sys.executable, "-m", "dlstudy", "-q", study, "--out", str(out), *args]
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.time() - start
    if status != 0:
        raise SystemExit(f"benchmark case failed (exit status {status}): {' '.join(cmd)}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"seconds": round(seconds, 1), "peak_mb": round(usage.ru_maxrss / 1024), **metrics}


def write_results(rows: list[dict], path: str | Path, *, summary: str = "", **meta) -> None:
    """Print rows as a text table (and a summary line under it) and write them to the JSON file at path,
    after the CPU count and meta."""
    from dlstudy.report import text_table

    print(text_table(rows))
    if summary:
        print(summary)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cpu_count": os.cpu_count(), **meta, "rows": rows}, indent=2))
    print(f"wrote {path}")
