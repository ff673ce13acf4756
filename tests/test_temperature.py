import math

import pytest
import torch

import sdkit

ROOTS = math.sqrt(0.8) + 2 * math.sqrt(0.1)


def hand_soften(p: list[float], T: float) -> list[float]:
    powered = [x ** (1 / T) for x in p]
    return [x / sum(powered) for x in powered]


@pytest.mark.parametrize(
    "T, expected",
    [
        # p^(1/T) renormalised, worked by hand: T=1 leaves p alone; T=2 takes square roots; T=0.5 squares.
        (1.0, [0.8, 0.1, 0.1]),
        (2.0, [math.sqrt(0.8) / ROOTS, math.sqrt(0.1) / ROOTS, math.sqrt(0.1) / ROOTS]),
        (0.5, [0.64 / 0.66, 0.01 / 0.66, 0.01 / 0.66]),
    ],
)  # fmt: skip
def test_soften_probs_worked_example(T, expected):
    got = sdkit.soften_probs(torch.tensor([0.8, 0.1, 0.1], dtype=torch.float64), T)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(got, torch.tensor(hand_soften([0.8, 0.1, 0.1], T), dtype=torch.float64))


def test_seed_numbers_are_wrong():
    # The seed claims [0.67, 0.16, 0.16] at T=2 and [0.96, 0.02, 0.02] at T=0.5; the book corrects both.
    p = torch.tensor([0.8, 0.1, 0.1], dtype=torch.float64)
    assert sdkit.soften_probs(p, 2.0)[0] == pytest.approx(0.5858, abs=1e-4)
    assert sdkit.soften_probs(p, 0.5)[0] == pytest.approx(0.9697, abs=1e-4)


def test_soften_matches_soften_probs_of_softmax():
    z = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    for T in (0.3, 1.0, 2.5, 10.0):
        torch.testing.assert_close(sdkit.soften(z, T), sdkit.soften_probs(torch.softmax(z, -1), T))


def test_soften_probs_is_stable_for_tiny_probabilities():
    p = torch.tensor([1.0 - 2e-30, 1e-30, 1e-30], dtype=torch.float64)
    q = sdkit.soften_probs(p, 10.0)
    assert torch.isfinite(q).all()
    # (1e-30)^(1/10) = 1e-3: the tiny classes become visible, in the exact proportion
    torch.testing.assert_close(q[1] / q[0], torch.tensor(1e-3, dtype=torch.float64), rtol=1e-6, atol=0)


def test_soften_limits():
    z = torch.tensor([3.0, 1.0, -2.0])
    torch.testing.assert_close(sdkit.soften(z, 1e-3), torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(sdkit.soften(z, 1e4), torch.full((3,), 1 / 3), atol=1e-3, rtol=0)


def test_entropy_values():
    assert float(sdkit.entropy(torch.full((10,), 0.1))) == pytest.approx(math.log(10), rel=1e-6)
    assert float(sdkit.entropy(torch.tensor([1.0, 0.0, 0.0]))) == 0.0
    p = [0.8, 0.1, 0.1]
    assert float(sdkit.entropy(torch.tensor(p))) == pytest.approx(-sum(x * math.log(x) for x in p), rel=1e-6)


@pytest.mark.parametrize("T", [0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_raises(T):
    with pytest.raises(ValueError, match="T must be a finite number > 0"):
        sdkit.soften(torch.zeros(3), T)
    with pytest.raises(ValueError, match="T must be"):
        sdkit.soften_probs(torch.full((3,), 1 / 3), T)


def test_bad_probabilities_raise():
    with pytest.raises(ValueError, match="must sum to 1"):
        sdkit.soften_probs(torch.tensor([0.5, 0.6]), 2.0)
    with pytest.raises(ValueError, match="negative"):
        sdkit.entropy(torch.tensor([1.5, -0.5]))
    with pytest.raises(ValueError, match="NaN"):
        sdkit.soften(torch.tensor([0.0, float("nan")]), 1.0)
