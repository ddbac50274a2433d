import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Ray's switch for a machine-local cluster: every Ray node and driver of the tests (and the sweeps they
# start, which inherit it) binds the loopback address, not this machine's network address. Ray reads it
# once, at import, so it is set here, before any test imports Ray.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data sets (DLSTUDY_DATA, else ../shared/data). CI must fail, not skip, without them."""
    root = Path(os.environ.get("DLSTUDY_DATA", REPO.parent / "shared" / "data"))
    if not (root / "cifar10" / "cifar10_test.npz").exists():
        message = f"real data not found at {root}; set DLSTUDY_DATA to the shared data folder"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def tour(tmp_path_factory):
    """`make run`'s job, run once for the tests that read its reports: (folder, exit code, stdout, stderr)."""
    import contextlib
    import io

    from dlstudy.cli import main

    folder = tmp_path_factory.mktemp("tour") / "all"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", "all", "--out", str(folder)])
    return folder, code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from dlstudy.cli import main

    def call(*args: str):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return call


# A tiny grid so end-to-end tests take seconds; the real-data tests use the study's own settings.
TINY = [
    "--set",
    "data.limit=400",
    "--set",
    "train.epochs=2",
    "--set",
    "grid.encoders=[pool, dense:16]",
    "--set",
    "grid.reductions=[none, pca:8]",
    "--set",
    "figures.map_points=200",
]
