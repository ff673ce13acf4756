import json
import math
import re

import matplotlib.pyplot as plt
import pytest
import torch

import sdkit
from sdkit.book import explore, explorer

Z = torch.tensor([3.0, 1.0, 0.2, -1.0], dtype=torch.float64)


def test_frames_equal_soften_and_entropy():
    temps = [0.25, 1.0, 3.0, 50.0]
    f = explore.temperature_frames(Z, temps)
    assert f.temperatures == tuple(temps)
    assert f.probs.shape == (4, 4)
    for k, T in enumerate(temps):
        torch.testing.assert_close(f.probs[k], sdkit.soften(Z, T))
        torch.testing.assert_close(f.entropy[k], sdkit.entropy(sdkit.soften(Z, T)))


def test_frames_hand_values():
    # softmax([2, 0] / T): T=1 -> e^2 / (e^2 + 1); T=2 -> e / (e + 1)
    f = explore.temperature_frames(torch.tensor([2.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 2.0]))
    assert float(f.probs[0, 0]) == pytest.approx(math.e**2 / (math.e**2 + 1))
    assert float(f.probs[1, 0]) == pytest.approx(math.e / (math.e + 1))


def test_entropy_limits_and_monotone():
    f = explore.temperature_frames(Z, [0.01, 0.1, 1.0, 10.0, 1e4])
    assert float(f.entropy[0]) < 1e-6  # one-hot on the unique argmax
    assert float(f.entropy[-1]) == pytest.approx(math.log(4), abs=1e-6)  # uniform
    assert bool((f.entropy[1:] >= f.entropy[:-1]).all())  # dH/dT = Var_q(z) / T^3 >= 0


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_raises(bad):
    with pytest.raises(ValueError, match=r"temperatures\[1\]"):
        explore.temperature_frames(Z, [1.0, bad])


def test_bad_temperature_lists_raise():
    with pytest.raises(ValueError, match="empty"):
        explore.temperature_frames(Z, [])
    with pytest.raises(ValueError, match="sequence"):
        explore.temperature_frames(Z, 2.0)
    with pytest.raises(ValueError, match="one logit vector"):
        explore.temperature_frames(Z[None], [1.0])


def test_most_ambiguous_orders_by_entropy():
    probs = torch.tensor([[0.98, 0.01, 0.01], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0], [0.6, 0.2, 0.2]])
    # entropies: ~0.112, log 3 = 1.099, log 2 = 0.693, 0.950
    assert explore.most_ambiguous(probs, 3).tolist() == [1, 3, 2]
    assert explore.most_ambiguous(probs, 4).tolist() == [1, 3, 2, 0]
    with pytest.raises(ValueError, match="k=5"):
        explore.most_ambiguous(probs, 5)
    with pytest.raises(ValueError, match="k"):
        explore.most_ambiguous(probs, 0)
    with pytest.raises(ValueError, match="sum to 1"):
        explore.most_ambiguous(probs * 2, 1)


def test_mean_soft_labels_by_hand():
    probs = torch.tensor([[0.8, 0.2, 0.0], [0.6, 0.4, 0.0], [0.1, 0.7, 0.2]])
    labels = torch.tensor([0, 0, 1])
    m = explore.mean_soft_labels(probs, labels)
    torch.testing.assert_close(m[0], torch.tensor([0.7, 0.3, 0.0], dtype=torch.float64))
    torch.testing.assert_close(m[1], torch.tensor([0.1, 0.7, 0.2], dtype=torch.float64))
    assert bool(torch.isnan(m[2]).all())  # class 2 has no sample
    with pytest.raises(ValueError, match="labels must lie"):
        explore.mean_soft_labels(probs, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="one label per row"):
        explore.mean_soft_labels(probs, torch.tensor([0, 1]))


def test_plots_build_figures():
    fig = explore.plot_temperature_grid(Z.float(), [0.5, 2.0], class_names=list("abcd"), image=torch.rand(1, 8, 8))
    assert len(fig.axes) == 3
    assert "T = 2" in fig.axes[2].get_title()
    plt.close(fig)
    probs = torch.softmax(torch.randn(2, 4, generator=torch.Generator().manual_seed(0)), -1)
    fig = explore.plot_soft_vs_hard(torch.rand(2, 1, 8, 8), probs, torch.tensor([0, 3]))
    assert len(fig.axes) == 4
    plt.close(fig)
    fig = explore.plot_mean_soft_labels(explore.mean_soft_labels(probs, torch.tensor([0, 1])).nan_to_num(0.0))
    plt.close(fig)
    with pytest.raises(ValueError, match="class_names has 3 names"):
        explore.plot_temperature_grid(Z, [1.0], class_names=list("abc"))


def test_explorer_without_frontend_follows_sliders():
    pytest.importorskip("ipywidgets")
    logits = torch.stack([Z, -Z]).float()
    ex = explorer.temperature_explorer(logits, class_names=list("abcd"), T=1.0)
    s = ex.state()
    assert s["index"] == 0 and s["T"] == pytest.approx(1.0)
    torch.testing.assert_close(s["probs"], sdkit.soften(logits[0], 1.0))
    first_png = ex.picture.value
    assert first_png[:8] == b"\x89PNG\r\n\x1a\n"
    ex.T_slider.value = 10.0
    ex.index_slider.value = 1
    s = ex.state()
    torch.testing.assert_close(s["probs"], sdkit.soften(logits[1], s["T"]))
    assert f"{s['entropy']:.3f}" in ex.label.value
    assert ex.picture.value != first_png
    with pytest.raises(ValueError, match="T_range"):
        explorer.temperature_explorer(logits, T=1000.0)


# ------------------------------------------------------------------------------- kernel-free (static) explorer


