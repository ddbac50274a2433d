"""Exception types the CLI turns into one line: InputError (exit 2), DiskError (exit 1); Pruned ends a swept run.
Also the one check every reader makes before it opens a user's path."""

import stat
from pathlib import Path


class InputError(Exception):
    """Bad data, config or flags. The message names the file or key and says how to fix it."""


class Pruned(Exception):
    """A sweep's pruner stopped this run early; the run folder is marked 'pruned', not failed."""


class DiskError(OSError):
    """The disk refused a write (full, quota, permissions); its strerror names the file and the fix."""


MESSAGE_LIMIT = 390  # characters, the whole line: a message quotes names and values; it never grows with them


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message as one bounded line whatever the names in it hold: control characters (a newline in a
    file name) escaped, and a long middle cut so that the start and the fix at the end stay."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]} ... {text[-keep:]}"


MAX_DATA_BYTES = 8 * 2**30  # the largest data file read: an array of 8 GiB fills a third of a 24 GiB machine


def readable(path, what: str, *, limit: int = MAX_DATA_BYTES, folder: bool = False) -> Path:
    """`path` if it is a regular file (or, with `folder`, a folder) of at most `limit` bytes: a FIFO, a device or a
    socket would block or never end, so they are refused before anything reads them. `what` names the flag."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be read ({exc.strerror}); check the path") from None
    if folder and stat.S_ISDIR(info.st_mode):
        return path
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe, device or socket)"
        raise InputError(f"{what} {path} is {kind}; give a regular file")
    if info.st_size > limit:
        raise InputError(
            f"{what} {path} is {info.st_size / 2**30:.1f} GiB, over the {limit / 2**30:g} GiB a file may be"
        )
    return path
