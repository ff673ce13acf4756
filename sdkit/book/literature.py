"""The papers that the Background chapter surveys, as data, with the table and the timeline drawn from them.

Each method of the (self-)distillation family is a :class:`Paper` that records where its soft label comes from,
how many training runs it needs, whether it needs an extra forward pass per training step and which ``sdkit``
name implements it; its ``kind`` says which reading of "the teacher and the student are the same model" it
belongs to (see :data:`KINDS`). :data:`THEORY` adds the papers that analyse distillation rather than propose a
method. Keeping the survey as data lets the chapter show one table and one figure from the same rows, and lets a
reader add a row and redraw both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..evaluate import Table

__all__ = ["Paper", "KINDS", "FAMILY", "THEORY", "family_table", "plot_timeline"]

#: What each ``Paper.kind`` means, in the order the timeline's legend lists them, with the colour it is drawn in.
KINDS: dict[str, tuple[str, str]] = {
    "KD": ("distillation, separate teacher", "tab:gray"),
    "1": ("reading 1: generations", "tab:blue"),
    "2": ("reading 2: one network, online", "tab:orange"),
    "none": ("no teacher network", "tab:green"),
    "theory": ("analysis and theory", "tab:purple"),
}


class Paper(NamedTuple):
    """One paper: the method's name, its BibTeX key, first author, year and kind (a key of :data:`KINDS`).

    The last four fields describe a method (empty for a paper in :data:`THEORY`): where the soft label comes from,
    the training runs it needs ("E+1": an ensemble's E models plus the mimic; "G+1": a teacher plus G student
    generations), whether each training step needs an extra forward pass, and the ``sdkit`` entry point.
    """

    name: str
    key: str
    author: str
    year: int
    kind: str
    soft_label: str = ""
    runs: str = ""
    extra_forward: str = ""
    in_sdkit: str = ""


#: The family of methods, oldest first. DINO is self-supervised; ``sdkit.EMATeacher`` is its supervised analogue.
FAMILY: tuple[Paper, ...] = (
    Paper("Model compression", "bucila2006", "Buciluă", 2006, "KD", "an ensemble, on synthetic inputs", "E+1", "no",
          "train(teacher)"),
    Paper("Distillation", "hinton2015", "Hinton", 2015, "KD", "a larger trained network, softened by T", "2", "yes",
          "train(teacher)"),
    Paper("Mean teacher", "tarvainen2017", "Tarvainen", 2017, "2", "an EMA of the student's own weights", "1", "yes",
          "EMATeacher"),
    Paper("Born-again nets", "furlanello2018", "Furlanello", 2018, "1", "a trained net, same architecture", "G+1",
          "yes", "born_again"),
    Paper("Be your own teacher", "zhang2019", "Zhang", 2019, "2", "the network's own deepest classifier", "1", "no",
          "BYOT"),
    Paper("CS-KD", "yun2020", "Yun", 2020, "2", "the network, on another image of the class", "1", "yes", "CSKD"),
    Paper("Teacher-free KD", "yuan2020", "Yuan", 2020, "none", "a hand-designed distribution", "1", "no",
          "TeacherFreeKD"),
    Paper("PS-KD", "kim2021", "Kim", 2021, "2", "the network's predictions, previous epoch", "1", "no", "PSKD"),
    Paper("DINO", "caron2021", "Caron", 2021, "2", "an EMA of the student's weights, no labels", "1", "yes",
          "(EMATeacher)"),
)  # fmt: skip

#: Papers that analyse (self-)distillation instead of proposing a method.
THEORY: tuple[Paper, ...] = (
    Paper("Label smoothing analysis", "muller2019", "Müller", 2019, "theory"),
    Paper("Efficacy of KD", "cho2019", "Cho", 2019, "theory"),
    Paper("Self-distillation amplifies regularization", "mobahi2020", "Mobahi", 2020, "theory"),
    Paper("Does KD really work?", "stanton2021", "Stanton", 2021, "theory"),
    Paper("Ensemble, KD and SD theory", "allenzhu2023", "Allen-Zhu", 2023, "theory"),
)


def _check_papers(papers: Sequence[Paper]) -> list[Paper]:
    papers = list(papers)
    if not papers:
        raise ValueError("papers is empty; pass literature.FAMILY, literature.THEORY or your own Paper rows")
    for i, paper in enumerate(papers):
        if not isinstance(paper, Paper):
            raise ValueError(f"papers must hold Paper rows, got papers[{i}]={paper!r}; build one with Paper(...)")
        if paper.kind not in KINDS:
            raise ValueError(f"papers[{i}] ({paper.name!r}) has kind={paper.kind!r}; use one of {list(KINDS)}")
    return papers


def family_table(papers: Sequence[Paper] = FAMILY) -> Table:
    """The methods as a table: name, year, reading, where the soft label comes from, training runs, extra forward
    pass per step, and the ``sdkit`` entry point (the ``kind`` "KD" shows as reading "KD").

    >>> table = family_table(FAMILY[:2])
    >>> table.header
    ['method', 'year', 'reading', 'soft label comes from', 'runs', 'extra fwd', 'sdkit.']
    >>> table.rows[1]
    ['Distillation', '2015', 'KD', 'a larger trained network, softened by T', '2', 'yes', 'train(teacher)']
    """
    rows = [[p.name, p.year, p.kind, p.soft_label, p.runs, p.extra_forward, p.in_sdkit] for p in _check_papers(papers)]
    return Table(["method", "year", "reading", "soft label comes from", "runs", "extra fwd", "sdkit."], rows)


def plot_timeline(papers: Sequence[Paper], ax: Axes | None = None, *, title: str | None = None) -> Figure:
    """Each paper as a dot at its year, one row per paper (oldest at the top), coloured by kind, with a legend of
    the kinds present in the order of :data:`KINDS`. Returns the figure.

    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen
    >>> fig = plot_timeline(FAMILY + THEORY)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()][:2]
    ['Ensemble, KD and SD theory (Allen-Zhu 2023)', 'PS-KD (Kim 2021)']
    >>> plt.close(fig)
    """
    papers = _check_papers(papers)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5), dpi=90)
    items = sorted(papers, key=lambda p: (p.year, p.name), reverse=True)
    first, last = min(p.year for p in items), max(p.year for p in items)
    start = first - 1  # each dot hangs on a faint line from the left edge, so that rows are easy to follow
    for row, paper in enumerate(items):
        label, color = KINDS[paper.kind]
        ax.hlines(row, start, paper.year, color=color, alpha=0.25, lw=1)
        ax.plot(paper.year, row, "o", color=color, ms=8, label=label)
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels([f"{p.name} ({p.author} {p.year})" for p in items], fontsize=8)
    ax.set_xticks(range(first, last + 2, 2))
    ax.set_xlim(start, last + 1.5)
    handles, labels = ax.get_legend_handles_labels()
    by_label = dict(zip(labels, handles, strict=True))  # one legend entry per kind, not one per paper
    present = [label for label, _ in KINDS.values() if label in by_label]
    ax.legend([by_label[label] for label in present], present, fontsize=7.5, loc="lower left")
    ax.set_xlabel("year of publication")
    if title is not None:
        ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return ax.figure
