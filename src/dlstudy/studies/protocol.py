"""What a study is. The CLI, `run all`, `predict` and sweeps rely on this and nothing else.

A study is a package under dlstudy/studies/: its `Config` (a pydantic schema, dlstudy.config.Schema)
says every key, `fit(run, cfg) -> Results` trains, and `SECTIONS` report: one function per homework
question (`../shared/QUESTIONS.md` numbers them), each `section(report, results, cfg)` answering its
question in a screenful and ending with `report.answer(...)`. `register` checks every package against
the protocol when the registry is built, so a missing piece fails at import, not halfway through a run.

Optional: `AFTER_TRAINING, AFTER_TRAINING_EPOCHS`, what a time budget keeps for the work after training (a share
of the budget, and epochs of the run's first training; dlstudy.budget has the defaults).

A study's answers.py turns numbers into one to three sentences: every number in them is read from the
arguments, and every qualitative word ("helps", "collapses") is chosen by a rule named in the function, so a
test can feed hand-made numbers and check that the words follow them."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from dlstudy import budget as budgets
from dlstudy.analysis.uncertainty import ALPHA, holm
from dlstudy.config import Schema, defaults, flatten, merge, short
from dlstudy.report import Report, text_table


@dataclass(kw_only=True)
class Results:
    """What `fit` hands to the report sections. Studies subclass it with their own fields."""

    metrics: dict  # goes to metrics.json: the run's numbers, and what predict needs
    table: list[dict] = field(default_factory=list)  # the rows printed on the terminal
    columns: list[str] | None = None
    title: str | None = None  # the report's title when it depends on the data (digits are not faces)
    config: Schema | None = None  # the config that ran, where the run chose part of it (a budget's rung)
    # the report's comparative statements, each decided by its own test (analysis.uncertainty.Comparison), by name;
    # `execute` corrects them together (Holm) before any section reads them
    family: dict = field(default_factory=dict)


Section = Callable[[Report, Results, Schema], None]


def section(title: str, *, question: int | None = None) -> Callable[[Section], Section]:
    """Mark a report section with its heading and, for a homework question, its number."""

    def mark(fn: Section) -> Section:
        fn.title, fn.question = title, question
        return fn

    return mark


@runtime_checkable
class Study(Protocol):
    NAME: str
    TITLE: str
    Config: type[Schema]  # the config schema: every key's type, default, range and description
    QUICK: dict  # what --quick changes, as dotted sections like a config file
    OBJECTIVE: tuple[str, str] | None  # a sweep's default (metric, direction); None: nothing to sweep
    PRUNE_ON: tuple[str, str] | None  # the per-epoch value a sweep's pruner watches
    METRICS: tuple[str, ...]  # the numbers metrics.json holds: what a sweep's --metric may name
    FULL_STUDY: str  # the command for the full study on the homework's data (a --quick run's report names it)
    CARD: list[tuple[str, str, str | None]]  # the report's headline numbers: (label, metric, baseline metric)
    SECTIONS: list[Section]
    FLAGS: dict[str, str]  # dotted config key -> the study's own flag that sets it: errors name what the user typed

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...
    def flag_overrides(self, args: argparse.Namespace) -> dict: ...
    def check_config(self, cfg: Schema) -> None: ...
    def fit(self, run, cfg: Schema) -> Results: ...
    def predict(
        self,
        root: Path,
        cfg: Schema,
        metrics: dict,
        *,
        data_path: str,
        labels: str | None,
        out: Path,
        device: str = "auto",
    ) -> dict: ...
    def summary(self, metrics: dict) -> str: ...


def register(*modules) -> dict[str, Study]:
    """The registry by CLI name, after checking each module has every member of `Study`."""
    wanted = [n for n in Study.__annotations__] + [
        n for n, v in vars(Study).items() if inspect.isfunction(v) and not n.startswith("_")
    ]
    out = {}
    for module in modules:
        missing = [n for n in wanted if not hasattr(module, n)]
        if missing:
            raise TypeError(f"study {module.__name__} lacks {', '.join(missing)} (see dlstudy.studies.protocol)")
        unmarked = [s.__name__ for s in module.SECTIONS if not hasattr(s, "title")]
        if unmarked:
            raise TypeError(f"{module.__name__}: sections {unmarked} need the @section(title, question=N) mark")
        out[module.NAME] = module
    return out


def execute(study: Study, run, cfg: Schema) -> dict:
    """Fit, then write the report section by section; returns the metrics."""
    results = study.fit(run, cfg)
    results.family = holm(results.family)
    cfg = results.config or cfg
    budget = budgets.current()
    if budget is not None:
        results.metrics.update(budget.summary())
    report = Report(results.title or study.TITLE, run=run)
    report.reduced = reduced_note(study, cfg)
    report.statistics = family_note(results.family)
    for fn in study.SECTIONS:
        with report.section(fn.title, question=fn.question):
            fn(report, results, cfg)
    m = results.metrics
    card = [
        (label, m.get(key), m.get(f"{key}_ci95"), None if base is None else m.get(base), base)
        for label, key, base in study.CARD
    ]
    if budget is not None:  # said as the report is written: the sections' time is inside the budget too
        report.budget = budget.note(budget.elapsed())
    report.write(config=cfg.model_dump(), metrics=results.metrics, card=card, seconds=run.elapsed())
    # the report's tables and answers as data, for a report over seeds (dlstudy.sweep.seeds)
    run.write_json(
        "report.json",
        {"tables": report.tables, "answers": report.answers(), "comparisons": comparisons_as_data(results.family)},
    )
    if results.table:
        print(text_table(results.table, results.columns))
    return results.metrics


def family_note(family: dict) -> str | None:
    """How the report decides its comparative words, said once at the top."""
    if not family:
        return None
    units = sorted({part for c in family.values() for part in (c.scheme or c.items).split("; ")})
    return (
        f"This report makes {len(family)} comparisons. Each is decided by a bootstrap test (paired where both sides are "
        "scored on the same items), and a word such "
        f"as 'better' needs p < {ALPHA} after Holm's correction over all {len(family)}, so that the chance of any "
        f"false claim among them stays at {ALPHA:.0%}. Resampled: {'; '.join(units)}."
    )


def comparisons_as_data(family: dict) -> dict:
    """Each comparison's numbers by name, for the report over seeds (which tests the differences over the seeds)."""
    keep = ("a", "b", "what", "difference", "low", "high", "p", "p_adjusted")
    return {name: {k: getattr(c, k) for k in keep} for name, c in family.items()}


def reduced_note(study: Study, cfg: Schema) -> str | None:
    """For a --quick run: what it reduced (each key --quick changes, from the default to what ran), which data
    stood in for the homework's, and the command for the full study. None for a full run."""
    if not cfg.quick:
        return None
    full, ran = flatten(defaults(study.Config)), flatten(cfg.model_dump())
    keys = [
        k for k in flatten(merge(defaults(study.Config), study.QUICK)) if k in flatten(study.QUICK) and k != "quick"
    ]
    changed = "; ".join(f"{k} {short(full[k], 40)} -> {short(ran[k], 40)}" for k in keys)
    data = getattr(cfg, "data", None)
    stand_in = ""
    if data is not None and data.path is None:  # the schema says what the default data is: "None: the ..."
        about = type(data).model_fields["path"].description.removeprefix("None: ").split(",")[0]
        stand_in = f" {about[0].upper()}{about[1:]} stood in for the homework's data."
    return f"A reduced run (--quick): {changed}.{stand_in} The full study: {study.FULL_STUDY}."
