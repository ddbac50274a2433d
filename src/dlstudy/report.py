"""The one report builder: a self-contained HTML page (figures embedded, readable offline), and the
short summary table printed in the terminal. Every string that reaches the page is escaped.

A page reads top-down: the headline numbers against their baselines (a card), the homework
questions with their one-line answers, a table of contents, then one section per question."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import platform
import re
import time
from collections.abc import Sequence
from html import escape
from typing import Any, NamedTuple

import numpy as np

from dlstudy.config import dump_yaml

log = logging.getLogger("dlstudy")

SIZE_BUDGET = 5_000_000  # bytes: above this a report is slow to open and to mail; the run warns
COLLAPSE_ROWS = 12  # longer tables fold under <details>

CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td.t,th.t{text-align:left}tr.best td{background:#eef8ee}caption{text-align:left;color:#555;font-size:13px}
td.best{font-weight:bold;outline:2px solid #1b7837}
figure{margin:1em 0}figure img{max-width:100%}figcaption{color:#555;font-size:13px}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}.note{color:#555}
.card{display:flex;flex-wrap:wrap;gap:.6em;margin:1em 0}
.card div{border:1px solid #ddd;border-radius:6px;padding:.4em .8em;background:#fafafa}
.card b{display:block;font-size:1.3em}.card span{display:block;color:#555;font-size:12px}
p.answer{background:#f2f7fd;border-left:4px solid #2166ac;padding:.4em .7em}
nav ul{list-style:none;padding-left:0}.answers ol{padding-left:1.6em}details{margin:.6em 0}summary{cursor:pointer;color:#2166ac}
.reduced-run{border-left:4px solid #d6604d;background:#fdf0ec;padding:.5em .8em;margin:.8em 0}
"""


class Link(NamedTuple):
    """A table cell that links somewhere (a relative path inside the output folder)."""

    text: str
    href: str

    def __str__(self) -> str:
        return self.text


def format_value(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "–"
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def extreme(values: dict, names, *, highest: bool, shown: str = "{:.0%}") -> str:
    """'2 (94%)', or '2 and 5 (94%)' when others tie with the extreme at the precision shown: an argmax over a tie
    would name one of them as if it stood out."""
    top = (max if highest else min)(values.values())
    tied = [k for k, v in values.items() if shown.format(v) == shown.format(top)]
    said = " and ".join(str(names[k]) for k in tied)
    return f"{said} ({shown.format(top)}{', a tie' if len(tied) > 1 else ''})"


def versions() -> dict:
    import sklearn
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
    }


