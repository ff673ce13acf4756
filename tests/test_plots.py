import math

import matplotlib.colors
import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.container import BarContainer, ErrorbarContainer

import sdkit
from sdkit.book.plots import plot_lines, plot_mean_range, plot_mean_std, plot_reliability_diagram


def example_bins() -> dict:
    # confidences 0.95 (right), 0.55 (wrong), 0.52 (right), 0.35 (right): three non-empty bins of ten
    probs = torch.tensor([[0.95, 0.05, 0.0], [0.55, 0.45, 0.0], [0.52, 0.48, 0.0], [0.35, 0.33, 0.32]])
    return sdkit.reliability_bins(probs, torch.tensor([0, 1, 0, 0]), n_bins=10)


def test_reliability_diagram_draws_one_bar_per_non_empty_bin():
    bins = example_bins()
    ax = plot_reliability_diagram(bins, show_gap=False)
    assert isinstance(ax, Axes)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 1 and len(bars[0]) == 3
    assert [p.get_height() for p in bars[0]] == pytest.approx([1.0, 0.5, 1.0])
    assert [p.get_x() for p in bars[0]] == pytest.approx([0.3, 0.5, 0.9])
    assert [p.get_width() for p in bars[0]] == pytest.approx([0.1, 0.1, 0.1])


def test_reliability_diagram_gap_bars_reach_the_confidence():
    bins = example_bins()
    _, ax = plt.subplots()
    assert plot_reliability_diagram(bins, ax, title="t") is ax
    acc, gap = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(ax.patches) == 6
    tops = [a.get_height() + g.get_height() for a, g in zip(acc, gap, strict=True)]
    assert tops == pytest.approx([0.35, 0.535, 0.95])
    assert ax.get_title() == "t" and ax.get_xlim() == (0, 1)


def test_reliability_diagram_rejects_bad_bins():
    with pytest.raises(ValueError, match="bins"):
        plot_reliability_diagram({"count": [1]})
    bins = example_bins()
    bins["accuracy"] = bins["accuracy"][:-1]
    with pytest.raises(ValueError, match="length"):
        plot_reliability_diagram(bins)


def test_plot_mean_std_bars_and_error_bars():
    ax = plot_mean_std(["a", "b", "c"], [0.5, 0.7, 0.6], [0.01, 0.02, math.nan], kind="bar")
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 1 and [p.get_height() for p in bars[0]] == pytest.approx([0.5, 0.7, 0.6])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    errors = bars[0].errorbar.lines[2][0].get_segments()
    assert [seg[1][1] - seg[0][1] for seg in errors] == pytest.approx([0.02, 0.04, 0.0])


