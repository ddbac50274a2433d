"""The codebase stays readable in an afternoon: short functions, small study modules, no long
positional hand-offs, and every study speaks the one protocol."""
import ast
import types
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dlstudy"
MAX_FUNCTION, MAX_STUDY, MAX_POSITIONAL = 60, 350, 5


def parsed():
    for path in sorted(SRC.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def test_no_function_is_longer_than_a_screenful():
    long = [f"{p.relative_to(SRC)}:{n.name} {n.end_lineno - n.lineno + 1}" for p, tree in parsed()
            for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION]
    assert not long, long


def test_study_modules_are_small():
    big = [f"{p.name} {len(p.read_text().splitlines())}" for p in (SRC / "studies").glob("*.py")
           if len(p.read_text().splitlines()) > MAX_STUDY]
    assert not big, big


def test_no_call_hands_over_more_than_five_positional_arguments():
    """A call with many positional arguments hides which is which (log calls' format arguments aside)."""
    calls = [f"{p.relative_to(SRC)}:{n.lineno}" for p, tree in parsed() for n in ast.walk(tree)
             if isinstance(n, ast.Call) and len(n.args) > MAX_POSITIONAL
             and not (isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name) and n.func.value.id == "log")]
    assert not calls, calls


def test_every_study_follows_the_protocol():
    from dlstudy.studies import STUDIES
    from dlstudy.studies.protocol import Study, register

    for name, module in STUDIES.items():
        assert isinstance(module, Study) and module.NAME == name
        assert all(s.question is None or 1 <= s.question <= 28 for s in module.SECTIONS)
    broken = types.ModuleType("broken")
    broken.NAME, broken.TITLE = "broken", "half a study"
    with pytest.raises(TypeError, match="broken lacks DEFAULTS"):
        register(broken)


def test_each_homework_question_has_one_section():
    from dlstudy.studies import STUDIES

    asked = sorted(s.question for m in STUDIES.values() for s in m.SECTIONS if s.question)
    assert asked == list(range(1, 29))
