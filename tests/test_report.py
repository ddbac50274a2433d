import matplotlib.pyplot as plt

from dlstudy.report import Report, html_table, index_page, text_table
from dlstudy.runs import Run

EVIL = "<script>alert(1)</script>"


def test_user_strings_are_escaped(tmp_path):
    config = {"data": {"path": EVIL}}
    run = Run.open(tmp_path / "r", config, resume=False, study="cluster")
    report = Report(f"title {EVIL}", run=run)
    report.heading(EVIL)
    report.paragraph(EVIL)
    report.bullets([EVIL])
    report.table([{"name": EVIL, "value": 1.23456}])
    html = report.render(config=config, metrics={EVIL: EVIL})
    assert "<script>" not in html and html.count("&lt;script&gt;") >= 6
    assert "<td>1.235</td>" in html


def test_figures_are_saved_and_embedded(tmp_path):
    run = Run.open(tmp_path / "r", {}, resume=False, study="cluster")
    report = Report("t", run=run)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    report.figure(fig, "line", "a line")
    report.write(config={}, seconds=1.0)
    html = (tmp_path / "r" / "report.html").read_text()
    assert (tmp_path / "r" / "figures" / "line.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in html and "torch" in html  # versions table


def test_tables():
    assert "(no rows)" in html_table([])
    table = text_table([{"a": 1, "b": None}, {"a": 0.5, "b": "x"}])
    assert table.splitlines()[0].split() == ["a", "b"] and "–" in table
    page = index_page(
        "all",
        [{"study": EVIL, "href": '"><x', "state": "complete", "summary": EVIL, "data": EVIL}],
        started="2026-12-02 06:00:00",
        seconds=95.0,
        command=f"dlstudy run all --out {EVIL}",
    )
    assert "<script>" not in page and '"><x' not in page and "took 1.6 min" in page
