"""The self-distillation family head to head (chapter 06): tables, verdicts and a figure for the result files of
``python -m sdkit compare``.

A result file holds one row per method and seed (``rows``), a mean/std summary per method (``summary``), the
command, the machine and the wall time. Every verdict here is the book's one rule,
:func:`sdkit.book.stats.compare_paired` against ``plain`` on the same seeds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..evaluate import Table
from . import stats
from .stats import compare_paired

__all__ = [
    "METRICS", "load_family", "provenance_table", "family_table", "family_verdicts", "verdict_table",
    "accuracy_verdicts", "budget_shift_table", "plot_family",
]  # fmt: skip

#: The compared metrics: result key, label, and whether higher is better.
METRICS = (("test_accuracy", "test accuracy", True), ("test_nll", "test NLL", False), ("test_ece", "test ECE", False))


def load_family(path: str | Path) -> dict[str, Any]:
    """The result file of ``python -m sdkit compare`` at ``path``, checked for the keys the tables read."""
    result = json.loads(Path(path).read_text())
    missing = [k for k in ("rows", "summary", "command", "machine", "date", "wall_seconds") if k not in result]
    if missing:
        raise ValueError(f"{path} lacks {missing}: pass a file written by `python -m sdkit compare --out FILE`")
    return result


def provenance_table(result: dict[str, Any]) -> Table:
    """The command that produced ``result``, the machine (CPU, cores, torch threads, load at the end), the date
    and the total wall time."""
    m = result["machine"]
    machine = (f"{m['cpu_model']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch thread(s), "
               f"load at the end {m['load_average']}")  # fmt: skip
    rows = [
        ["command", result["command"]],
        ["machine", machine],
        ["date, wall time", f"{result['date'][:10]}, {result['wall_seconds'] / 60:.0f} min"],
    ]
    return Table(["run", "value"], rows)


def _by_method(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    family = {r["method"]: r for r in result["summary"]}
    if "plain" not in family:
        raise ValueError(f"the result has no 'plain' method to compare with; methods: {sorted(family)}")
    return family


def family_table(result: dict[str, Any]) -> Table:
    """One row per method: seeds, test accuracy, NLL and ECE (mean ± std over seeds), wall time per run (mean ±
    std, seconds) and that time as a multiple of plain training's.

    >>> rows = [{"method": "plain", "n_seeds": 2, "test_accuracy_mean": 0.9, "test_accuracy_std": 0.01,
    ...          "test_nll_mean": 0.3, "test_nll_std": 0.02, "test_ece_mean": 0.02, "test_ece_std": 0.001,
    ...          "seconds_mean": 20.0, "seconds_std": 1.0}]
    >>> family_table({"summary": rows}).rows
    [['plain', '2', '0.9000 ± 0.0100', '0.3000 ± 0.0200', '0.0200 ± 0.0010', '20 ± 1', '1.0']]
    """
    family = _by_method(result)

    def pm(r: dict[str, Any], metric: str) -> str:
        return f"{r[metric + '_mean']:.4f} ± {r[metric + '_std']:.4f}"

    plain_seconds = family["plain"]["seconds_mean"]
    rows = [
        [m, r["n_seeds"], *(pm(r, metric) for metric, _, _ in METRICS),
         f"{r['seconds_mean']:.0f} ± {r['seconds_std']:.0f}", f"{r['seconds_mean'] / plain_seconds:.1f}"]
        for m, r in family.items()
    ]  # fmt: skip
    return Table(["method", "seeds", "test accuracy", "test NLL", "test ECE", "seconds per run", "x plain"], rows)


def family_verdicts(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """For every method but ``plain``, its comparisons with ``plain`` on the seeds both ran, one per entry of
    :data:`METRICS` (accuracy, NLL, ECE), as :func:`sdkit.book.stats.compare_paired` returns them."""
    methods = [m for m in _by_method(result) if m != "plain"]
    return {
        m: [compare_paired(result["rows"], metric, key="method", candidate=m, baseline="plain", higher_is_better=up)
            for metric, _, up in METRICS]
        for m in methods
    }  # fmt: skip


def _ci(c: dict[str, Any]) -> str:
    return f"{c['diff']:+.4f} {stats.interval(c)} {c['verdict']}"


def verdict_table(verdicts: dict[str, list[dict[str, Any]]]) -> Table:
    """One row per method of :func:`family_verdicts`: for accuracy, NLL and ECE the mean paired difference from
    plain, its 95% interval and the verdict; and on how many seeds the method was more accurate."""
    rows = [[m, _ci(acc), f"{acc['wins']}/{acc['n']}", _ci(nll), _ci(ece)] for m, (acc, nll, ece) in verdicts.items()]
    header = ["vs plain", "accuracy diff [95% CI]", "won", "NLL diff [95% CI]", "ECE diff [95% CI]"]
    return Table(header, rows)


def accuracy_verdicts(verdicts: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """The methods whose accuracy verdict against plain is ``better`` and those whose verdict is ``worse``."""
    return {w: [m for m, cs in verdicts.items() if cs[0]["verdict"] == w] for w in ("better", "worse")}


def budget_shift_table(short: dict[str, list[dict[str, Any]]], longer: dict[str, list[dict[str, Any]]]) -> Table:
    """Accuracy and ECE verdicts (with the mean difference) of each method at two budgets, side by side: how a
    verdict moves when the training budget grows. ``short`` and ``longer`` are :func:`family_verdicts`."""
    if set(short) != set(longer):
        raise ValueError(f"the two budgets compare different methods: {sorted(short)} vs {sorted(longer)}")
    rows = [
        [m] + [f"{v[m][i]['verdict']} ({v[m][i]['diff']:+.4f})" for i in (0, 2) for v in (short, longer)] for m in short
    ]
    return Table(["vs plain", "accuracy, short", "accuracy, longer", "ECE, short", "ECE, longer"], rows)


def plot_family(result: dict[str, Any], title: str) -> Figure:
    """One panel per metric of :data:`METRICS`: each method's mean ± std over seeds (blue), its single seeds
    (grey) and plain training's mean (dashed line)."""
    family = _by_method(result)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.3), dpi=90)
    for ax, (metric, label, up) in zip(axes, METRICS, strict=True):
        for i, m in enumerate(family):
            seeds = [r[metric] for r in result["rows"] if r["method"] == m]
            ax.scatter([i] * len(seeds), seeds, s=10, color="0.6", zorder=2)
            ax.errorbar(i, family[m][f"{metric}_mean"], yerr=family[m][f"{metric}_std"], fmt="o", color="C0",
                        capsize=4)  # fmt: skip
        ax.axhline(family["plain"][f"{metric}_mean"], color="0.3", ls="--", lw=1)
        ax.set_xticks(range(len(family)), list(family), rotation=45)
        ax.set_title(f"{label} ({'higher' if up else 'lower'} is better)", fontsize=9)
    fig.suptitle(title + ": mean ± std (blue), single seeds (grey), plain (dashed)", fontsize=9)
    fig.tight_layout()
    return fig
