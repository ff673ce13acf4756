import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sdkit


def numpy_ece(probs: np.ndarray, targets: np.ndarray, n_bins: int) -> float:
    """Independent reference: loop over bins (lo, hi] as in Guo et al. 2017."""
    conf, pred = probs.max(1), probs.argmax(1)
    total = 0.0
    for m in range(n_bins):
        lo, hi = m / n_bins, (m + 1) / n_bins
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs((pred[inside] == targets[inside]).mean() - conf[inside].mean())
    return total


def test_ece_hand_example():
    # two bins: confidences 0.9 (right) and 0.9 (wrong) fall in (0.5, 1]; 0.4 (right) falls in (0, 0.5]
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.4, 0.3, 0.3]])
    targets = torch.tensor([0, 1, 0])
    # bin (0.5,1]: acc 0.5, conf 0.9, weight 2/3; bin (0,0.5]: acc 1, conf 0.4, weight 1/3
    expected = 2 / 3 * 0.4 + 1 / 3 * 0.6
    assert sdkit.expected_calibration_error(probs, targets, n_bins=2) == pytest.approx(expected)


def test_ece_matches_independent_numpy_reference():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(500, 10, generator=g) * 2, -1)
    targets = torch.randint(0, 10, (500,), generator=g)
    for bins in (1, 5, 15):
        ref = numpy_ece(probs.double().numpy(), targets.numpy(), bins)
        assert sdkit.expected_calibration_error(probs, targets, bins) == pytest.approx(ref, abs=1e-9)


def test_reliability_bins_counts_and_empty_bins():
    probs = torch.tensor([[0.95, 0.05], [0.55, 0.45], [0.52, 0.48]])
    bins = sdkit.reliability_bins(probs, torch.tensor([0, 1, 0]), n_bins=10)
    assert sum(bins["count"]) == 3 and bins["count"][9] == 1 and bins["count"][5] == 2
    assert bins["accuracy"][5] == pytest.approx(0.5) and bins["confidence"][5] == pytest.approx(0.535)
    assert np.isnan(bins["accuracy"][0]) and bins["lower"][5] == 0.5 and bins["upper"][5] == 0.6


def test_perfectly_calibrated_has_zero_ece():
    probs = torch.tensor([[1.0, 0.0]] * 4)
    assert sdkit.expected_calibration_error(probs, torch.zeros(4, dtype=torch.long)) == 0.0


def test_evaluate_matches_direct_computation(digits):
    model = sdkit.build_model("mlp", digits.input_shape, 10)
    result = sdkit.evaluate(model, digits.test)
    with torch.no_grad():
        logits = model.eval()(digits.test.x)
    assert result["accuracy"] == pytest.approx(float((logits.argmax(1) == digits.test.y).float().mean()))
    assert result["nll"] == pytest.approx(float(F.cross_entropy(logits, digits.test.y)), rel=1e-5)
    assert set(result) == {"accuracy", "nll", "ece"}


def test_evaluation_arguments_are_checked():
    with pytest.raises(ValueError, match="n_bins"):
        sdkit.expected_calibration_error(torch.full((2, 2), 0.5), torch.tensor([0, 1]), n_bins=0)
    with pytest.raises(ValueError, match="targets must lie in"):
        sdkit.accuracy(torch.zeros(2, 3), torch.tensor([0, 3]))


def test_bin_edges_are_right_closed():
    # Guo et al.: bin m is ((m-1)/M, m/M], so a confidence of exactly 0.5 belongs to the lower of two bins
    bins = sdkit.reliability_bins(torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64), torch.tensor([0, 0]), 2)
    assert bins["count"] == [1.0, 1.0]


def test_predict_logits_of_a_conv_net_matches_its_plain_forward_pass():
    model = sdkit.build_model("cnn", (1, 8, 8), 10, seed=0)
    x = torch.randn(300, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = model.eval()(x).detach()
    model.train()
    got = sdkit.predict_logits(model, x, batch_size=128)  # three batches, the last one short
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert model.training  # its mode is given back, and its memory format
    deep = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]
    assert all(w.is_contiguous() for w in deep)
    model.to(memory_format=torch.channels_last)  # a model kept in channels_last stays so
    sdkit.predict_logits(model, x[:4])
    assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in deep)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        sdkit.predict_logits(model, x, batch_size=0)


def test_table_aligns_text_escapes_html_and_refuses_ragged_rows():
    from sdkit.evaluate import Table

    table = Table(["name", "acc"], [["teacher", 0.9], ["s", "0.85"]])
    assert str(table).splitlines() == ["name      acc", "-------  ----", "teacher   0.9", "s        0.85"]
    assert repr(table) == str(table)
    assert Table(["a<b"], [["x&y"]])._repr_html_() == (
        "<table><thead><tr><th>a&lt;b</th></tr></thead><tbody><tr><td>x&amp;y</td></tr></tbody></table>"
    )
    assert Table(["a", "b"], [[1, 2]]).markdown == "| a | b |\n|---|---|\n| 1 | 2 |"
    with pytest.raises(ValueError, match="row 1 has 1 cells; every row needs 2"):
        Table(["a", "b"], [[1, 2], [3]])
