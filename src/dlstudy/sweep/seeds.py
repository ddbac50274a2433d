"""The study's own report over the K seeds of `dlstudy STUDY --seeds K`: its headline numbers with the seed
spread beside the test-item spread, every table as mean +- sd over the seeds, its training curves with a
band, and each homework answer over the seeds.

An answer is shown over the seeds when the seeds agree in words: each seed's answer with its numbers masked is
the same sentence, so the numbers line up and each becomes its mean +- sd. When the words differ, the report
quotes each seed. Comparative words over the seeds are decided apart from that, by a t-test of each comparison's
per-seed differences (`comparisons`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dlstudy import plots
from dlstudy.analysis.uncertainty import Comparison, holm, seeds_test
from dlstudy.analysis.uncertainty import over_seeds as over_seeds_of
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
    comparisons(report, [r["report"].get("comparisons", {}) for r in runs])
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
    """The headline numbers over the seeds: the mean with the t-interval of the mean (where the expected value of a
    run lies) and the t prediction interval of one new run (where the next seed's number lies). Each run's
    test-item interval is shown beside them but never added in: a seed that redraws the split or the subsample
    already carries that spread, and one that does not would only count the same test items twice."""
    rows, card = [], []
    for key in module.METRICS:
        values = [m.get(key) for m in metrics]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) or key == "seconds":
            continue
        spread = over_seeds_of(values)
        intervals = [m.get(f"{key}_ci95") for m in metrics]
        width = float(np.mean([i[1] - i[0] for i in intervals])) if all(intervals) else None
        rows.append(
            {
                "metric": key,
                "mean": spread.mean,
                "sd over seeds": spread.sd,
                "mean: 95 % t-interval": f"{spread.mean_low:.4g} to {spread.mean_high:.4g}",
                "next run: 95 % prediction interval": f"{spread.next_low:.4g} to {spread.next_high:.4g}",
                "width of one run's test-item interval": width,
                "_ci": [spread.mean_low, spread.mean_high],
            }
        )
    by_key = {r["metric"]: r for r in rows}
    for label, key, base in module.CARD:
        if key in by_key:
            r = by_key[key]
            card.append(
                (f"{label} (mean of {len(metrics)} seeds)", r["mean"], r["_ci"], by_key.get(base, {}).get("mean"), base)
            )
    report.heading("Headline numbers over the seeds")
    report.paragraph(
        f"Over {len(metrics)} seeds: the mean's 95 % t-interval says where the expected value of a run lies; the "
        "prediction interval, wider, where one more run's number would lie. The last column is the mean width of "
        "each run's own interval over its test items, shown for scale and not combined with the seeds' spread."
    )
    report.table(
        [{k: v for k, v in r.items() if k != "_ci"} for r in rows],
        caption="Each number over the seeds: mean, sd, the mean's t-interval and a new run's prediction interval",
    )
    return card


def comparisons(report: Report, per_seed: list[dict]) -> None:
    """The comparisons every seed made, tested over the seeds: a t-test of the per-seed differences (each seed one
    paired difference), corrected together by Holm; 'better' only when that says so."""
    names = [n for n in per_seed[0] if all(n in c for c in per_seed)]
    if not names:
        return
    family = {}
    for name in names:
        first, diffs = per_seed[0][name], [c[name]["difference"] for c in per_seed]
        spread = over_seeds_of(diffs)
        family[name] = Comparison(
            a=first["a"],
            b=first["b"],
            difference=spread.mean,
            low=spread.mean_low,
            high=spread.mean_high,
            se=spread.sd / np.sqrt(spread.k),
            p=seeds_test(diffs),
            what=f"{first['what']} (mean over {len(diffs)} seeds)".strip(),
            items=f"the {len(diffs)} seeds, one paired difference each",
            kind="t-test over the seeds",
        )
    report.heading("Comparisons over the seeds")
    report.paragraph(
        "Each comparison every seed's report made, decided here by a t-test of its per-seed differences (corrected "
        "together by Holm), not by whether the seeds' words agree. The intervals are t-intervals of the mean "
        "difference over the seeds."
    )
    report.bullets([f"{name}: {c.sentence()}." for name, c in holm(family).items()])


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
