"""dlstudy: classic deep-learning course experiments as reusable pipelines on real data."""

from dlstudy.api import predict, run_study
from dlstudy.errors import InputError
from dlstudy.sweep import sweep

__version__ = "0.1.0"
__all__ = ["run_study", "predict", "sweep", "InputError", "__version__"]