class Report:
    """Collects sections of blocks, then renders one page. Figures are saved under figures/ and embedded."""

    def __init__(self, title: str, *, run=None):
        self.title = title
        self.run = run
        self.blocks: list[str] = []
        self.sections: list[dict] = []  # anchor, title, question, answer: the contents and the answers block
        self._current: dict | None = None
        self.reduced: str | None = None  # what a reduced (--quick) run left out, said at the top
        self.budget: str | None = None  # the time budget and how the run planned and used it, under the card
        self.statistics: str | None = None  # how the comparative words are decided (tests, correction), under it
        self.tables: list[dict] = []  # each table's caption and rows, as data: what a report over seeds averages

    @contextlib.contextmanager
    def section(self, title: str, *, question: int | None = None):
        """Blocks added inside belong to one section; a section that adds nothing leaves no heading."""
        anchor = f"q{question}" if question else re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        while any(s["anchor"] == anchor for s in self.sections):
            anchor += "-2"
        entry = {"anchor": anchor, "title": title, "question": question, "answer": None}
        start, self._current = len(self.blocks), entry
        try:
            yield entry
        finally:
            self._current = None
        if len(self.blocks) > start:
            label = f"{question}. {title}" if question else title
            self.blocks.insert(start, f'<h2 id="{anchor}">{escape(label)}</h2>')
            self.sections.append(entry)

    def answer(self, text: str) -> None:
        """The question's answer in words, at the end of its section and in the answers block."""
        entry = self._current
        assert entry is not None and entry["question"], "answer() belongs inside a homework question's section"
        entry["answer"] = text
        q = entry["question"]
        self.blocks.append(f'<p class="answer" data-question="{q}"><b>Answer {q}.</b> {escape(text)}</p>')

    def heading(self, text: str) -> None:
        self.blocks.append(f"<h3>{escape(text)}</h3>")

    def paragraph(self, text: str, *, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.blocks.append(f"<p{cls}>{escape(text)}</p>")

    def preformatted(self, text: str) -> None:
        self.blocks.append(f"<pre>{escape(text)}</pre>")

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")

    def table(
        self,
        rows: Sequence[dict],
        *,
        caption: str | None = None,
        highlight: int | None = None,
        first: Sequence[str] = (),
        collapse: bool | None = None,
    ) -> None:
        """`first`: the columns a reader compares (the key and the selection's), moved to the left.
        Tables longer than COLLAPSE_ROWS fold under a <details> unless collapse is False."""
        self.tables.append({"caption": caption, "rows": [{str(k): cell_value(v) for k, v in r.items()} for r in rows]})
        table = html_table(rows, caption=caption, highlight=highlight, first=first)
        if collapse or (collapse is None and len(rows) > COLLAPSE_ROWS):
            table = f"<details><summary>{escape(caption or 'table')} ({len(rows)} rows)</summary>{table}</details>"
        self.blocks.append(table)

    def grid(self, cells: dict[tuple[str, str], GridCell], *, rows: str, columns: str, caption: str) -> None:
        self.blocks.append(grid_html(cells, rows=rows, columns=columns, caption=caption))

    def figure(self, fig, name: str, caption: str = "") -> None:
        """Save a matplotlib figure as figures/<name>.png and embed it."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.image(buf.getvalue(), f"{name}.png", "image/png", caption)

    def image(self, data: bytes, filename: str, mime: str, caption: str = "") -> None:
        if self.run is not None:
            self.run.write_bytes(f"figures/{filename}", data)
        b64 = base64.b64encode(data).decode("ascii")
        # An <img> never runs scripts, so an SVG with user strings in it is safe here.
        self.blocks.append(
            f'<figure><img alt="{escape(filename)}" src="data:{mime};base64,{b64}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>"
        )

    def render(
        self,
        *,
        config: dict | None = None,
        metrics: dict | None = None,
        card: Sequence = (),
        seconds: float | None = None,
    ) -> str:
        """`card`: (label, value, its 95 % interval or None, baseline value, baseline name) headline numbers
        shown first."""
        parts = [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(self.title)}</title>",
            f"<style>{CSS}</style></head><body><h1>{escape(self.title)}</h1>",
        ]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        parts.append(f"<p class='note'>Written {escape(stamp)}{escape(took)}.</p>")
        if self.reduced:
            parts.append(f"<div class='reduced-run'>{escape(self.reduced)}</div>")
        parts.append(card_html(card))
        if self.budget:
            parts.append(f"<p class='note budget'>{escape(self.budget)}</p>")
        if self.statistics:
            parts.append(f"<p class='note statistics'>{escape(self.statistics)}</p>")
        parts.append(self._answers_html())
        tail = [
            ("metrics", "All metrics", metrics),
            ("configuration", "Configuration", config),
            ("environment", "Environment", True),
        ]
        toc = [(s["anchor"], f"{s['question']}. {s['title']}" if s["question"] else s["title"]) for s in self.sections]
        toc += [(anchor, title) for anchor, title, shown in tail if shown]
        parts.append(
            "<nav><h2 id='contents'>Contents</h2><ul>"
            + "".join(f'<li><a href="#{a}">{escape(t)}</a></li>' for a, t in toc)
            + "</ul></nav>"
        )
        parts.extend(self.blocks)
        if metrics:  # every number of metrics.json; nested values (a grid's rows) have their own tables
            rows = [{"metric": k, "value": v} for k, v in metrics.items() if not isinstance(v, (list, dict, tuple))]
            parts.append(
                "<h2 id='metrics'>All metrics</h2>" + f"<details><summary>{len(rows)} numbers "
                "(also in metrics.json)</summary>" + html_table(rows) + "</details>"
            )
        if config is not None:
            parts.append(
                "<h2 id='configuration'>Configuration</h2><details><summary>the resolved config "
                "(also in config.yaml)</summary><pre>" + escape(dump_yaml(config)) + "</pre></details>"
            )
        parts.append("<h2 id='environment'>Environment</h2>")
        parts.append(html_table([{"package": k, "version": v} for k, v in versions().items()]))
        parts.append("</body></html>")
        return "\n".join(parts)

    def _answers_html(self) -> str:
        asked = [s for s in self.sections if s["question"]]
        if not asked:
            return ""
        items = "".join(
            f'<li value="{s["question"]}"><a href="#{s["anchor"]}">{escape(s["title"])}</a>: '
            f"{escape(s['answer'] or 'see the section.')}</li>"
            for s in asked
        )
        return f"<section class='answers'><h2 id='answers'>Answers</h2><ol>{items}</ol></section>"

    def answers(self) -> dict[int, str]:
        return {s["question"]: s["answer"] for s in self.sections if s["question"] and s["answer"]}

    def write(self, name: str = "report.html", **kwargs) -> None:
        page = self.render(**kwargs)
        size = len(page.encode("utf-8"))
        if size > SIZE_BUDGET:
            log.warning(
                "%s is %.1f MB, above the %.0f MB budget; fewer figures (figures.*, explain.*) make it lighter",
                self.run.file(name),
                size / 1e6,
                SIZE_BUDGET / 1e6,
            )
        self.run.write_text(name, page)


def cell_value(value):
    """A table cell as JSON holds it: numbers and text as they are, a link as its text, anything else as text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Link):
        return value.text
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # a numpy scalar
        return value.item()
    if isinstance(value, (list, tuple)):
        return [cell_value(v) for v in value]
    return str(value)


