import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402

import sdkit  # noqa: E402
from sdkit.book.plots import plot_mean_std, plot_reliability_diagram  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


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
