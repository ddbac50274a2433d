"""The one exception type for bad input: the CLI prints its message on one line and exits 2."""


class InputError(Exception):
    """Bad data, config or flags. The message names the file or key and says how to fix it."""


class Pruned(Exception):
    """A sweep's pruner stopped this run early; the run folder is marked 'pruned', not failed."""
