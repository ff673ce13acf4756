"""The figures of chapter 06, drawn from the committed applications result."""

import json
import warnings
from pathlib import Path

import pytest

from sdkit.book import application_figures as figures
from sdkit.book import experiments as ex

RESULT = ex.refresh_verdicts(
    json.loads((Path(__file__).resolve().parents[1] / "book" / "results" / "applications_full.json").read_text())
)


def test_compression_figure_shows_three_models_and_two_sizes():
    fig = figures.plot_compression(RESULT["compression"])
    accuracy, size = fig.axes
    assert [t.get_text() for t in accuracy.get_xticklabels()] == [
        "teacher\n(width 1)", "student alone\n(width 0.25)", "student distilled\n(width 0.25)"
    ]  # fmt: skip
    summary = {r["role"]: r["accuracy_mean"] for r in RESULT["compression"]["summary"]}
    heights = [p.get_height() for p in accuracy.patches]
    assert heights == pytest.approx([summary["teacher"], summary["alone"], summary["distilled"]])
    kib = [p.get_height() for p in size.patches]
    assert kib == pytest.approx([RESULT["compression"][k]["state_dict_bytes"] / 1024 for k in ("teacher", "student")])
    assert size.get_title() == "Model size"


def test_generation_figure_has_a_panel_per_metric_and_a_real_legend():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the chapter once warned "No artists with labels found to put in legend"
        fig = figures.plot_generations(RESULT["generalization"], "Born-again MLP")
    assert [ax.get_title() for ax in fig.axes] == ["test accuracy", "test NLL (nats)", "test ECE"]
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["mean ± std over seeds"]
    assert fig._suptitle.get_text() == "Born-again MLP"
    means = [r["accuracy_mean"] for r in RESULT["generalization"]["summary"]]
    assert list(fig.axes[0].lines[0].get_ydata()) == pytest.approx(means)


def test_robustness_figure_has_curves_and_differences_for_noise_and_fgsm():
    rob = RESULT["robustness"]
    fig = figures.plot_robustness(rob)
    top_noise, top_fgsm, bottom_noise, bottom_fgsm = fig.axes
    assert top_noise.get_title() == "Gaussian input noise" and top_fgsm.get_title() == "FGSM attack"
    assert [t.get_text() for t in top_noise.get_legend().get_texts()] == ["gen 0", "gen 1", "gen 2"]
    labels = [t.get_text() for t in bottom_fgsm.get_legend().get_texts()]
    assert labels == ["gen 1 - gen 0 (95% CI)", "gen 2 - gen 0 (95% CI)"]
    # the first difference curve is gen 1's mean paired difference at every sigma
    diffs = [c[0]["diff"] for c in rob["noise_comparisons"]]
    assert list(bottom_noise.containers[0].lines[0].get_ydata()) == pytest.approx(diffs)


def test_figures_reject_the_whole_result_with_a_pointer_to_the_section():
    with pytest.raises(
        ValueError, match=r"compression lacks \['summary', 'teacher', 'student'\].*result\['compression'\]"
    ):
        figures.plot_compression(RESULT)
    with pytest.raises(ValueError, match=r"result\['robustness'\]"):
        figures.plot_robustness(RESULT["generalization"])
