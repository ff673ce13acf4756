"""Diagrams drawn with matplotlib: boxes and arrows that show how data flows through a procedure.

Drawn in code rather than shipped as images so that they are rebuilt with the book and their text stays
searchable in the source. :func:`plot_two_stage_procedure` is the data flow of self-distillation (the Algorithm
chapter); :func:`draw_box` and :func:`draw_arrow` are its two building blocks.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

__all__ = ["draw_box", "draw_arrow", "plot_two_stage_procedure"]

BOX_WIDTH, BOX_HEIGHT = 2.2, 1.0


def draw_box(ax: Axes, center: tuple[float, float], text: str, color: str) -> FancyBboxPatch:
    """A rounded box of :data:`BOX_WIDTH` x :data:`BOX_HEIGHT` data units centred on ``center``, with ``text``.

    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen
    >>> fig, ax = plt.subplots()
    >>> box = draw_box(ax, (1.1, 2.0), "teacher", "#cfe2f3")
    >>> box.get_x(), box.get_y(), ax.texts[0].get_text()
    (0.0, 1.5, 'teacher')
    >>> plt.close(fig)
    """
    x, y = center
    box = FancyBboxPatch((x - BOX_WIDTH / 2, y - BOX_HEIGHT / 2), BOX_WIDTH, BOX_HEIGHT,
                         boxstyle="round,pad=0.05", fc=color, ec="0.3")  # fmt: skip
    ax.add_patch(box)
    ax.text(x, y, text, ha="center", va="center", fontsize=8)
    return box


def draw_arrow(
    ax: Axes, start: tuple[float, float], end: tuple[float, float], label: str = "", dx: float = 0.0, dy: float = 0.1
) -> None:
    """An arrow from ``start`` to ``end``; ``label`` is written at its middle, moved by ``(dx, dy)``."""
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": "0.25", "lw": 1.3})
    if label:
        x, y = (start[0] + end[0]) / 2 + dx, (start[1] + end[1]) / 2 + dy
        ax.text(x, y, label, ha="center", va="bottom", fontsize=7.5)


def plot_two_stage_procedure(ax: Axes | None = None) -> Figure:
    """The two stages of self-distillation: the training split feeds the teacher (stage 1), which is frozen and
    gives soft labels ``q = softmax(t/T)`` to the loss of a fresh student of the same architecture (stage 2) on
    the same batch; the validation split chooses ``T``, ``alpha`` and the epoch, the test split is used once.
    Six boxes, six arrows. Returns the figure.

    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off-screen
    >>> fig = plot_two_stage_procedure()
    >>> len(fig.axes[0].patches), fig.axes[0].get_title()[:17]
    (6, 'Self-distillation')
    >>> plt.close(fig)
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8.5, 3.4), dpi=90)
    draw_box(ax, (1.2, 2), "training split\n(x, y)", "#e8e8e8")
    draw_box(ax, (4.2, 2), "Stage 1:\ntrain teacher $f_\\theta$\nwith CE(t, y)", "#cfe2f3")
    draw_box(ax, (7.2, 2), "frozen teacher\neval(), no_grad", "#cfe2f3")
    draw_box(ax, (4.2, 0.3), "Stage 2:\nfresh student $g_\\phi$\n(same architecture)", "#d9ead3")
    draw_box(ax, (7.2, 0.3), "$(1-\\alpha)$ CE(s, y)\n$+\\ \\alpha T^2$ KL(q || p)", "#fce5cd")
    draw_box(ax, (10.0, 1.15), "validation split:\nchoose T, $\\alpha$, epoch;\ntest split: once", "#fff2cc")
    draw_arrow(ax, (2.35, 2), (3.05, 2), "x, y")
    draw_arrow(ax, (5.35, 2), (6.05, 2))
    draw_arrow(ax, (1.6, 1.45), (3.05, 0.45), "same batch x", dx=-0.75, dy=-0.15)
    draw_arrow(ax, (5.35, 0.3), (6.05, 0.3), "s")
    draw_arrow(ax, (7.2, 1.45), (7.2, 0.85), "q = softmax(t/T)", dx=0.85, dy=-0.1)
    draw_arrow(ax, (8.35, 0.5), (8.85, 0.8))
    ax.set_xlim(0, 11.2)
    ax.set_ylim(-0.3, 2.6)
    ax.axis("off")
    ax.set_title("Self-distillation: train a teacher, then a fresh copy on its soft labels")
    return ax.figure
