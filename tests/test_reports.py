"""The reports as a reader meets them: contents, answers to every homework question of the study,
headline numbers first, selection columns on the left, and a page that a real browser renders with
no console errors and every image decoded. All on the tour's reports (`make run`'s job)."""

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from dlstudy.studies import STUDIES


class Page(HTMLParser):
    """The parts of a report the tests read: ids, links, answers, table headers, the card."""

    def __init__(self, html: str):
        super().__init__()
        self.ids, self.links, self.answers, self.headers, self.card = set(), [], {}, [], False
        self._answer, self._in_header, self._row = None, False, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href", "").startswith("#"):
            self.links.append(a["href"][1:])
        if tag == "div" and a.get("class") == "card":
            self.card = True
        if tag == "p" and a.get("class") == "answer":
            self._answer = int(a["data-question"])
            self.answers[self._answer] = ""
        if tag == "tr" and self._row is None:
            self._row = []
        if tag == "th":
            self._in_header = True

    def handle_endtag(self, tag):
        if tag == "p":
            self._answer = None
        if tag == "th":
            self._in_header = False
        if tag == "tr" and self._row is not None:
            if self._row:
                self.headers.append(self._row)
            self._row = None
        if tag == "table":
            self._row = None

    def handle_data(self, data):
        if self._answer is not None:
            self.answers[self._answer] += data
        if self._in_header and self._row is not None:
            self._row.append(data)


@pytest.mark.slow
@pytest.mark.parametrize("study", list(STUDIES))
def test_every_report_answers_its_questions(tour, study):
    folder, code, _, err = tour
    assert code == 0, err
    page = Page((folder / study / "report.html").read_text())
    assert "contents" in page.ids and "answers" in page.ids and page.card
    assert page.links and all(target in page.ids for target in page.links)  # every contents link lands
    questions = [s.question for s in STUDIES[study].SECTIONS if s.question]
    for q in questions:  # an answer in words, with numbers from the run, and a link to its section
        assert f"q{q}" in page.ids and q in page.answers, f"{study}: question {q} has no answer"
        assert re.search(r"\d", page.answers[q]) and len(page.answers[q]) > 60


@pytest.mark.slow
def test_variant_tables_put_the_selection_columns_first(tour):
    folder = tour[0]
    trend = Page((folder / "trend" / "report.html").read_text())
    every = [h for h in trend.headers if "val_balanced_accuracy" in h]
    assert every and all(h[:4] == ["model", "window", "val_balanced_accuracy", "test_balanced_accuracy"] for h in every)
    cluster = Page((folder / "cluster" / "report.html").read_text())
    grid = next(h for h in cluster.headers if "private_accuracy" in h and "reconstruction_mse" in h)
    assert grid[:7] == [
        "encoder",
        "reduction",
        "clustering",
        "reconstruction_mse",
        "accuracy",
        "public_accuracy",
        "private_accuracy",
    ]


def chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("CI"):
        pytest.fail("chromium not found; .ci/run installs Debian's chromium (apt-get install chromium)")
    return found


PROBE = (
    "<script>addEventListener('load', () => { const ok = [...document.images].map(i => i.complete && "
    "i.naturalWidth > 0); const p = document.createElement('pre'); p.id = 'probe'; p.textContent = "
    "JSON.stringify({images: ok.length, decoded: ok.filter(Boolean).length, "
    "width: document.documentElement.scrollWidth}); document.body.appendChild(p); });</script>"
)


@pytest.mark.slow
@pytest.mark.parametrize("study", ["trend", "classify"])
def test_a_real_browser_renders_the_report(tour, tmp_path, study):
    """Headless Chromium at 1280 px: no console message, every image decodes, nothing wider than the window."""
    browser = chromium()
    if browser is None:
        pytest.skip("chromium not installed")
    page = (tour[0] / study / "report.html").read_text()
    probe = tmp_path / "probe.html"  # the report plus a probe script: the report itself runs no scripts
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,900",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="probe">([^<]*)</pre>', done.stdout)
    assert found, done.stderr[-2000:]
    seen = json.loads(found.group(1))
    assert seen["images"] == page.count("<img ") > 0 and seen["decoded"] == seen["images"]
    assert seen["width"] <= 1280  # wide tables scroll inside their box; the page itself does not
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console


def test_each_study_declares_exactly_the_numbers_its_metrics_hold(tour):
    """A sweep checks --metric against METRICS before anything runs: the list must be the run's own."""
    import json

    from dlstudy.studies import STUDIES

    folder = tour[0]
    for name, module in STUDIES.items():
        if module.OBJECTIVE is None:
            continue
        metrics = json.loads((folder / name / "metrics.json").read_text())
        numbers = {k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        unset = {k for k, v in metrics.items() if v is None}  # e.g. a split the tour's data does not have
        assert numbers <= set(module.METRICS) <= numbers | unset, (name, numbers ^ set(module.METRICS))
        assert module.OBJECTIVE[0] in module.METRICS


@pytest.mark.slow
def test_the_tour_says_it_is_reduced_and_every_headline_carries_its_interval(tour):
    """Issue 35: the tour's index and each report say what was reduced and how to run the full study; each
    scored headline number has a 95 % interval around it, shown on the card."""
    import json

    folder = tour[0]
    index = (folder / "index.html").read_text()
    assert "class='reduced-run'" in index and "run all --full" in index
    banner = re.search(r"<div class='reduced-run'>(.*?)</div>", index).group(1)
    assert "`" not in banner and "<code>dlstudy run all --full</code>" in banner  # issue 48: backticks shown raw
    assert "no world map (Q11)" in banner  # what the stand-in data cannot show
    for name, module in STUDIES.items():
        page = (folder / name / "report.html").read_text()
        note = re.search(r"<div class='reduced-run'>(.*?)</div>", page)
        assert note and "--quick" in note.group(1) and module.FULL_STUDY.split(" (")[0] in note.group(1), name
        metrics = json.loads((folder / name / "metrics.json").read_text())
        for key, value in metrics.items():
            if key.endswith("_ci95") and value is not None:
                low, high = value
                assert low <= metrics[key.removesuffix("_ci95")] <= high, (name, key)
        if module.OBJECTIVE is not None:
            assert any(k.endswith("_ci95") for k in metrics), name
            assert "95 % interval" in page.split("class='card'")[1].split("</div></div>")[0], name
