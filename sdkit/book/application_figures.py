"""The figures of chapter 06 (Applications), drawn from the result sections of :mod:`sdkit.book.experiments`.

Each function takes one section of an applications result (the JSON of ``python -m sdkit.book.experiments``, or
:func:`sdkit.book.experiments.run_applications`'s dict) and returns a matplotlib Figure; the chapter shows it.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .plots import plot_mean_std

__all__ = ["plot_compression", "plot_generations", "plot_robustness"]

_ROLES = ("teacher", "alone", "distilled")
_GENERATION_METRICS = {"accuracy": "test accuracy", "nll": "test NLL (nats)", "ece": "test ECE"}


def _require(section: dict[str, Any], keys: tuple[str, ...], name: str) -> None:
    missing = [k for k in keys if k not in section]
    if missing:
        raise ValueError(f"{name} lacks {missing}: pass result[{name!r}] of an applications result, not the result")


def plot_compression(comp: dict[str, Any]) -> Figure:
    """Test accuracy of the teacher and of the small student trained alone and distilled (mean ± std over seeds),
    next to the saved size of teacher and student. ``comp`` is ``result["compression"]``."""
    _require(comp, ("summary", "teacher", "student"), "compression")
    s = {r["role"]: r for r in comp["summary"]}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.4), dpi=90, gridspec_kw={"width_ratios": [3, 2]})
    teacher, student = comp["teacher"]["width"], comp["student"]["width"]
    names = [f"teacher\n(width {teacher:g})", f"student alone\n(width {student:g})",
             f"student distilled\n(width {student:g})"]  # fmt: skip
    means = [s[r]["accuracy_mean"] for r in _ROLES]
    plot_mean_std(names, means, [s[r]["accuracy_std"] for r in _ROLES], ax1, kind="bar", color=["0.55", "C0", "C1"])
    ax1.set_ylim(min(means) - 0.05, 1.0)
    ax1.set_ylabel("test accuracy")
    ax1.set_title("Accuracy (mean ± std over seeds)")
    kib = [comp["teacher"]["state_dict_bytes"] / 1024, comp["student"]["state_dict_bytes"] / 1024]
    ax2.bar(["teacher", "student"], kib, color=["0.55", "C0"])
    ax2.set_ylabel("saved state_dict (KiB)")
    ax2.set_title("Model size")
    fig.tight_layout()
    return fig


def plot_generations(gen: dict[str, Any], title: str) -> Figure:
    """Test accuracy, NLL and ECE of each born-again generation, mean ± std over seeds, one panel per metric.
    ``gen`` is ``result["generalization"]``."""
    _require(gen, ("summary",), "generalization")
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2), dpi=90)
    generations = [r["generation"] for r in gen["summary"]]
    for ax, (metric, label) in zip(axes, _GENERATION_METRICS.items(), strict=True):
        mean = [r[f"{metric}_mean"] for r in gen["summary"]]
        std = [r[f"{metric}_std"] for r in gen["summary"]]
        plot_mean_std(generations, mean, std, ax, color="C0", label="mean ± std over seeds")
        ax.set_xticks(generations)
        ax.set_xlabel("generation")
        ax.set_title(label)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_robustness(rob: dict[str, Any]) -> Figure:
    """Two columns, Gaussian noise and FGSM: accuracy of every generation against the perturbation's size (top),
    and each student's mean paired difference from generation 0 with its 95% interval (bottom).
    ``rob`` is ``result["robustness"]``."""
    _require(rob, ("sigmas", "epsilons", "summary", "noise_comparisons", "fgsm_comparisons"), "robustness")
    fig, axes = plt.subplots(2, 2, figsize=(9, 5.6), dpi=90, sharex="col")
    panels = (
        ("noise", rob["sigmas"], r"noise $\sigma$ (pixel units)", "Gaussian input noise"),
        ("fgsm", rob["epsilons"], r"FGSM $\epsilon$ (pixel units)", "FGSM attack"),
    )
    for col, (name, points, xlabel, title) in enumerate(panels):
        top, bottom = axes[0, col], axes[1, col]
        for r in rob["summary"]:
            plot_mean_std(points, r[f"{name}_mean"], r[f"{name}_std"], top, label=f"gen {r['generation']}")
        for k in range(len(rob[f"{name}_comparisons"][0])):
            cs = [c[k] for c in rob[f"{name}_comparisons"]]
            err = [[c["diff"] - c["low"] for c in cs], [c["high"] - c["diff"] for c in cs]]
            bottom.errorbar(points, [c["diff"] for c in cs], yerr=err, marker="o", ms=4, capsize=3,
                            color=f"C{k + 1}", label=f"gen {cs[0]['candidate']} - gen 0 (95% CI)")  # fmt: skip
        bottom.axhline(0, color="k", lw=0.8)
        top.set(title=title, ylabel="test accuracy")
        bottom.set(xlabel=xlabel, ylabel="accuracy difference")
        top.legend(fontsize=8)
        bottom.legend(fontsize=7)
    fig.tight_layout()
    return fig