def test_plot_mean_std_line_draws_one_error_bar_per_point():
    _, ax = plt.subplots()
    out = plot_mean_std([0.0, 0.1, 0.2, 0.4], [0.9, 0.8, 0.6, 0.3], [0.01, 0.02, 0.03, 0.04], ax, label="m")
    assert out is ax
    (container,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    line, _, (vertical,) = container.lines
    assert list(line.get_ydata()) == pytest.approx([0.9, 0.8, 0.6, 0.3])
    assert len(vertical.get_segments()) == 4


def test_plot_mean_std_rejects_bad_input():
    with pytest.raises(ValueError, match="same non-zero length"):
        plot_mean_std([1, 2], [0.1], [0.1, 0.2])
    with pytest.raises(ValueError, match="std"):
        plot_mean_std([1], [0.1], [-0.1])
    with pytest.raises(ValueError, match="kind"):
        plot_mean_std([1], [0.1], [0.1], kind="pie")


# ------------------------------------------------------------------------------------------------- plot_lines


def test_plot_lines_draws_each_line_with_its_label_and_scales():
    T = [1, 2, 4, 8, 16]
    lines = {"plain": [1 / t**2 for t in T], "scaled": [1.0] * 5, "_hidden": [0.5] * 5}
    fig = plot_lines(T, lines, styles=["o-", "s--", "-"], log="xy", xlabel="T", ylabel="norm", title="grad")
    (ax,) = fig.axes
    drawn = ax.get_lines()
    assert [line.get_label() for line in drawn] == list(lines)
    assert list(drawn[0].get_ydata()) == pytest.approx(lines["plain"])
    assert drawn[0].get_marker() == "o" and drawn[1].get_linestyle() == "--"
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("T", "norm", "grad")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["plain", "scaled"]  # "_hidden" stays out


def test_plot_lines_references_follow_the_power_law_from_x0():
    T = [1, 2, 4, 8, 16, 32]
    fig = plot_lines(T, {"a": [1.0] * 6}, log="xy", references=[(-2, 4, 0.5), (-3, 8, 0.1)])
    guides = fig.axes[0].get_lines()[1:]
    assert [g.get_label() for g in guides] == ["slope -2", "slope -3"]
    assert list(guides[0].get_xdata()) == [4, 8, 16, 32]  # only from x0 on
    assert list(guides[0].get_ydata()) == pytest.approx([0.5, 0.125, 0.03125, 0.0078125])
    assert list(guides[1].get_ydata()) == pytest.approx([0.1, 0.1 / 8, 0.1 / 64])


def test_plot_lines_reference_lines_and_points():
    _, ax = plt.subplots()
    fig = plot_lines([0.3, 0.8, 0.99], {"KL": [0.5, 0.0, 0.4]}, ax, hlines={"H(q)": 0.639}, vlines=[0.8],
                     points={"claims": ([2.0, 0.5], [0.67, 0.96])})  # fmt: skip
    assert fig is ax.figure
    kl, hline, vline = ax.get_lines()
    assert hline.get_label() == "H(q)" and list(hline.get_ydata()) == [0.639, 0.639]
    assert list(vline.get_xdata()) == [0.8, 0.8]
    (scatter,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert scatter.get_offsets().tolist() == [[2.0, 0.67], [0.5, 0.96]] and scatter.get_label() == "claims"


def test_plot_lines_rejects_bad_input():
    with pytest.raises(ValueError, match="line 'a' has 2 values but x has 3"):
        plot_lines([1, 2, 3], {"a": [1, 2]})
    with pytest.raises(ValueError, match="log='z'"):
        plot_lines([1], {"a": [1]}, log="z")
    with pytest.raises(ValueError, match="styles has 1 entries for 2 lines"):
        plot_lines([1], {"a": [1], "b": [2]}, styles=["o-"])
    with pytest.raises(ValueError, match=r"references\[0\] needs x0 > 0 and y0 > 0"):
        plot_lines([1, 2], {"a": [1, 2]}, references=[(-1, 0, 1.0)])
    with pytest.raises(ValueError, match="lines is empty"):
        plot_lines([1], {})


def test_plot_mean_range_draws_the_mean_and_the_band_of_each_entry():
    runs = {"teacher": [[0.80, 0.90, 0.95], [0.70, 0.92, 0.97], [0.75, 0.94, 0.96]], "student": [[0.6, 0.7, 0.8]] * 2}
    fig = plot_mean_range([1, 2, 3], runs, styles=["C0-", "C1--"], ylim=(0.5, 1.0), xlabel="epoch")
    (ax,) = fig.axes
    teacher, student = ax.get_lines()
    assert list(teacher.get_ydata()) == pytest.approx([0.75, 0.92, 0.96])
    assert student.get_linestyle() == "--" and ax.get_ylim() == (0.5, 1.0)
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    low, high = bands[0].get_paths()[0].get_extents().y0, bands[0].get_paths()[0].get_extents().y1
    assert (low, high) == pytest.approx((0.70, 0.97))  # the band spans min to max over the seeds
    assert tuple(bands[0].get_facecolor()[0][:3]) == pytest.approx(matplotlib.colors.to_rgb(teacher.get_color()))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["teacher", "student"]


def test_plot_mean_range_rejects_bad_input():
    with pytest.raises(ValueError, match="runs is empty"):
        plot_mean_range([1, 2], {})
    with pytest.raises(ValueError, match=r"runs\['a'\] must hold one curve per seed with 2 values"):
        plot_mean_range([1, 2], {"a": [[0.1, 0.2, 0.3]]})
    with pytest.raises(ValueError, match="styles has 2 entries for 1 runs"):
        plot_mean_range([1, 2], {"a": [[0.1, 0.2]]}, styles=["-", "--"])
