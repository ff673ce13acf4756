"""The figures of the chapter "Trends and challenges": what each draws, checked on small hand-made results."""

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from sdkit.book import trend_plots
from sdkit.book.trend_training import ROLES, mean_std_record


def compression_result() -> dict:
    means = {"teacher": (0.9, 0.88, 0.7), "distilled student": (0.91, 0.85, 0.6), "student alone": (0.9, 0.87, 0.65)}
    amounts = (0.0, 0.5, 0.9)
    accuracy = {f"{role}|pruned|{a}": {"mean": m, "std": 0.01 * (k + 1), "n": 2}
                for role, ms in means.items() for k, (a, m) in enumerate(zip(amounts, ms, strict=True))}  # fmt: skip
    return {"spec": {"amounts": [0.0, 0.5, 0.9]}, "accuracy": accuracy}


def test_plot_pruning_draws_one_line_per_model_against_weights_kept():
    fig = trend_plots.plot_pruning(compression_result(), "pruning")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    lines = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(lines) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(ROLES)
    x, y = lines[1].lines[0].get_data()
    assert list(x) == pytest.approx([1.0, 0.5, 0.1]) and list(y) == pytest.approx([91.0, 85.0, 60.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100%", "50%", "10%"]
    assert ax.get_xscale() == "log" and ax.xaxis_inverted() and ax.get_title() == "pruning"


def tabular_result() -> dict:
    def rows(offsets):
        return [{"seed": s, "model": role, "accuracy": 0.9 + off[s]} for role, off in offsets.items() for s in range(3)]

    flat = {"teacher": (0, 0, 0), "distilled student": (0.01, 0.02, 0.03), "student alone": (0.02, 0.02, 0.02)}
    return {"datasets": {"a": {"rows": rows(flat)}, "b": {"rows": rows({r: (0, 0, 0) for r in ROLES})}}}


def test_plot_tabular_draws_one_dot_per_seed_and_a_mean_bar_per_comparison():
    ax = trend_plots.plot_tabular(tabular_result(), "tabular").axes[0]
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(dots) == 4 and all(len(c.get_offsets()) == 3 for c in dots)  # 2 data sets x 2 baselines
    # data set a, student minus teacher: (+1, +2, +3) points, mean 2
    assert list(dots[0].get_offsets()[:, 1]) == pytest.approx([1.0, 2.0, 3.0])
    means = [seg[0][1] for c in ax.collections if not isinstance(c, PathCollection) for seg in c.get_segments()]
    assert means == pytest.approx([2.0, 0.0, 0.0, 0.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a\nvs teacher", "a\nvs alone", "b\nvs teacher",
                                                            "b\nvs alone"]  # fmt: skip


def grid_result() -> dict:
    return {"temperatures": [1.0, 4.0, 16.0], "alphas": [0.1, 0.9], "val_mean": [[0.8, 0.81, 0.79], [0.82, 0.7, 0.4]],
            "chosen": {"T": 1.0, "alpha": 0.9}}  # fmt: skip


def test_plot_grid_labels_every_cell_and_frames_the_chosen_one():
    fig = trend_plots.plot_grid(grid_result(), "grid")
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # the heat map and its colour bar
    assert sorted(t.get_text() for t in ax.texts) == sorted(["80.0", "81.0", "79.0", "82.0", "70.0", "40.0"])
    (frame,) = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert frame.get_xy() == pytest.approx((-0.5, 0.5))  # T = 1 is column 0, alpha = 0.9 row 1
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.1", "0.9"]
    assert np.asarray(ax.images[0].get_array()).shape == (2, 3)


def test_plot_grid_rejects_a_mean_table_of_the_wrong_shape():
    g = grid_result()
    g["val_mean"] = g["val_mean"][:1]
    with pytest.raises(ValueError, match=r"one row per alpha and one column per T, shape \(2, 3\); got shape \(1, 3\)"):
        trend_plots.plot_grid(g, "grid")


def test_plot_cost_stacks_the_teachers_run_under_the_born_again_students():
    names = ("plain (one run)", "born-again (teacher + student)", "PS-KD (one run)")
    wall = (10.0, 25.0, 11.0)
    summary = {
        n: {"wall": mean_std_record([w]), "accuracy": mean_std_record([0.8])} for n, w in zip(names, wall, strict=True)
    }
    ax = trend_plots.plot_cost({"summary": summary}, "cost").axes[0]
    teacher, student = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [p.get_width() for p in teacher] == pytest.approx([0.0, 10.0, 0.0])
    assert [p.get_width() for p in student] == pytest.approx([10.0, 15.0, 11.0])
    assert [p.get_x() for p in student] == pytest.approx([0.0, 10.0, 0.0])
    assert [t.get_text() for t in ax.texts] == [" 80.0% test"] * 3


def test_plot_method_cost_bars_are_relative_to_plain():
    compare = {"summary": [{"method": m, "seconds_mean": s, "seconds_std": 1.0}
                           for m, s in (("plain", 20.0), ("kd", 50.0), ("pskd", 19.0))]}  # fmt: skip
    ax = trend_plots.plot_method_cost(compare, "methods").axes[0]
    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [p.get_width() for p in bars] == pytest.approx([1.0, 2.5, 0.95])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["plain", "kd", "pskd"]
    with pytest.raises(ValueError, match="needs the method 'plain'"):
        trend_plots.plot_method_cost({"summary": compare["summary"][1:]}, "methods")


def test_plots_reject_bad_results_and_titles():
    with pytest.raises(ValueError, match=r"result must be the dict returned by te.run_compression; it lacks"):
        trend_plots.plot_pruning({"spec": {}}, "t")
    with pytest.raises(ValueError, match="title must be a string, got title=3"):
        trend_plots.plot_grid(grid_result(), 3)
