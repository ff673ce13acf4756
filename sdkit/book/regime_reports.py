"""The regime grid, read and judged: gains over plain training per cell, the seed's claims against the measurements,
verdict counts, provenance, and the regime map.

A grid is what :func:`load_grid` reads: the cell files :func:`sdkit.book.regimes.run_cell` writes, by cell name.
Verdicts use :func:`sdkit.book.stats.paired`: per-seed differences from ``plain`` with a 95% t-interval.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..evaluate import Table
from . import stats
from .regimes import AXES, CELLS, METHODS

__all__ = [
    "load_grid", "gains", "headline", "gain_table", "claims_table", "verdict_counts", "verdict_count_table",
    "provenance_table", "plot_regime_map",
]  # fmt: skip


def load_grid(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Every cell result in ``folder`` (``*.json`` written by :func:`sdkit.book.regimes.run_cell`), by cell name, in
    grid order."""
    found = {json.loads(p.read_text())["cell"]: json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))}
    order = [c for c in CELLS if c in found]
    return {c: found[c] for c in order}


def gains(result: dict[str, Any], metric: str = "test_accuracy", *, higher_is_better: bool = True,
          baseline: str = "plain") -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per method (other than ``baseline``), :func:`sdkit.book.stats.paired` of ``metric`` against ``baseline`` over the
    cell's seeds.

    >>> rows = [{"method": m, "seed": s, "test_accuracy": a} for m, s, a in
    ...         [("plain", 0, 0.80), ("plain", 1, 0.82), ("ls", 0, 0.81), ("ls", 1, 0.84)]]
    >>> g = gains({"rows": rows})["ls"]
    >>> round(g["diff"], 3), g["wins"], g["verdict"]
    (0.015, 2, 'within noise')
    >>> round(gains({"rows": rows}, baseline="ls")["plain"]["diff"], 3)
    -0.015
    """
    by = stats.group(result["rows"], "method")
    if baseline not in by:
        raise ValueError(f"baseline {baseline!r} has no rows in this cell; methods: {sorted(by)}")
    base = {r["seed"]: r[metric] for r in by[baseline]}
    out = {}
    for method, rows in by.items():
        if method == baseline:
            continue
        cand = {r["seed"]: r[metric] for r in rows}
        seeds = sorted(set(base) & set(cand))
        out[method] = stats.paired([cand[s] for s in seeds], [base[s] for s in seeds],
                                   higher_is_better=higher_is_better)  # fmt: skip
    return out


def headline(grid: dict[str, dict[str, Any]], cell: str, method: str, baseline: str = "plain") -> str:
    """One sentence: ``method`` against ``baseline`` in ``cell`` (test accuracy, points, 95% interval, wins).

    >>> rows = [{"method": m, "seed": s, "test_accuracy": a} for m, s, a in
    ...         [("plain", 0, 0.80), ("plain", 1, 0.82), ("dlb", 0, 0.83), ("dlb", 1, 0.85)]]
    >>> headline({"n500": {"rows": rows}}, "n500", "dlb")
    'n500: dlb - plain = +3.00 points [+3.00, +3.00], 2/2 seeds: better'
    """
    p = gains(grid[cell], baseline=baseline)[method]
    ci = stats.interval(p, scale=100, digits=2)
    seeds = f"{p['wins']}/{p['n']} seeds"
    return f"{cell}: {method} - {baseline} = {100 * p['diff']:+.2f} points {ci}, {seeds}: {p['verdict']}"


_MARK = {"better": "▲", "worse": "▼", "within noise": "·"}


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float:
    return stats.mean_std([r[key] for r in rows])[0]


def gain_table(grid: dict[str, dict[str, Any]], metric: str = "test_accuracy", *, higher_is_better: bool = True,
               scale: float = 100.0, intervals: bool = False) -> Table:  # fmt: skip
    """One row per cell: plain's mean ``metric`` and every method's paired difference from plain with its verdict
    mark (▲ better, ▼ worse, · within noise), in units of ``scale`` (points for accuracy); with ``intervals`` also
    the 95% interval of each difference.

    >>> rows = [{"method": m, "seed": s, "test_accuracy": a} for m, s, a in
    ...         [("plain", 0, 0.80), ("plain", 1, 0.82), ("dlb", 0, 0.83), ("dlb", 1, 0.85)]]
    >>> print(gain_table({"n500": {"cell": "n500", "rows": rows}}, intervals=True))
    cell  plain                     dlb
    ----  -----  ----------------------
    n500  81.00  +3.00 [+3.00, +3.00] ▲
    >>> print(gain_table({"n500": {"cell": "n500", "rows": rows}}).rows)
    [['n500', '81.00', '+3.00 ▲']]
    """
    methods = [m for m in METHODS if any(m in {r["method"] for r in res["rows"]} for res in grid.values())]
    methods.remove("plain")
    rows = []
    for name, res in grid.items():
        g = gains(res, metric, higher_is_better=higher_is_better)
        plain = [r for r in res["rows"] if r["method"] == "plain"]
        cells = [f"{scale * _mean(plain, metric):.2f}"]
        for m in methods:
            if m not in g:
                cells.append("-")
                continue
            p = g[m]
            interval = " " + stats.interval(p, scale=scale, digits=2) if intervals else ""
            cells.append(f"{scale * p['diff']:+.2f}{interval} {_MARK.get(p['verdict'], '')}".rstrip())
        rows.append([name, *cells])
    return Table(["cell", "plain", *methods], rows)


def claims_table(grid: dict[str, dict[str, Any]]) -> Table:
    """What the seed claims, measured: per cell and method, the means over seeds of training accuracy (on the
    labels trained on), clean training accuracy, test accuracy, the train-test gap (points), test NLL and ECE."""
    rows = []
    for name, res in grid.items():
        for method, members in stats.group(res["rows"], "method").items():
            rows.append([name, method] + [f"{100 * _mean(members, k):.1f}" for k in
                         ("train_accuracy", "train_clean_accuracy", "test_accuracy", "gap")]
                        + [f"{_mean(members, k):.3f}" for k in ("test_nll", "test_ece")])  # fmt: skip
    header = ["cell", "method", "train acc", "train acc (clean labels)", "test acc", "gap", "test NLL", "test ECE"]
    return Table(header, rows)


def verdict_counts(grid: dict[str, dict[str, Any]], metric: str = "test_accuracy") -> dict[str, dict[str, list]]:
    """For each method, the cells where its test accuracy verdict against plain is better / within noise / worse.

    >>> rows = [{"method": m, "seed": s, "test_accuracy": a} for m, s, a in
    ...         [("plain", 0, 0.80), ("plain", 1, 0.82), ("dlb", 0, 0.83), ("dlb", 1, 0.85)]]
    >>> verdict_counts({"n500": {"rows": rows}})["dlb"]
    {'better': ['n500'], 'within noise': [], 'worse': []}
    """
    out: dict[str, dict[str, list]] = {}
    for name, res in grid.items():
        for method, p in gains(res, metric).items():
            out.setdefault(method, {"better": [], "within noise": [], "worse": []})[p["verdict"]].append(name)
    return out


def verdict_count_table(grid: dict[str, dict[str, Any]], metric: str = "test_accuracy") -> Table:
    """:func:`verdict_counts` as a table: per method, the cells where it is better than plain and where worse.

    >>> rows = [{"method": m, "seed": s, "test_accuracy": a} for m, s, a in
    ...         [("plain", 0, 0.80), ("plain", 1, 0.82), ("dlb", 0, 0.83), ("dlb", 1, 0.85)]]
    >>> verdict_count_table({"n500": {"rows": rows}}).rows
    [['dlb', 'n500', 'none']]
    """
    rows = [[method, ", ".join(cells["better"]) or "none", ", ".join(cells["worse"]) or "none"]
            for method, cells in verdict_counts(grid, metric).items()]  # fmt: skip
    return Table(["method", "better than plain in", "worse than plain in"], rows)


def provenance_table(grid: dict[str, dict[str, Any]]) -> Table:
    """What a loaded grid (:func:`load_grid`) holds and where it comes from: cells, seeds, model, data and steps;
    the date, the machine and the hours of runs; and every command that wrote a part of it."""
    first = next(iter(grid.values()))
    setup, machine = first["config"], first["machine"]
    hours = sum(r["wall_seconds"] for r in grid.values()) / 3600
    rows = [
        ["grid", f"{len(grid)} cells x {len(first['seeds'])} seeds; {setup['model']} on {setup['dataset']}, "
                 f"{setup['steps']} steps"],
        ["measured", f"{first['date'][:10]} on {machine['cpu_model']} ({machine['cpu_count']} cores): "
                     f"{hours:.1f} h of runs"],
    ]  # fmt: skip
    commands = sorted({p["command"] for r in grid.values() for p in r.get("passes", [r])})
    rows += [[f"command {i + 1}", command] for i, command in enumerate(commands)]
    return Table(["run", "value"], rows)


def _errorbar(ax, xs: Sequence[float], ps: Sequence[dict[str, Any]], **kwargs: Any) -> None:
    """Mean paired differences (points) with their asymmetric 95% intervals."""
    diffs = [100 * p["diff"] for p in ps]
    below = [100 * (p["diff"] - p["low"]) for p in ps]
    above = [100 * (p["high"] - p["diff"]) for p in ps]
    ax.errorbar(xs, diffs, yerr=[below, above], marker="o", ms=4, capsize=2, lw=1, **kwargs)


def plot_regime_map(grid: dict[str, dict[str, Any]], methods: Sequence[str] | None = None, *, title: str = ""):
    """The regime map: each method's test-accuracy gain over plain (points, mean and 95% interval over seeds)
    against training-set size (clean labels), against the symmetric label-noise rate (2,000 images), and in the
    grid's other cells. By default without the early-stopped models (``ban-es``, ``plain-es``), whose gains under
    noise are ten times larger and would flatten everything else. Returns the figure."""
    import matplotlib.pyplot as plt

    methods = [m for m in (methods or METHODS) if m not in ("plain", "ban-es", "plain-es") or methods]
    methods = [m for m in methods if m != "plain"]
    on_axis = {name for axis in AXES.values() for name, _ in axis}
    others = [c for c in grid if c not in on_axis]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), dpi=90, width_ratios=[1, 1, 0.8], sharey=True)
    labels = {"size": "training images (clean labels)", "noise": "symmetric label noise (2,000 images)"}
    for ax, (axis, label) in zip(axes, labels.items(), strict=False):
        points = [(name, x) for name, x in AXES[axis] if name in grid]
        position = {name: (x if axis == "noise" else math.log10(x)) for name, x in points}
        for k, m in enumerate(methods):
            jitter = (0.005 if axis == "noise" else 0.012) * (k - len(methods) / 2)
            found = [(position[name] + jitter, gains(grid[name])[m]) for name, _ in points if m in gains(grid[name])]
            if found:
                _errorbar(ax, [x for x, _ in found], [p for _, p in found], label=m)
        ax.set_xticks(list(position.values()), [f"{x:.0%}" if axis == "noise" else f"{x:,}" for _, x in points])
        ax.set_xlabel(label)
    for k, m in enumerate(methods):
        found = [
            (i + 0.06 * (k - len(methods) / 2), gains(grid[c])[m]) for i, c in enumerate(others) if m in gains(grid[c])
        ]
        if found:
            _errorbar(axes[2], [x for x, _ in found], [p for _, p in found], ls="none")
    axes[2].set_xticks(range(len(others)), others, rotation=30, fontsize=8)
    axes[2].set_xlabel("other cells")
    for ax in axes:
        ax.axhline(0, color="0.3", lw=0.8, ls="--")
    axes[0].set_ylabel("test accuracy minus plain (points)")
    axes[1].legend(fontsize=7, ncol=2, loc="upper left")
    default = "test-accuracy gain over plain training, 95% interval over seeds (above the dashed line = better)"
    fig.suptitle(title or default, fontsize=9)
    fig.tight_layout()
    return fig
