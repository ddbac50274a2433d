"""A throwaway PostgreSQL 15 server for tests and benchmarks: a new cluster in a temp folder, reached
through a Unix socket there (no TCP port), run as the postgres user when we are root (initdb refuses
root), stopped and deleted on exit."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@contextlib.contextmanager
def throwaway_postgres(database: str = "sweeps"):
    """Yields the server's URL, postgresql://postgres@/DATABASE?host=SOCKET_DIR."""
    if not (PG_BIN / "initdb").exists():
        raise FileNotFoundError(f"PostgreSQL 15 not found at {PG_BIN}; apt-get install postgresql-15")
    root = Path(tempfile.mkdtemp(prefix="dlstudy-pg-"))
    as_pg = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]

    def run(*cmd):
        subprocess.run([*as_pg, *map(str, cmd)], check=True, capture_output=True, timeout=120)

    try:
        run(PG_BIN / "initdb", "-D", root / "data", "-A", "trust", "-U", "postgres", "--no-sync")
        run(
            PG_BIN / "pg_ctl",
            "-D",
            root / "data",
            "-l",
            root / "server.log",
            "-w",
            "-o",
            f"-k {root} -c listen_addresses='' -c max_connections=200",
            "start",
        )
        try:
            run(PG_BIN / "createdb", "-h", root, "-U", "postgres", database)
            yield f"postgresql://postgres@/{database}?host={root}"
        finally:
            run(PG_BIN / "pg_ctl", "-D", root / "data", "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
