"""The study's own report over the K seeds of `dlstudy STUDY --seeds K`: its headline numbers with the seed
spread beside the test-item spread, every table as mean +- sd over the seeds, its training curves with a
band, and each homework answer over the seeds.

An answer is computed over the seeds when the seeds agree in words: each seed's answer with its numbers
masked is the same sentence, so the numbers line up and each becomes its mean +- sd. When the words differ,
the seeds disagree on the conclusion, and the report says so and quotes each seed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dlstudy import plots
from dlstudy.compare import load_run
from dlstudy.config import validate
from dlstudy.report import Link, Report
from dlstudy.runs import Run, read_json
from dlstudy.studies.protocol import reduced_note

NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")
CURVES = 6  # training curves drawn with their band, the first ones of the run


def write_seeds_report(run: Run, module, run_dirs: list[Path]) -> None:
    """report.html in the seeds folder: the study's report over the runs in `run_dirs` (one per seed)."""
    runs = [load_run(d) for d in run_dirs]
    for r in runs:
        saved = r["root"] / "report.json"
        r["report"] = read_json(saved) if saved.exists() else {"tables": [], "answers": {}}
    k = len(runs)
    report = Report(f"{module.TITLE}: {k} seeds", run=run)
    report.reduced = reduced_note(module, validate(module.Config, runs[0]["config"]))
    card = headline(report, module, [r["metrics"] for r in runs])
    for fn in module.SECTIONS:
        if fn.question:
            said = [r["report"]["answers"].get(str(fn.question)) for r in runs]
            with report.section(fn.title, question=fn.question):
                report.answer(over_seeds(said))
    tables(report, [r["report"]["tables"] for r in runs])
    bands(report, [r["histories"] for r in runs])
    report.heading("Each seed's own report")
    report.table(
        [
            {"seed": r["config"]["seed"], "report": Link("report", f"{r['root'].relative_to(run.root)}/report.html")}
            for r in runs
        ]
        + [{"seed": "all", "report": Link("the sweep's page", "sweep.html")}],
        caption="The runs this report averages, and the sweep that ran them",
    )
    report.write(card=card, metrics=None)


def headline(report: Report, module, metrics: list[dict]) -> list[tuple]:
    """The headline numbers as mean +- sd over the seeds, each beside its test-item spread; returns the card."""
    rows, card = [], []
    for key in module.METRICS:
        values = [m.get(key) for m in metrics]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) or key == "seconds":
            continue
        mean, seed_sd = float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        intervals = [m.get(f"{key}_ci95") for m in metrics]
        item_sd = float(np.mean([(i[1] - i[0]) / 3.92 for i in intervals])) if all(intervals) else None
        row = {"metric": key, "mean": mean, "sd over seeds": seed_sd, "sd over test items": item_sd}
        if item_sd is not None:
            both = float(np.hypot(seed_sd, item_sd))
            row.update(
                {
                    "95 % low": mean - 1.96 * both,
                    "95 % high": mean + 1.96 * both,
                    "larger spread": "seeds" if seed_sd > item_sd else "test items",
                }
            )
        rows.append(row)
    by_key = {r["metric"]: r for r in rows}
    for label, key, base in module.CARD:
        if key in by_key:
            r = by_key[key]
            ci = [r["95 % low"], r["95 % high"]] if "95 % low" in r else None
            card.append(
                (f"{label} (mean of {len(metrics)} seeds)", r["mean"], ci, by_key.get(base, {}).get("mean"), base)
            )
    report.heading("Headline numbers over the seeds")
    report.paragraph(spread_sentence(rows))
    report.table(
        rows,
        caption="Each number's mean and sd over the seeds, its sd over the test items (from each "
        "run's bootstrap interval) and the 95 % interval of both spreads combined",
    )
    return card


