"""The studies, by CLI name: every package in this folder, checked against dlstudy.studies.protocol.

They are listed (and `run all` runs them) in the order of the homework questions they answer."""

import importlib
import pkgutil

from dlstudy.studies.protocol import Study, register


def _first_question(study) -> int:
    return min((s.question for s in study.SECTIONS if s.question), default=10**6)


def add(*modules) -> dict[str, Study]:
    """Check and register studies (a package outside dlstudy, or one made in a test); returns the registry."""
    STUDIES.update(register(*modules))
    ordered = sorted(STUDIES.values(), key=_first_question)
    STUDIES.clear()
    STUDIES.update((study.NAME, study) for study in ordered)
    return STUDIES


STUDIES: dict[str, Study] = {}
add(*(importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__) if m.ispkg))