def card_html(card: Sequence) -> str:
    """Headline numbers as a row of small boxes, each with its 95 % interval (over the test items) and its
    baseline from the same run."""
    if not card:
        return ""
    boxes = []
    for label, value, ci, base, base_name in card:
        if value is None:
            continue
        name = escape(str(base_name).replace("_", " "))
        spread = (
            ""
            if not ci
            else f"<span>95 % interval {escape(format_value(ci[0], 3))} to {escape(format_value(ci[1], 3))}</span>"
        )
        against = "" if base is None else f"<span>{name}: {escape(format_value(base, 3))}</span>"
        boxes.append(f"<div><b>{escape(format_value(value, 3))}</b>{escape(label)}{spread}{against}</div>")
    return "<div class='card'>" + "".join(boxes) + "</div>"


def html_table(
    rows: Sequence[dict], *, caption: str | None = None, highlight: int | None = None, first: Sequence[str] = ()
) -> str:
    if not rows:
        return "<p class='note'>(no rows)</p>"
    present = list(dict.fromkeys(k for row in rows for k in row))
    columns = [c for c in first if c in present] + [c for c in present if c not in first]
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{escape(caption)}</caption>")

    def cell(tag: str, value: Any) -> str:
        if isinstance(value, Link):
            return f'<{tag} class="t"><a href="{escape(value.href, quote=True)}">{escape(value.text)}</a></{tag}>'
        text = format_value(value)
        cls = "" if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) else ' class="t"'
        return f"<{tag}{cls}>{escape(text)}</{tag}>"

    out.append("<tr>" + "".join(f'<th class="t">{escape(str(c))}</th>' for c in columns) + "</tr>")
    for i, row in enumerate(rows):
        cls = ' class="best"' if i == highlight else ""
        out.append(f"<tr{cls}>" + "".join(cell("td", row.get(c)) for c in columns) + "</tr>")
    out.append("</table>")
    return "".join(out)


class GridCell(NamedTuple):
    """One cell of a two-key grid: its value, an optional second line, a shade from 0 (worst) to 1 (best)."""

    text: str
    note: str = ""
    shade: float | None = None
    best: bool = False


