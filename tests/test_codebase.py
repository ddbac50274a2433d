"""The codebase stays readable in an afternoon: short functions, small files, no long positional
hand-offs, configs read as typed attributes, and every study speaks the one protocol."""

import ast
import types
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dlstudy"
MAX_FUNCTION, MAX_FILE, MAX_POSITIONAL = 60, 350, 5


def parsed():
    for path in sorted(SRC.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def body_lines(fn: ast.FunctionDef) -> int:
    """A function's lines below its signature and docstring: ruff format puts one parameter a line, and the
    signature is the interface, not reading."""
    body = fn.body[1:] if ast.get_docstring(fn) and len(fn.body) > 1 else fn.body
    return fn.end_lineno - body[0].lineno + 1


def test_no_function_is_longer_than_a_screenful():
    long = [
        f"{p.relative_to(SRC)}:{n.name} {body_lines(n)}"
        for p, tree in parsed()
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and body_lines(n) > MAX_FUNCTION
    ]
    assert not long, long


def test_study_files_are_small():
    big = [
        f"{p.relative_to(SRC)} {len(p.read_text().splitlines())}"
        for p in (SRC / "studies").rglob("*.py")
        if len(p.read_text().splitlines()) > MAX_FILE
    ]
    assert not big, big


def test_a_study_is_one_package_and_configs_are_read_as_attributes():
    """Each study lives in studies/<name>/ (config, fit, sections, answers); code reads `cfg.train.epochs`, so an
    editor can follow a key from the CLI to its use: no `cfg["..."]` subscript outside the YAML / --set layer."""
    from dlstudy.studies import STUDIES

    for name, study in STUDIES.items():
        assert study.__file__.endswith(f"studies/{name}/__init__.py"), study.__file__
    assert not (SRC / "answers").exists() and not (SRC / "defaults").exists()
    subscripts = [
        f"{p.relative_to(SRC)}:{n.lineno}"
        for p, tree in parsed()
        if p.name != "config.py" or p.parent != SRC
        for n in ast.walk(tree)
        if isinstance(n, ast.Subscript)
        and isinstance(n.slice, ast.Constant)
        and isinstance(n.slice.value, str)
        and isinstance(n.value, (ast.Name, ast.Attribute))
        and (n.value.id if isinstance(n.value, ast.Name) else n.value.attr) in ("cfg", "model_cfg")
    ]
    assert not subscripts, subscripts


def test_no_call_hands_over_more_than_five_positional_arguments():
    """A call with many positional arguments hides which is which (log calls' format arguments aside)."""
    calls = [
        f"{p.relative_to(SRC)}:{n.lineno}"
        for p, tree in parsed()
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and len(n.args) > MAX_POSITIONAL
        and not (isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name) and n.func.value.id == "log")
    ]
    assert not calls, calls


def test_every_study_follows_the_protocol():
    from dlstudy.studies import STUDIES
    from dlstudy.studies.protocol import Study, register

    for name, module in STUDIES.items():
        assert isinstance(module, Study) and module.NAME == name
        assert all(s.question is None or 1 <= s.question <= 28 for s in module.SECTIONS)
    broken = types.ModuleType("broken")
    broken.NAME, broken.TITLE = "broken", "half a study"
    with pytest.raises(TypeError, match="broken lacks Config"):
        register(broken)


def test_each_homework_question_has_one_section():
    from dlstudy.studies import STUDIES

    asked = sorted(s.question for m in STUDIES.values() for s in m.SECTIONS if s.question)
    assert asked == list(range(1, 29))


def test_the_readme_recipe_for_a_new_study_runs(tmp_path, monkeypatch):
    """README's "Add a study" files, copied into a package, register and run with --quick end to end."""
    import json
    import re
    import sys

    from dlstudy import studies
    from dlstudy.cli import main

    readme = (SRC.parents[1] / "README.md").read_text()
    recipe = readme[readme.index("## Add a study") :]
    recipe = recipe[: recipe.index("\n## ")] if "\n## " in recipe else recipe
    blocks = re.findall(r"```python\n# digits/(\w+\.py)[^\n]*\n(.*?)```", recipe, re.S)
    assert {name for name, _ in blocks} == {"__init__.py", "config.py", "experiment.py", "sections.py"}
    package = tmp_path / "recipe" / "digits"
    package.mkdir(parents=True)
    for name, code in blocks:
        (package / name).write_text(code)
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.setattr(studies, "STUDIES", dict(studies.STUDIES))  # registered for this test only
    monkeypatch.setattr("dlstudy.api.STUDIES", studies.STUDIES)
    try:
        import digits

        studies.add(digits)
        assert main(["digits", "--schema"]) == 0
        assert main(["digits", "--quick", "--out", str(tmp_path / "run")]) == 0
    finally:
        for name in [m for m in sys.modules if m == "digits" or m.startswith("digits.")]:
            del sys.modules[name]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val_accuracy"] > metrics["majority_accuracy"] + 0.3  # a perceptron learns the digits
    assert "Validation accuracy peaks at" in (tmp_path / "run" / "report.html").read_text()