def spread_sentence(rows: list[dict]) -> str:
    """Which spread is larger, the seeds' or the test items', for the numbers that have both."""
    both = [r for r in rows if r.get("larger spread")]
    if not both:
        return "No number here has a test-item interval, so only the seed spread is shown."
    seeds = [r["metric"] for r in both if r["larger spread"] == "seeds"]
    items = [r["metric"] for r in both if r["larger spread"] == "test items"]
    said = []
    if seeds:
        said.append(
            f"the seed spread is the larger for {', '.join(seeds)}: another training seed moves them more "
            "than another draw of test items would"
        )
    if items:
        said.append(
            f"the test-item spread is the larger for {', '.join(items)}: the test set's size limits them "
            "more than the seed does"
        )
    return "Over the seeds, " + "; ".join(said) + "."


def over_seeds(answers: list[str | None]) -> str:
    """One answer over the seeds: the shared sentence with each number as mean +- sd, or, when the seeds
    disagree in words, each seed's answer."""
    given = [a for a in answers if a]
    if not given:
        return "No seed answered this question."
    shapes = {NUMBER.sub("#", a) for a in given}
    if len(shapes) == 1 and len(given) == len(answers):
        numbers = [NUMBER.findall(a) for a in given]
        merged = iter(merge(column) for column in zip(*numbers))
        sentence = NUMBER.sub(lambda _: next(merged), given[0])
        return f"All {len(given)} seeds give this answer in the same words (numbers: mean ± sd over seeds): {sentence}"
    quoted = " | ".join(f"seed {i}: {a}" for i, a in enumerate(answers) if a)
    return f"The seeds disagree in words ({len(shapes)} different answers), so no one answer holds: {quoted}"


def merge(tokens: tuple[str, ...]) -> str:
    """The same number from each seed's answer: itself when all agree, else mean ± sd in its own precision."""
    if len(set(tokens)) == 1:
        return tokens[0]
    values = [float(t.replace(",", "")) for t in tokens]
    decimals = len(tokens[0].split(".")[1]) if "." in tokens[0] else 0
    return f"{np.mean(values):.{decimals}f} ± {np.std(values, ddof=1):.{decimals + 1}f}"


def tables(report: Report, per_seed: list[list[dict]]) -> None:
    """Every table the seeds share (same caption, rows and text cells): numbers as mean ± sd over the seeds."""
    report.heading("The report's tables over the seeds")
    shown = 0
    for position, first in enumerate(per_seed[0]):
        same = [t[position] for t in per_seed if len(t) > position and t[position]["caption"] == first["caption"]]
        rows = [t["rows"] for t in same]
        if len(same) < len(per_seed) or not rows[0] or len({len(r) for r in rows}) > 1:
            continue
        merged = [merge_row([r[i] for r in rows]) for i in range(len(rows[0]))]
        if merged and all(m is not None for m in merged):
            report.table(merged, caption=f"{first['caption'] or 'table'} (mean ± sd over {len(rows)} seeds)")
            shown += 1
    if not shown:
        report.paragraph(
            "The seeds' tables do not line up row for row (each seed chose its own variants); see each seed's report."
        )


def merge_row(cells: list[dict]) -> dict | None:
    """One table row over the seeds; None when their text cells differ (the rows are not the same thing)."""
    out = {}
    for key, value in cells[0].items():
        column = [c.get(key) for c in cells]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in column):
            out[key] = f"{np.mean(column):.4g} ± {np.std(column, ddof=1):.2g}" if len(set(column)) > 1 else column[0]
        elif len({repr(v) for v in column}) == 1:
            out[key] = value
        else:
            return None
    return out


def bands(report: Report, histories: list[dict]) -> None:
    """The training curves every seed has, as mean ± sd over the seeds per epoch."""
    names = [n for n in histories[0] if all(n in h and h[n] for h in histories)][:CURVES]
    if not names:
        return
    curves = {}
    for name in names:
        watch = next(k for k in ("val_loss", "test_loss", "loss") if k in histories[0][name][-1])
        epochs = min(len(h[name]) for h in histories)
        values = np.array([[row[watch] for row in h[name][:epochs]] for h in histories])
        curves[f"{name} ({watch})"] = (values.mean(0), values.std(0, ddof=1) if len(values) > 1 else 0 * values[0])
    report.figure(
        plots.bands(curves),
        "curves_over_seeds",
        f"Training curves over {len(histories)} seeds: the mean per epoch, the band one sd either side.",
    )
