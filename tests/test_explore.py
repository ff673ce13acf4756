import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import sdkit  # noqa: E402
from sdkit import explore  # noqa: E402

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
    ex = explore.temperature_explorer(logits, class_names=list("abcd"), T=1.0)
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
        explore.temperature_explorer(logits, T=1000.0)