def grid_html(cells: dict[tuple[str, str], GridCell], *, rows: str, columns: str, caption: str) -> str:
    """A pivot: one row per value of `rows`, one column per value of `columns` (labels as given), each cell
    shaded by its value and the best one marked; `class="grid-pivot"`."""
    row_labels = list(dict.fromkeys(r for r, _ in cells))
    col_labels = list(dict.fromkeys(c for _, c in cells))
    out = [
        f'<table class="grid-pivot"><caption>{escape(caption)}</caption>',
        f'<tr><th class="t">{escape(rows)} \\ {escape(columns)}</th>'
        + "".join(f"<th>{escape(c)}</th>" for c in col_labels)
        + "</tr>",
    ]
    for r in row_labels:
        out.append(f'<tr><th class="t">{escape(r)}</th>')
        for c in col_labels:
            cell = cells.get((r, c), GridCell("–"))
            style = "" if cell.shade is None else f' style="background:hsl(140,45%,{96 - 30 * cell.shade:.0f}%)"'
            mark = ' class="best"' if cell.best else ""
            note = f"<br><small>{escape(cell.note)}</small>" if cell.note else ""
            out.append(f"<td{mark}{style}>{'&#9733; ' if cell.best else ''}{escape(cell.text)}{note}</td>")
        out.append("</tr>")
    return "".join(out) + "</table>"


def pivot(rows: Sequence[dict], index: str, column: str, value: str, *, column_name: str = "{}") -> list[dict]:
    """Long rows to a wide table: one row per `index` value, one column per `column` value."""
    out: dict = {}
    for row in rows:
        out.setdefault(row[index], {index: row[index]})[column_name.format(row[column])] = row.get(value)
    return list(out.values())


def text_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A plain fixed-width table for the terminal."""
    if not rows:
        return ""
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))
    cells = [[format_value(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


INDEX_MARK = "<meta name='generator' content='dlstudy run all'>"


def is_index_page(path) -> bool:
    """Whether `path` is a page `run all` wrote (marked, or an older one by its title), so that a rerun may
    replace it; a user's own file is never replaced."""
    with open(path, "rb") as f:
        head = f.read(4096)
    return INDEX_MARK.encode() in head or b"<title>dlstudy: all studies</title>" in head


def code_spans(text: str) -> str:
    """Plain text as HTML, with `backticked` words as code (the tour's banner names commands)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def index_page(
    title: str, entries: Sequence[dict], *, started: str, seconds: float, command: str, reduced: str | None = None
) -> str:
    """The page `run all` writes: when, how long and how (and, for the tour, what it left out), then one row per
    study with its data, its headline numbers against their baselines, its time and a link to its report."""
    rows = [
        {
            "study": Link(e["study"], e["href"]),
            "state": e["state"],
            "data": e.get("data"),
            "headline numbers (against the baselines of the same run)": e["summary"],
            "seconds": e.get("seconds"),
        }
        for e in entries
    ]
    minutes = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{INDEX_MARK}<title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>"
        f"<p class='note'>Started {escape(started)}, took {escape(minutes)}: <code>{escape(command)}</code>. "
        "Each study's report has its config, environment and figures; every number below comes from that run.</p>"
        + (f"<div class='reduced-run'>{code_spans(reduced)}</div>" if reduced else "")
        + html_table(rows)
        + "</body></html>"
    )


def add_index_link(report_file, href: str = "../index.html") -> None:
    """Put a link back to the index at the top of a finished report (run all writes the index last)."""
    from pathlib import Path

    from dlstudy.runs import atomic_write_bytes

    path = Path(report_file)
    if not path.exists():
        return
    page = path.read_text(encoding="utf-8")
    link = f'<p class="note"><a href="{escape(href, quote=True)}">&larr; all studies (index)</a></p>'
    if link not in page:
        atomic_write_bytes(path, page.replace("<body>", "<body>" + link, 1).encode("utf-8"))
