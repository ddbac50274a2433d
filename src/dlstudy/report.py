"""The one report builder: a self-contained HTML page (figures embedded, readable offline), and the
short summary table printed in the terminal. Every string that reaches the page is escaped."""
from __future__ import annotations

import base64
import io
import platform
import time
from html import escape
from typing import Any, NamedTuple, Sequence

import numpy as np

from dlstudy.config import dump_yaml

CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:13px;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td.t,th.t{text-align:left}tr.best td{background:#eef8ee}
figure{margin:1em 0}figure img{max-width:100%}figcaption{color:#555;font-size:13px}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}.note{color:#555}
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


def versions() -> dict:
    import sklearn
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__, "platform": platform.platform()}


class Report:
    """Collects blocks, then renders one page. Figures are saved under figures/ and embedded."""

    def __init__(self, title: str, *, run=None):
        self.title = title
        self.run = run
        self.blocks: list[str] = []

    def heading(self, text: str) -> None:
        self.blocks.append(f"<h2>{escape(text)}</h2>")

    def paragraph(self, text: str, *, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.blocks.append(f"<p{cls}>{escape(text)}</p>")

    def preformatted(self, text: str) -> None:
        self.blocks.append(f"<pre>{escape(text)}</pre>")

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")

    def table(self, rows: Sequence[dict], *, caption: str | None = None, highlight: int | None = None) -> None:
        self.blocks.append(html_table(rows, caption=caption, highlight=highlight))

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

    def render(self, *, config: dict | None = None, metrics: dict | None = None, seconds: float | None = None) -> str:
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(self.title)}</title>",
                 f"<style>{CSS}</style></head><body><h1>{escape(self.title)}</h1>"]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        parts.append(f"<p class='note'>Written {escape(stamp)}{escape(took)}.</p>")
        if metrics:  # the headline numbers; nested values (a grid's rows) have their own tables below
            parts.append("<h2>Summary</h2>")
            parts.append(html_table([{"metric": k, "value": v} for k, v in metrics.items()
                                     if not isinstance(v, (list, dict, tuple))]))
        parts.extend(self.blocks)
        if config is not None:
            parts.append("<h2>Configuration</h2><pre>" + escape(dump_yaml(config)) + "</pre>")
        parts.append("<h2>Environment</h2>")
        parts.append(html_table([{"package": k, "version": v} for k, v in versions().items()]))
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, **kwargs) -> None:
        self.run.write_text("report.html", self.render(**kwargs))


def html_table(rows: Sequence[dict], *, caption: str | None = None, highlight: int | None = None) -> str:
    if not rows:
        return "<p class='note'>(no rows)</p>"
    columns = list(dict.fromkeys(k for row in rows for k in row))
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


def index_page(title: str, entries: Sequence[dict], *, started: str, seconds: float, command: str) -> str:
    """The page `run all` writes: when, how long and how, then one row per study with its data, its
    headline numbers against their baselines, its time and a link to its report."""
    rows = [{"study": Link(e["study"], e["href"]), "state": e["state"], "data": e.get("data"),
             "headline numbers (against the baselines of the same run)": e["summary"], "seconds": e.get("seconds")}
            for e in entries]
    minutes = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>"
            f"<p class='note'>Started {escape(started)}, took {escape(minutes)}: <code>{escape(command)}</code>. "
            "Each study's report has its config, environment and figures; every number below comes from that run.</p>"
            + html_table(rows) + "</body></html>")


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
