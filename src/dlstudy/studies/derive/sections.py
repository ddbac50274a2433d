"""The derive study's report: one section per homework question (24-28), each derivation's steps and checks."""

from __future__ import annotations

from dlstudy.report import Report
from dlstudy.studies.derive.config import Config
from dlstudy.studies.derive.experiment import DeriveResults
from dlstudy.studies.protocol import section


def show(report: Report, d) -> None:
    report.heading(d.title)
    report.preformatted("\n".join(d.steps))
    for caption, rows in d.tables:
        report.table(rows, caption=caption)
    report.table([c.row() for c in d.checks], caption="Checks against PyTorch (relative error in float64)")
    report.paragraph(d.verdict(), note=True)


def question(title: str, number: int, names: list[str]):
    """The section for homework question `number`, made of the derivations `names` (absent ones are skipped)."""

    @section(title, question=number)
    def answer(report: Report, r: DeriveResults, cfg: Config) -> None:
        done = [r.done[n] for n in names if n in r.done]
        for d in done:
            show(report, d)
        if done:
            report.answer(" ".join(d.answer for d in done))

    answer.__name__ = names[0].replace("-", "_")
    return answer


SECTIONS = [
    question("An LSTM cell traced by hand", 24, ["lstm"]),
    question("The gradient of the word2vec skip-gram loss", 25, ["word2vec"]),
    question("PCA as variance maximisation", 26, ["pca"]),
    question("The output shape of a convolution", 27, ["conv-shape"]),
    question("Batch-norm gradients, and softmax with cross-entropy", 28, ["batchnorm", "softmax-ce"]),
]
CARD = [
    ("derivations", "n_derivations", None),
    ("checks against autograd", "checks", None),
    ("checks failed", "checks_failed", None),
]