def test_temperature_grid_is_log_spaced_and_holds_one():
    grid = explorer.temperature_grid()
    assert len(grid) == 61 and grid[0] == pytest.approx(0.1) and grid[-1] == pytest.approx(100.0)
    assert 1.0 in grid
    ratios = [b / a for a, b in zip(grid, grid[1:], strict=False)]
    assert ratios == pytest.approx([10 ** (1 / 20)] * 60)
    assert explorer.temperature_grid(0.5, 2.0, per_decade=10) == pytest.approx([10 ** (k / 10) for k in range(-3, 4)])
    with pytest.raises(ValueError, match="low must be smaller"):
        explorer.temperature_grid(2.0, 1.0)


def test_explorer_data_frames_match_soften_and_entropy():
    logits = torch.stack([Z, -Z, torch.zeros(4, dtype=torch.float64)])
    temps = explorer.temperature_grid(0.1, 100.0, per_decade=5)
    d = explorer.explorer_data(logits, temps)
    assert d["temperatures"] == list(temps)
    assert len(d["probs"]) == 3 and all(len(rows) == len(temps) for rows in d["probs"])
    for i in range(3):
        for k, T in enumerate(temps):
            q = sdkit.soften(logits[i], T)
            assert d["probs"][i][k] == pytest.approx(q.tolist(), abs=5e-5)
            assert d["entropy"][i][k] == pytest.approx(float(sdkit.entropy(q)), abs=5e-5)
    assert d["entropy"][2] == pytest.approx([math.log(4)] * len(temps), abs=1e-4)  # equal logits: uniform


def _embedded_json(html: str) -> dict:
    (blob,) = re.findall(r'<script type="application/json" class="sdkit-data">(.*?)</script>', html, re.S)
    return json.loads(blob)


def test_static_explorer_html_holds_the_frames_and_starts_at_T():
    logits = torch.stack([Z, -Z]).float()
    names = ["a</script>", "b", "c", "d"]
    ex = explorer.static_temperature_explorer(
        logits, images=torch.rand(2, 1, 8, 8), class_names=names, captions=["one", "two"], T=2.0
    )
    html = ex._repr_html_()
    data = _embedded_json(html)
    assert data["classes"] == names and data["captions"] == [": one", ": two"]
    temps = explorer.temperature_grid()
    assert data["temperatures"] == pytest.approx(list(temps))
    k0 = temps.index(min(temps, key=lambda t: abs(math.log(t / 2.0))))
    assert f'value="{k0}"' in html and data["tText"][k0] == "2"
    for i in range(2):
        assert data["probs"][i][k0] == pytest.approx(sdkit.soften(logits[i].double(), temps[k0]).tolist(), abs=5e-5)
    assert len(data["images"]) == 2 and all(u.startswith("data:image/png;base64,") for u in data["images"])
    # the starting frame is drawn without JavaScript: one bar per class, heights proportional to probs[0][k0]
    heights = [float(h) for h in re.findall(r'<rect class="sdkit-bar"[^>]* height="([0-9.]+)"', html)]
    assert heights == pytest.approx([p * data["plotHeight"] for p in data["probs"][0][k0]], abs=0.01)
    assert "entropy H = " + f"{data['entropy'][0][k0]:.3f}" in html
    assert html.count("</script>") == 2  # the class name "a</script>" is escaped, not a closing tag
    assert ex.data["probs"] == data["probs"]
    assert repr(ex).startswith("StaticTemperatureExplorer(2 samples x 61 temperatures")
    # deterministic: the same input gives the same page (a stable notebook output)
    assert (
        explorer.static_temperature_explorer(logits, temperatures=[1.0, 2.0])._repr_html_()
        == explorer.static_temperature_explorer(logits, temperatures=[1.0, 2.0])._repr_html_()
    )


def test_static_explorer_size_and_errors():
    logits = torch.randn(12, 10, generator=torch.Generator().manual_seed(0)) * 3
    ex = explorer.static_temperature_explorer(logits, images=torch.rand(12, 1, 28, 28))
    assert len(ex.html) < 300_000
    with pytest.raises(ValueError, match="images has 3 rows"):
        explorer.static_temperature_explorer(logits, images=torch.rand(3, 1, 8, 8))
    with pytest.raises(ValueError, match="captions has 1 entries"):
        explorer.static_temperature_explorer(logits, captions=["x"])
    with pytest.raises(ValueError, match=r"temperatures\[0\]"):
        explorer.static_temperature_explorer(logits, temperatures=[0.0, 1.0])


def test_plot_temperature_effects_draws_the_mass_and_both_gradient_norms():
    T, mass, grad, scaled = [0.5, 1, 2, 4], [0.1, 0.2, 0.4, 0.6], [1.8, 0.7, 0.25, 0.08], [0.44, 0.7, 0.99, 1.2]
    fig = explore.plot_temperature_effects(T, mass, grad, scaled)
    left, right = fig.axes
    (mass_line,) = left.get_lines()
    assert list(mass_line.get_xdata()) == T and list(mass_line.get_ydata()) == mass
    assert left.get_xscale() == "log" and left.get_yscale() == "linear" and left.get_legend() is None
    assert [list(line.get_ydata()) for line in right.get_lines()] == [grad, scaled]
    assert (right.get_xscale(), right.get_yscale()) == ("log", "log")
    assert [t.get_text() for t in right.get_legend().get_texts()] == [
        "soft cross-entropy",
        "$T^2$ x soft cross-entropy",
    ]
    plt.close(fig)
    with pytest.raises(ValueError, match=r"temperatures\[0\]"):
        explore.plot_temperature_effects([0.0, 1.0], [0.1, 0.2], [1.0, 0.5], [1.0, 1.0])
