"""Exception types the CLI turns into one line: InputError (exit 2), DiskError (exit 1); Pruned ends a swept run."""


class InputError(Exception):
    """Bad data, config or flags. The message names the file or key and says how to fix it."""


class Pruned(Exception):
    """A sweep's pruner stopped this run early; the run folder is marked 'pruned', not failed."""


class DiskError(OSError):
    """The disk refused a write (full, quota, permissions); its strerror names the file and the fix."""
