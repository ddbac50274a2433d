"""Exception types the CLI turns into one line: InputError (exit 2), DiskError (exit 1); Pruned ends a swept run."""


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
