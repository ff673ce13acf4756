"""Small matplotlib helpers used by the book: a reliability diagram, mean ± std error bars, labelled line plots
(with power-law guide lines, reference lines and marked points) and mean curves with their range over seeds.

A reliability diagram (Guo et al. 2017, "On Calibration of Modern Neural Networks") splits predictions into
equal-width bins of top-class confidence and draws, for each non-empty bin ``B_m``, the accuracy ``acc(B_m)`` as
a bar; a perfectly calibrated model has ``acc(B_m) = conf(B_m)`` and its bars touch the diagonal. The gap
``conf(B_m) - acc(B_m)`` is drawn as a hatched bar on top (over-confidence) or inside (under-confidence).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["plot_reliability_diagram", "plot_mean_std", "plot_lines", "plot_mean_range"]

_BIN_KEYS = ("lower", "upper", "count", "confidence", "accuracy")


def plot_reliability_diagram(
    bins: dict[str, Sequence[float]],
    ax: Axes | None = None,
    *,
    color: str = "C0",
    show_gap: bool = True,
    title: str | None = None,
) -> Axes:
    """Draw the reliability diagram of ``bins`` (the dict returned by :func:`sdkit.reliability_bins`) on ``ax``.

    One accuracy bar per non-empty bin, plus (``show_gap``) one hatched gap bar per non-empty bin from the
    accuracy to the mean confidence, and the diagonal ``accuracy = confidence``. Empty bins draw nothing.
    Returns the axes.

    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen
    >>> import matplotlib.pyplot as plt
    >>> from matplotlib.axes import Axes
    >>> import sdkit, torch
    >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2]])
    >>> bins = sdkit.reliability_bins(probs, torch.tensor([0, 0, 1]), n_bins=2)
    >>> ax = plot_reliability_diagram(bins, title="3 predictions")
    >>> isinstance(ax, Axes), len(ax.patches)  # one bin is not empty: its accuracy bar and its gap bar
    (True, 2)
    >>> plt.close(ax.figure)
    """
    if not isinstance(bins, dict) or any(k not in bins for k in _BIN_KEYS):
        raise ValueError(f"bins must be the dict from sdkit.reliability_bins with keys {list(_BIN_KEYS)}")
    n = len(bins["count"])
    if n == 0 or any(len(bins[k]) != n for k in _BIN_KEYS):
        raise ValueError(f"bins must hold lists of one common non-zero length; got lengths "
                         f"{ {k: len(bins[k]) for k in _BIN_KEYS} }")  # fmt: skip
    if ax is None:
        _, ax = plt.subplots(figsize=(3.5, 3.5), dpi=90)
    full = [m for m in range(n) if bins["count"][m] > 0]
    left = [bins["lower"][m] for m in full]
    width = [bins["upper"][m] - bins["lower"][m] for m in full]
    acc = [bins["accuracy"][m] for m in full]
    conf = [bins["confidence"][m] for m in full]
    ax.bar(left, acc, width=width, align="edge", color=color, edgecolor="white", linewidth=0.5, label="accuracy")
    if show_gap:
        gap = [c - a for a, c in zip(acc, conf, strict=True)]
        ax.bar(left, gap, bottom=acc, width=width, align="edge", color="none", edgecolor="C3", hatch="///",
               linewidth=0.6, label="gap to confidence")  # fmt: skip
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    if title is not None:
        ax.set_title(title)
    return ax


def plot_mean_std(
    x: Sequence[Any],
    mean: Sequence[float],
    std: Sequence[float],
    ax: Axes | None = None,
    *,
    kind: str = "line",
    label: str | None = None,
    color: str | None = None,
    **kwargs: Any,
) -> Axes:
    """Plot ``mean`` with ``± std`` error bars against ``x`` on ``ax`` and return the axes.

    ``kind="line"``: markers joined by a line, with error bars (``x`` numeric). ``kind="bar"``: one bar per
    entry of ``x`` (numbers or category names) with an error bar on each. A NaN std (a single seed) draws no
    error bar for that point. Extra keyword arguments go to ``ax.errorbar`` or ``ax.bar``.

    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen
    >>> import matplotlib.pyplot as plt
    >>> from matplotlib.axes import Axes
    >>> ax = plot_mean_std([1, 2, 4], [0.90, 0.92, 0.93], [0.01, 0.005, float("nan")], label="accuracy")
    >>> isinstance(ax, Axes)
    True
    >>> plt.close(ax.figure)
    >>> ax = plot_mean_std(["plain", "pskd"], [0.91, 0.92], [0.01, 0.02], kind="bar")
    >>> [label.get_text() for label in ax.get_xticklabels()]
    ['plain', 'pskd']
    >>> plt.close(ax.figure)
    """
    if kind not in ("line", "bar"):
        raise ValueError(f"kind must be 'line' or 'bar', got kind={kind!r}")
    if not (len(x) == len(mean) == len(std)) or len(x) == 0:
        raise ValueError(f"x, mean and std must have the same non-zero length, got {len(x)}, {len(mean)}, {len(std)}")
    for i, s in enumerate(std):
        if not (isinstance(s, (int, float)) and (math.isnan(s) or s >= 0)):
            raise ValueError(f"std must hold numbers >= 0 (or NaN), got std[{i}]={s!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5), dpi=90)
    yerr = [0.0 if math.isnan(s) else s for s in std]
    if kind == "bar":
        positions = list(range(len(x)))
        ax.bar(positions, mean, yerr=yerr, capsize=4, label=label, color=color, **kwargs)
        ax.set_xticks(positions)
        ax.set_xticklabels([str(v) for v in x])
    else:
        ax.errorbar(x, mean, yerr=yerr, marker="o", ms=4, capsize=3, label=label, color=color, **kwargs)
    return ax


_LOG_AXES = ("", "x", "y", "xy")


def _finish(ax: Axes, xlabel: str, ylabel: str, title: str | None, legend: dict[str, Any]) -> Figure:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    if any(not label.startswith("_") for label in ax.get_legend_handles_labels()[1]):
        ax.legend(**legend)  # only when something has a label: an empty legend draws a stray box and warns
    return ax.figure


def plot_lines(
    x: Sequence[float],
    lines: Mapping[str, Sequence[float]],
    ax: Axes | None = None,
    *,
    styles: Sequence[str] | None = None,
    log: str = "",
    references: Sequence[tuple[float, float, float]] = (),
    hlines: Mapping[str, float] | None = None,
    vlines: Sequence[float] = (),
    points: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    legend_fontsize: float = 8,
) -> Figure:
    """One line per entry ``label: y`` of ``lines`` against the common ``x``, and returns the figure.

    - ``styles``: one matplotlib format string per line (``"o-"``, ``"s--"``, ``"C1:"``); default solid lines.
      A label starting with ``"_"`` stays out of the legend.
    - ``log``: which axes are logarithmic: ``""``, ``"x"``, ``"y"`` or ``"xy"``.
    - ``references``: guide lines ``(slope, x0, y0)``, the power law ``y = y0 * (x / x0) ** slope`` drawn in black
      over the entries of ``x`` from ``x0`` on and labelled "slope ...": on log-log axes a straight line that a
      curve with that asymptotic slope runs parallel to.
    - ``hlines``: horizontal reference lines ``label: y`` (grey, dashed); ``vlines``: vertical lines at these x.
    - ``points``: marked points ``label: (xs, ys)`` (red crosses), e.g. numbers claimed elsewhere.

    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen
    >>> T = [1, 2, 4, 8]
    >>> fig = plot_lines(T, {"1/T^2": [1, 1 / 4, 1 / 16, 1 / 64]}, log="xy", references=[(-2, 1, 2.0)])
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['1/T^2', 'slope -2']
    >>> plt.close(fig)
    """
    if log not in _LOG_AXES:
        raise ValueError(f"log must be one of {_LOG_AXES}, got log={log!r}")
    if not lines:
        raise ValueError("lines is empty; pass {label: y values}")
    n = len(x)
    if n == 0:
        raise ValueError("x is empty; pass the x values the lines share")
    for label, y in lines.items():
        if len(y) != n:
            raise ValueError(f"line {label!r} has {len(y)} values but x has {n}; give one y per x")
    styles = ["-"] * len(lines) if styles is None else list(styles)
    if len(styles) != len(lines):
        raise ValueError(f"styles has {len(styles)} entries for {len(lines)} lines; give one format string per line")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6), dpi=90)
    for (label, y), style in zip(lines.items(), styles, strict=True):
        ax.plot(x, y, style, label=label)
    guide_styles = (":", "--", "-.")
    for k, reference in enumerate(references):
        if len(reference) != 3:
            raise ValueError(f"references[{k}] must be (slope, x0, y0), got {reference!r}")
        slope, x0, y0 = reference
        if not (x0 > 0 and y0 > 0):
            raise ValueError(f"references[{k}] needs x0 > 0 and y0 > 0 for a power law, got x0={x0!r}, y0={y0!r}")
        xs = np.array([v for v in x if v >= x0], dtype=float)
        ax.plot(xs, y0 * (xs / x0) ** slope, "k" + guide_styles[k % 3], lw=1, label=f"slope {slope:g}")
    for label, y in (hlines or {}).items():
        ax.axhline(y, color="gray", ls="--", label=label)
    for v in vlines:
        ax.axvline(v, color="black", lw=0.8, ls=":")
    for label, (xs, ys) in (points or {}).items():
        ax.scatter(xs, ys, marker="x", s=80, color="red", zorder=3, label=label)
    if "x" in log:
        ax.set_xscale("log")
    if "y" in log:
        ax.set_yscale("log")
    return _finish(ax, xlabel, ylabel, title, {"fontsize": legend_fontsize})


def plot_mean_range(
    x: Sequence[float],
    runs: Mapping[str, Sequence[Sequence[float]]],
    ax: Axes | None = None,
    *,
    styles: Sequence[str] | None = None,
    ylim: tuple[float, float] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    legend_loc: str = "best",
) -> Figure:
    """For each entry ``label: curves`` of ``runs`` (one curve per seed, each with one value per ``x``), the mean
    curve as a line and the range over the seeds (min to max) as a faint band of the same colour. Returns the
    figure. ``styles``: one matplotlib format string per entry (``"C0-"``, ``"C1--"``).

    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen
    >>> fig = plot_mean_range([1, 2, 3], {"teacher": [[0.8, 0.9, 0.95], [0.7, 0.9, 0.97]]})
    >>> fig.axes[0].get_lines()[0].get_ydata().tolist()
    [0.75, 0.9, 0.96]
    >>> plt.close(fig)
    """
    if not runs:
        raise ValueError("runs is empty; pass {label: one curve per seed}")
    styles = ["-"] * len(runs) if styles is None else list(styles)
    if len(styles) != len(runs):
        raise ValueError(f"styles has {len(styles)} entries for {len(runs)} runs; give one format string per entry")
    arrays = {}
    for label, curves in runs.items():
        arrays[label] = np.asarray(curves, dtype=float)
        if arrays[label].ndim != 2 or arrays[label].shape[1] != len(x) or arrays[label].shape[0] == 0:
            raise ValueError(
                f"runs[{label!r}] must hold one curve per seed with {len(x)} values each (x has {len(x)}), "
                f"got shape {arrays[label].shape}"
            )
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.6), dpi=90)
    for (label, curves), style in zip(arrays.items(), styles, strict=True):
        (line,) = ax.plot(x, curves.mean(0), style, label=label)
        ax.fill_between(x, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.1)
    if ylim is not None:
        ax.set_ylim(*ylim)
    return _finish(ax, xlabel, ylabel, title, {"fontsize": 8, "loc": legend_loc})
