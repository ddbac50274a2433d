"""A run folder: atomic writes, a status file, a lock, and resume.

A run is 'complete' only when status.json says so, and that file is written last. Every other file
is written to a temporary name, synced, renamed and its folder synced, so a killed run never leaves a
half-written file, and `--resume` picks up what a killed run had finished. While a process writes a
run folder it holds an advisory lock on `.lock` (the kernel drops it when the process dies, so a
killed run's folder is free for `--resume`), and a small reserve file that is given back so that a run
that fills the disk can still record that it failed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlstudy.config import dump_yaml, first_difference, load_yaml
from dlstudy.errors import DiskError, InputError

log = logging.getLogger("dlstudy")

MAX_JSON_BYTES = 64 * 2**20  # metrics and summaries are kilobytes; a larger file is not one of ours
STATUS = "status.json"
RESERVE_BYTES = 256 * 1024
DISK_ERRORS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name, fsync, rename over `path`, then fsync the folder so the rename lasts."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise disk_error(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; results are shared like any file
        os.replace(tmp, path)
        sync_folder(path.parent)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise disk_error(exc, path) from None
        raise


def disk_error(exc: OSError, path: Path) -> OSError:
    reason = DISK_ERRORS.get(exc.errno)
    if reason is None or isinstance(exc, DiskError):
        return exc
    return DiskError(exc.errno, f"{reason} writing {path}: free space or choose another --out")


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def read_status(path: Path) -> dict | None:
    """A folder's status, or None where it has none (or a damaged one: see require_status)."""
    try:
        status = json.loads((Path(path) / STATUS).read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def require_status(root: Path) -> dict:
    """The status of a folder a user named as a run: InputError if it is none, or its status is damaged."""
    if not (root / STATUS).is_file():
        raise InputError(f"{root} is no dlstudy run folder (no {STATUS}); give the folder a study wrote")
    status = read_status(root)
    if status is None:
        raise InputError(f"{root / STATUS} is damaged (not a JSON mapping); the run cannot be used: rerun the study")
    return status


def read_json(path: Path) -> dict:
    """A run's JSON file (metrics.json, summary.json) as a mapping, read with a bound; InputError naming the
    file when it is missing, damaged or not a mapping."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise ValueError(f"over {MAX_JSON_BYTES // 2**20} MiB")
        value = json.loads(data)
    except FileNotFoundError:
        raise InputError(f"{path} is missing; rerun the study") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is damaged ({' '.join(str(exc).split())[:80]}); rerun the study") from None
    if not isinstance(value, dict):
        raise InputError(f"{path} is damaged (a JSON {type(value).__name__}, not a mapping); rerun the study")
    return value


def apart_from_inputs(out: str | Path, flag: str, inputs: dict[str, str | Path]) -> None:
    """Refuse an output (a run folder, a CSV, a page) that is an input, lies inside one or holds one: a
    --force must never replace the user's data, and a run folder inside an image folder would be read back as
    a class. `inputs`: flag -> path (`--data`: x.csv)."""
    target = Path(out).resolve()
    for name, given in inputs.items():
        source = Path(given).resolve()
        if target == source or source in target.parents:
            where = "is" if target == source else "lies inside"
            raise InputError(f"{flag} {out} {where} the input {name} {given}; write the output outside it")
        if target in source.parents:
            raise InputError(f"{flag} {out} holds the input {name} {given}; choose an {flag} outside the data")


def output_file(out: str | Path, *, suffix: str, force: bool, allowed: Path | None = None) -> Path:
    """Where predict and compare may write a file: never a folder, never over a file unless force, never
    among a run folder's own files (only below `allowed`) and never into a folder a live run holds."""
    given, target = Path(out), Path(out).resolve()
    if target.is_dir():
        raise InputError(f"--out {given} is a folder; give a file name such as {given / ('out' + suffix)}")
    for folder in target.parents:
        if not (folder / STATUS).exists():
            continue
        if allowed is None or allowed.resolve() not in target.parents:
            raise InputError(
                f"--out {given} lies inside the run folder {folder}; write "
                f"{'under ' + str(allowed) + ' or ' if allowed else ''}elsewhere"
            )
        if locked(folder):
            raise InputError(f"--out {given}: the run in {folder} is being written; wait for it to finish")
    if target.exists() and not force:
        raise InputError(f"--out {given} exists; choose another file or add --force to replace it")
    if target.suffix.lower() != suffix:
        raise InputError(f"--out {given}: name the file {suffix}")
    return target


def locked(folder: Path) -> bool:
    """Whether a live process holds the run folder's lock."""
    try:
        with open(folder / ".lock", "rb") as f:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no lock file: no process ever wrote here, or a read-only copy
        return False
    return False


def is_complete(path: Path) -> bool:
    status = read_status(path)
    return bool(status) and status.get("state") == "complete"


def check_resume(root: Path, status: dict | None, *, study: str, sweep: str | None, inputs: dict, config: dict) -> None:
    """A run may continue only as the same study, on the same data, with the same config (a sweep's trial only
    from its sweep)."""
    if not status:
        raise InputError(f"nothing to resume in {root}: it holds no unfinished run")
    if status.get("study") != study:
        raise InputError(f"{root} is a '{status.get('study')}' run, not '{study}'")
    if status.get("sweep") and not sweep:  # trial folders live in their sweep's: any sweep here is it
        raise InputError(
            f"{root} is a trial of the sweep in {status['sweep']}; run that sweep's command "
            "again to continue it (a trial's state is the sweep's to keep)"
        )
    changed = next((k for k in inputs if k in status.get("inputs", {}) and status["inputs"][k] != inputs[k]), None)
    if changed:
        raise InputError(
            f"{root}: {inputs[changed].get('path')} changed since this run started; resume needs "
            "the same data: restore it, or start a new run with another --out"
        )
    saved = load_yaml(root / "config.yaml")
    diff = first_difference(saved, config)
    if diff:
        raise InputError(
            f"config key '{diff}' differs from {root / 'config.yaml'}; resume with the same flags, "
            "or choose another --out"
        )


class Run:
    """One run folder. Use `Run.open`; every write goes through `file()` so nothing lands outside."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.started = time.time()
        self._lock = None

    def lock(self) -> Run:
        """Take the folder's advisory lock, or refuse naming the process that holds it."""
        path = self.root / ".lock"
        try:
            f = open(path, "a+")
        except OSError as exc:  # a read-only mount (EROFS), no permission
            raise InputError(
                f"{self.root}: cannot lock the run folder ({exc.strerror}); a run needs a folder it can "
                "write: copy it elsewhere and --resume there"
            ) from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise InputError(
                f"{self.root} is being written by {holder}; wait for it to finish, or choose another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        self._lock = f
        return self

    def close(self) -> None:
        """Give back the reserve and the lock (the process ending does the same)."""
        (self.root / ".reserve").unlink(missing_ok=True)
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    @classmethod
    def open(
        cls,
        root: str | Path,
        config: dict,
        *,
        resume: bool,
        study: str,
        inputs: dict | None = None,
        sweep: str | None = None,
    ) -> Run:
        """`inputs`: the data's fingerprint (a resume on changed data is refused); `sweep`: the sweep folder
        that owns this run, the only caller that may resume it."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise InputError(f"--out {root} is a file; give a folder for the run")
        status = read_status(root) if root.exists() else None
        if resume and (root / STATUS).exists():
            status = require_status(root)  # a damaged status is named, not taken for 'no run here'
        has_files = root.exists() and any(root.iterdir())
        if status and status.get("state") == "complete":
            if resume:
                raise InputError(
                    f"{root} holds a finished run, so there is nothing to resume; its report is {root / 'report.html'} "
                    "(to run again, drop --resume and choose another --out)"
                )
            raise InputError(f"{root} holds a finished run; choose another --out")
        if has_files and not resume:
            if status:
                raise InputError(
                    f"{root} holds an unfinished run; add --resume to continue it, or choose another --out"
                )
            raise InputError(f"{root} is not empty and is no dlstudy run; choose another --out")
        if resume:
            check_resume(root, status, study=study, sweep=sweep, inputs=inputs or {}, config=config)
        run = cls(root)
        try:
            run.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--out {root}: cannot create the folder ({exc.strerror}); choose another --out") from None
        run.lock()
        if has_files and read_status(root) != status:  # another process finished or changed it meanwhile
            run.close()
            raise InputError(f"{root} changed while opening it; try again")
        if resume:  # said once the folder is ours: a refusal above prints nothing before its one line
            log.info("resuming the run in %s", root)
        try:
            run.write_bytes(".reserve", bytes(RESERVE_BYTES))
            run.write_text("config.yaml", dump_yaml(config))
            run._write_status("running", study=study, inputs=inputs or {}, **({"sweep": sweep} if sweep else {}))
        except OSError:
            run.close()
            raise
        return run

    # paths ---------------------------------------------------------------------------------------
    def file(self, *parts: str) -> Path:
        """A path inside the run folder; refuses names that would escape it."""
        path = (self.root / Path(*parts)).resolve()
        if path != self.root and self.root not in path.parents:
            raise InputError(f"refusing to write {path}: it is outside the run folder {self.root}")
        return path

    # atomic writes -------------------------------------------------------------------------------
    def write_bytes(self, name: str, data: bytes) -> Path:
        path = self.file(name)
        atomic_write_bytes(path, data)
        return path

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write_text(name, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")

    def save_arrays(self, name: str, **arrays: np.ndarray) -> Path:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return self.write_bytes(name, buf.getvalue())

    def load_arrays(self, name: str) -> dict[str, np.ndarray] | None:
        path = self.file(name)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def save_weights(self, name: str, model: torch.nn.Module) -> Path:
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        return self.write_bytes(name, save(state))

    def save_torch(self, name: str, obj: Any) -> Path:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return self.write_bytes(name, buf.getvalue())

    def load_torch(self, name: str) -> Any | None:
        path = self.file(name)
        if not path.exists():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    # status --------------------------------------------------------------------------------------
    def _write_status(self, state: str, **extra: Any) -> None:
        previous = read_status(self.root) or {}
        status = {**previous, **extra, "state": state, "updated": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.write_json(STATUS, status)

    def complete(self, metrics: dict) -> None:
        """Write metrics.json, then mark the run complete: the last file a run writes."""
        self.write_json("metrics.json", metrics)
        (self.root / ".reserve").unlink(missing_ok=True)
        self._write_status("complete", seconds=round(time.time() - self.started, 1))

    def prune(self, reason: str) -> None:
        """A sweep's pruner stopped the run: it is final, not unfinished, and says why."""
        self._write_status("pruned", reason=reason, seconds=round(time.time() - self.started, 1))

    def interrupt(self) -> None:
        """Ctrl-C or SIGTERM: the run stops where its last checkpoint left it, and --resume continues it."""
        self._write_status("interrupted", reason="interrupted (Ctrl-C or SIGTERM); continue it with --resume")

    def fail(self, reason: str) -> None:
        """Record why the run stopped; it stays unfinished, so --resume can continue it after a fix.
        On a full disk the reserve is given back first, so this small write fits."""
        try:
            self._write_status("failed", reason=reason)
        except OSError:
            (self.root / ".reserve").unlink(missing_ok=True)
            self._write_status("failed", reason=reason)

    def elapsed(self) -> float:
        return time.time() - self.started


def fingerprint(path: str | Path) -> dict:
    """What a run read, so that --resume can tell it changed: a file's size and SHA-256; a folder's files
    (hidden ones too) with their sizes and modification times, hashed."""
    path = Path(path).resolve()
    digest = hashlib.sha256()
    if path.is_dir():
        for top, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                with contextlib.suppress(OSError):  # a file gone mid-walk is a change the hash shows
                    info = (Path(top) / name).stat()
                    digest.update(f"{Path(top, name).relative_to(path)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
        return {"path": str(path), "folder": digest.hexdigest()}
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def weights_file(name: str) -> str:
    """Where a run keeps the weights of its model `name`: the one rule for run, resume and predict."""
    return f"models/{name}.safetensors"


def load_weights(model: torch.nn.Module, root: Path, name: str) -> torch.nn.Module:
    """The run's safetensors weights of model `name` into `model`; a missing, truncated or mismatched
    file is an input error."""
    from safetensors.torch import load_file

    path = Path(root) / weights_file(name)
    if not path.exists():
        raise InputError(f"{path} is missing; the run folder is incomplete, so predict cannot use it (rerun the study)")
    try:
        model.load_state_dict(load_file(path))
    except Exception as exc:  # truncated files, another model's weights, an edited config
        raise InputError(
            f"{path} does not load into the model its config.yaml describes "
            f"({type(exc).__name__}: {str(exc)[:120]}); rerun the study or restore the file"
        ) from None
    return model


def load_finished_run(path: str | Path) -> tuple[Path, dict, dict]:
    """(root, config, status) of a finished run, for `predict`."""
    root = Path(path)
    status = require_status(root)
    if status.get("state") != "complete":
        if status.get("study") == "sweep" or (root / "trials").is_dir():
            raise InputError(
                f"{root} is a sweep, which predicts nothing itself; finish it by running the sweep's command again, "
                "then predict with the best trial's run folder (the sweep's page names it)"
            )
        study = status.get("study") or "STUDY"
        raise InputError(
            f"{root} is an unfinished run; finish it with `dlstudy {study} --resume --out {root}` (and the flags it "
            "started with), then predict"
        )
    return root, load_yaml(root / "config.yaml"), status
