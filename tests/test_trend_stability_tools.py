"""sharpness against the Hessian computed in full; the stability trace and its figure."""

import pytest
import torch
from torch import nn

from sdkit.book import trend_stability


def test_sharpness_is_the_largest_hessian_eigenvalue():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))

    def loss_fn(m):
        return nn.functional.cross_entropy(m(x), y)

    params = list(model.parameters())
    shapes = [p.shape for p in params]
    flat = torch.cat([p.detach().flatten() for p in params])

    def flat_loss(theta):
        chunks, i = [], 0
        for shape in shapes:
            n = shape.numel()
            chunks.append(theta[i : i + n].view(shape))
            i += n
        w1, b1, w2, b2 = chunks
        return nn.functional.cross_entropy(torch.tanh(x @ w1.T + b1) @ w2.T + b2, y)

    eigenvalues = torch.linalg.eigvalsh(torch.autograd.functional.hessian(flat_loss, flat))
    expected = float(eigenvalues[eigenvalues.abs().argmax()])
    assert trend_stability.sharpness(model, loss_fn, iters=200) == pytest.approx(expected, rel=1e-3)


def test_trace_records_every_epoch_and_the_figure_draws_every_run():
    trace = trend_stability.stability_trace("iris", seed=0, lrs=(0.05,), epochs=3, iters=3)
    assert [r["role"] for r in trace["runs"]] == ["distilled student", "student alone"]
    run = trace["runs"][0]
    assert [e["epoch"] for e in run["epochs"]] == [0, 1, 2] and run["diverged_at"] is None
    assert all(e["two_over_lr"] == pytest.approx(2 / e["lr"]) for e in run["epochs"])
    assert "lr 0.05, distilled student" in trend_stability.stability_summary(trace)
    fig = trend_stability.plot_stability(trace, "iris")
    assert len(fig.axes[0].get_lines()) == 3  # two runs and the line at 1
    with pytest.raises(ValueError, match="title must be a string"):
        trend_stability.plot_stability(trace, None)
