"""Two small matplotlib helpers used by the book: a reliability diagram and mean ± std error bars.

A reliability diagram (Guo et al. 2017, "On Calibration of Modern Neural Networks") splits predictions into
equal-width bins of top-class confidence and draws, for each non-empty bin ``B_m``, the accuracy ``acc(B_m)`` as
a bar; a perfectly calibrated model has ``acc(B_m) = conf(B_m)`` and its bars touch the diagonal. The gap
``conf(B_m) - acc(B_m)`` is drawn as a hatched bar on top (over-confidence) or inside (under-confidence).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

__all__ = ["plot_reliability_diagram", "plot_mean_std"]

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
