import re
from pathlib import Path

import pytest

from sdkit.book.literature import FAMILY, KINDS, THEORY, Paper, family_table, plot_timeline

BIBLIOGRAPHY = Path(__file__).resolve().parents[1] / "book" / "references.bib"


def test_every_paper_is_in_the_bibliography_with_its_year():
    bib = BIBLIOGRAPHY.read_text(encoding="utf-8")
    for paper in FAMILY + THEORY:
        entry = re.search(r"@\w+\{" + re.escape(paper.key) + r",(.*?)\n\}", bib, re.S)
        assert entry, f"{paper.key} is not in references.bib"
        year = re.search(r"year\s*=\s*\{?(\d{4})", entry.group(1))
        assert year and int(year.group(1)) == paper.year, paper.key


def test_family_rows_describe_methods_and_theory_rows_do_not():
    assert all(p.kind in KINDS and p.kind != "theory" and p.soft_label and p.runs for p in FAMILY)
    assert all(p.kind == "theory" and not p.soft_label for p in THEORY)
    assert {p.key for p in FAMILY}.isdisjoint(p.key for p in THEORY)


def test_family_table_has_one_row_per_paper_built_from_its_fields():
    mutual = Paper("Deep mutual learning", "zhang2018", "Zhang", 2018, "2", "a peer network, trained alongside", "1",
                   "yes", "-")  # fmt: skip
    table = family_table([*FAMILY, mutual])
    assert len(table.rows) == len(FAMILY) + 1
    assert table.rows[0] == ["Model compression", "2006", "KD", "an ensemble, on synthetic inputs", "E+1", "no",
                             "train(teacher)"]  # fmt: skip
    assert table.rows[-1] == ["Deep mutual learning", "2018", "2", "a peer network, trained alongside", "1", "yes", "-"]
    assert "<td>Deep mutual learning</td>" in table._repr_html_()


def test_timeline_draws_one_dot_per_paper_in_year_order():
    papers = [*FAMILY, *THEORY]
    fig = plot_timeline(papers, title="papers")
    (ax,) = fig.axes
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(dots) == len(papers)
    years = [float(line.get_xdata()[0]) for line in dots]
    rows = [float(line.get_ydata()[0]) for line in dots]
    # row 0 is the bottom of the plot: the newest paper; the oldest is at the top
    assert [years[rows.index(r)] for r in sorted(rows)] == sorted(years, reverse=True)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "Model compression (Buciluă 2006)"
    assert labels[0] == "Ensemble, KD and SD theory (Allen-Zhu 2023)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [label for label, _ in KINDS.values()]
    assert ax.get_title() == "papers" and ax.get_xlim() == (2005, 2024.5)


def test_timeline_legend_lists_only_the_kinds_present():
    fig = plot_timeline([p for p in FAMILY if p.kind == "2"])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [KINDS["2"][0]]


def test_bad_papers_raise():
    with pytest.raises(ValueError, match="papers is empty"):
        family_table([])
    with pytest.raises(ValueError, match=r"papers\[0\] \('X'\) has kind='3'; use one of"):
        plot_timeline([Paper("X", "x2020", "X", 2020, "3")])
    with pytest.raises(ValueError, match=r"papers must hold Paper rows, got papers\[0\]"):
        family_table([("X", "x2020", "X", 2020, "2")])
