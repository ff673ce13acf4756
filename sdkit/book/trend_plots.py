"""The figures of the chapter "Trends and challenges", one function per figure.

Each takes the dict that one ``run_*`` function of :mod:`sdkit.book.trend_experiments` returns (or its entry in
``book/results/trends_full.json``) and a title, draws one figure with pyplot and returns it; the chapter shows it
with ``plt.show()``. Sizes are the book's: 6 inches wide at 90 dpi, so that a figure fits the text column.

>>> import matplotlib
>>> matplotlib.use("Agg")  # draw off-screen
>>> import matplotlib.pyplot as plt
>>> compare = {"summary": [{"method": "plain", "seconds_mean": 10.0, "seconds_std": 1.0},
...                        {"method": "kd", "seconds_mean": 25.0, "seconds_std": 2.0}]}
>>> fig = plot_method_cost(compare, "two methods")
>>> [float(p.get_width()) for p in fig.axes[0].patches]  # wall time relative to plain
[1.0, 2.5]
>>> plt.close(fig)
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .trend_tables import check_result
from .trend_training import ROLES

__all__ = ["plot_pruning", "plot_tabular", "plot_grid", "plot_cost", "plot_method_cost"]

WIDTH_INCHES, DPI = 6.0, 90


def _check_title(title: Any) -> None:
    if not isinstance(title, str):
        raise ValueError(f"title must be a string, got title={title!r}; pass the figure's title as text")


def plot_pruning(result: dict[str, Any], title: str) -> Figure:
    """Test accuracy (mean ± std over seeds) against the fraction of weights kept, one line per model, on a log
    axis that runs from the unpruned model (100%) to the sparsest one."""
    check_result(result, ["spec", "accuracy"], "result", "te.run_compression")
    _check_title(title)
    amounts = result["spec"]["amounts"]
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES, 3.5), dpi=DPI)
    kept = [1 - a for a in amounts]
    for role, marker in zip(ROLES, "osd", strict=True):
        stats = [result["accuracy"][f"{role}|pruned|{a}"] for a in amounts]
        ax.errorbar(kept, [100 * s["mean"] for s in stats], yerr=[100 * s["std"] for s in stats], marker=marker,
                    capsize=3, label=role)  # fmt: skip
    ax.set_xscale("log")  # the interesting end is the sparse one: 10%, 5%, 2% kept
    ax.set_xticks(kept, [f"{k:.0%}" for k in kept])
    ax.minorticks_off()
    ax.invert_xaxis()  # read left to right as "more and more pruned"
    ax.set_xlabel("fraction of weights kept (log scale; global magnitude pruning, no retraining)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_tabular(result: dict[str, Any], title: str) -> Figure:
    """Per data set, the distilled student's test accuracy minus its teacher's and minus its twin's, one dot per
    seed (paired on the same split) and a black bar at the mean."""
    check_result(result, ["datasets"], "result", "te.run_tabular")
    _check_title(title)
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES, 3.2), dpi=DPI)
    bases = ("teacher", "student alone")
    for k, d in enumerate(result["datasets"].values()):
        acc = {r: np.array([row["accuracy"] for row in sorted(d["rows"], key=lambda row: row["seed"])
                            if row["model"] == r]) for r in ROLES}  # fmt: skip
        for j, base in enumerate(bases):
            diff = 100 * (acc["distilled student"] - acc[base])
            pos = 2 * k + j
            ax.scatter(pos + np.linspace(-0.15, 0.15, len(diff)), diff, s=14, alpha=0.7)  # spread the seeds out
            ax.hlines(diff.mean(), pos - 0.25, pos + 0.25, color="k")
    ax.axhline(0, color="0.5", lw=0.8)
    names = [f"{n}\nvs {b.split()[-1]}" for n in result["datasets"] for b in bases]
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel("distilled student minus\nbaseline (accuracy points)")
    ax.set_title(title)
    return fig


def plot_grid(g: dict[str, Any], title: str) -> Figure:
    """Heat map of the mean validation accuracy of every (alpha, T) cell, each labelled with its value, and the
    chosen cell framed in red."""
    check_result(g, ["val_mean", "temperatures", "alphas", "chosen"], "g", "te.run_grid")
    _check_title(title)
    means = 100 * np.asarray(g["val_mean"], dtype=float)
    shape = (len(g["alphas"]), len(g["temperatures"]))
    if means.shape != shape:
        raise ValueError(f"g['val_mean'] must have one row per alpha and one column per T, shape {shape}; "
                         f"got shape {means.shape}")  # fmt: skip
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES, 3.2), dpi=DPI)
    image = ax.imshow(means, cmap="viridis", aspect="auto")
    middle = (means.max() + means.min()) / 2  # white text on the dark half of the colour map
    for (a, t), value in np.ndenumerate(means):
        ax.text(t, a, f"{value:.1f}", ha="center", va="center", fontsize=9, color="w" if value < middle else "k")
    a_best, t_best = g["alphas"].index(g["chosen"]["alpha"]), g["temperatures"].index(g["chosen"]["T"])
    ax.add_patch(Rectangle((t_best - 0.5, a_best - 0.5), 1, 1, fill=False, ec="red", lw=2))
    ax.set_xticks(range(shape[1]), [f"{T:g}" for T in g["temperatures"]])
    ax.set_yticks(range(shape[0]), [f"{a:g}" for a in g["alphas"]])
    ax.set_xlabel("temperature T")
    ax.set_ylabel("soft weight alpha")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="validation accuracy (%)")
    return fig


def plot_cost(result: dict[str, Any], title: str) -> Figure:
    """Horizontal bars of each method's wall time (mean over seeds), the born-again methods split into the
    teacher's run (grey) and the student's, each bar labelled with the method's test accuracy."""
    check_result(result, ["summary"], "result", "te.run_cost")
    _check_title(title)
    names = list(result["summary"])
    wall = np.array([result["summary"][n]["wall"]["mean"] for n in names])
    accuracy = [result["summary"][n]["accuracy"]["mean"] for n in names]
    teacher = np.array([wall[0] if n.startswith("born-again") else 0.0 for n in names])  # plain run = teacher's
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES, 3.5), dpi=DPI)
    rows = range(len(names))
    ax.barh(rows, teacher, color="0.75", label="teacher's run")
    colors = ["0.45", *(f"C{k}" for k in range(len(names) - 1))]
    ax.barh(rows, wall - teacher, left=teacher, color=colors, label="student's run (or the only run)")
    for k, a in enumerate(accuracy):
        ax.text(wall[k], k, f" {100 * a:.1f}% test", va="center", fontsize=8)
    ax.set_yticks(rows, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.35 * wall.max())  # room for the labels
    ax.set_xlabel("wall-clock training time (s, CPU)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def plot_method_cost(compare: dict[str, Any], title: str) -> Figure:
    """Each method's wall time per run relative to plain training's (mean, with the std over seeds as an error
    bar), from a head-to-head comparison (the JSON file that ``python -m sdkit compare`` writes)."""
    check_result(compare, ["summary"], "compare", "the comparison's JSON file (its 'summary' list)")
    _check_title(title)
    family = {r["method"]: r for r in compare["summary"]}
    if "plain" not in family:
        raise ValueError(f"compare['summary'] needs the method 'plain' as the baseline; it has {list(family)}")
    plain = family["plain"]["seconds_mean"]
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES, 3.2), dpi=DPI)
    ratio = [r["seconds_mean"] / plain for r in family.values()]
    spread = [r["seconds_std"] / plain for r in family.values()]
    ax.barh(list(family), ratio, xerr=spread, color="C0", capsize=3)
    ax.axvline(1, color="0.3", ls="--", lw=1)
    ax.invert_yaxis()
    ax.set_xlabel("wall time per run / plain training's (mean ± std over seeds)")
    ax.set_title(title, fontsize=10)
    return fig
