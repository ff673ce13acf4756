"""Why chapter 07 trains at a learning rate of 0.05: the sharpness of the training loss against ``2 / lr``.

Gradient descent with step ``lr`` on a quadratic with curvature ``lam`` multiplies the distance to the minimum by
``1 - lr * lam`` each step, so it diverges once ``lam > 2 / lr``. For a network the largest eigenvalue of the
loss's Hessian (its *sharpness*) plays that role: training is stable while it stays below ``2 / lr`` and runs away
when it climbs past it (Cohen et al. 2021, "Gradient descent on neural networks typically occurs at the edge of
stability"). :func:`sharpness` measures it by power iteration on Hessian-vector products (Pearlmutter 1994, "Fast
exact multiplication by the Hessian"); :func:`stability_trace` follows it, epoch by epoch, while a distilled
student and its plain twin train on a bundled table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from ..extras.tabular import load_tabular
from ..losses import distillation_loss
from ..train import TrainingDiverged, train
from .trend_plots import _check_title
from .trend_training import CPU, model_maker

__all__ = ["sharpness", "stability_trace", "stability_summary", "plot_stability"]


def sharpness(model: nn.Module, loss_fn: Callable[[nn.Module], torch.Tensor], iters: int = 30, seed: int = 0) -> float:
    """The eigenvalue of largest magnitude of the Hessian of ``loss_fn(model)`` with respect to the model's
    parameters, by ``iters`` steps of power iteration ``v <- H v / |H v|`` (``H v`` by double backward, never
    forming ``H``); the estimate is the Rayleigh quotient ``v^T H v``.

    >>> layer = nn.Linear(2, 1, bias=False)
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> round(sharpness(layer, lambda m: (m(x) ** 2).sum()), 4)  # H = 2 x^T x = diag(2, 8)
    8.0
    """
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss_fn(model), params, create_graph=True)
    generator = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in params]
    value = 0.0
    for _ in range(iters):
        norm = torch.sqrt(sum((u * u).sum() for u in v))
        v = [u / norm for u in v]
        hv = torch.autograd.grad(grads, params, v, retain_graph=True)
        value = float(sum((a * b).sum() for a, b in zip(hv, v, strict=True)))
        v = [h.detach() for h in hv]
    return value


def stability_trace(name: str = "wine", seed: int = 4, lrs: Sequence[float] = (0.1, 0.05), epochs: int = 30,
                    batch_size: int = 32, T: float = 4.0, alpha: float = 0.9,
                    iters: int = 20) -> dict[str, Any]:  # fmt: skip
    """Repetition ``seed`` of chapter 07's tabular experiment (teacher from seed ``1000 * seed``, students from
    ``1000 * seed + 1``) with the whole repetition at each peak learning rate of ``lrs``: per epoch, the sharpness
    (``iters`` power-iteration steps) of the full-batch training loss of the distilled student and of its plain
    twin, next to ``2 / lr``, and the epoch a run diverged at (``None`` when it did not)."""
    data = load_tabular(name, seed=seed)
    make, s = model_maker("mlp", data), 1000 * seed
    common = dict(epochs=epochs, batch_size=batch_size, device=CPU, progress=False)
    x, y = data.train.x, data.train.y
    runs = []
    for lr in lrs:
        teacher = make(s)
        train(teacher, data, seed=s, lr=lr, **common)
        with torch.no_grad():
            teacher_logits = teacher(x)
        losses = {
            "distilled student": lambda m, t=teacher_logits: distillation_loss(m(x), t, y, T, alpha),
            "student alone": lambda m: F.cross_entropy(m(x), y),
        }
        for role, loss_fn in losses.items():
            model, epochs_seen = make(s + 1), []

            def record(epoch: int, history: Any, model: nn.Module = model, loss_fn: Callable = loss_fn,
                       epochs_seen: list = epochs_seen) -> None:  # fmt: skip
                last = history.records[-1]
                try:
                    value = sharpness(model, loss_fn, iters)
                except ValueError:  # the logits overflowed: the run is already running away
                    value = float("inf")
                epochs_seen.append({"epoch": epoch, "lr": last["lr"], "two_over_lr": 2.0 / last["lr"],
                                    "sharpness": value, "train_loss": last["train_loss"]})  # fmt: skip

            kwargs = dict(teacher=teacher, T=T, alpha=alpha) if role == "distilled student" else {}
            diverged = None
            try:
                train(model, data, seed=s + 1, lr=lr, on_epoch_end=record, **common, **kwargs)
            except TrainingDiverged as err:
                diverged = err.epoch
            runs.append({"role": role, "peak_lr": lr, "diverged_at": diverged, "epochs": epochs_seen})
    return {"dataset": name, "seed": seed, "T": T, "alpha": alpha, "runs": runs}


def stability_summary(trace: dict[str, Any]) -> str:
    """One line per run of :func:`stability_trace`: the largest sharpness over ``2 / lr`` and how the run ended."""
    lines = [f"{trace['dataset']}, seed {trace['seed']}, T = {trace['T']:g}, alpha = {trace['alpha']:g}:"]
    for run in trace["runs"]:
        finite = [e["sharpness"] / e["two_over_lr"] for e in run["epochs"] if math.isfinite(e["sharpness"])]
        end = "trained to the end" if run["diverged_at"] is None else f"DIVERGED at epoch {run['diverged_at']}"
        lines.append(f"  lr {run['peak_lr']:g}, {run['role']}: largest sharpness / (2/lr) = "
                     f"{max(finite, default=float('nan')):.2f}; {end}")  # fmt: skip
    return "\n".join(lines)


def plot_stability(trace: dict[str, Any], title: str) -> Figure:
    """Sharpness over ``2 / lr`` per epoch for every run of :func:`stability_trace` (log scale; above the dashed
    line at 1, a step overshoots along the sharpest direction); a cross marks the epoch a run diverged at."""
    _check_title(title)
    fig, ax = plt.subplots(figsize=(6.0, 3.2), dpi=90)
    for run in trace["runs"]:
        points = [(e["epoch"], e["sharpness"] / e["two_over_lr"]) for e in run["epochs"]]
        points = [(x, v) for x, v in points if math.isfinite(v) and v > 0]
        style = "-" if run["role"] == "distilled student" else ":"
        epochs, ratios = [x for x, _ in points], [v for _, v in points]
        (line,) = ax.plot(epochs, ratios, style, label=f"{run['role']}, lr {run['peak_lr']:g}")
        if run["diverged_at"] is not None:
            ax.plot([run["diverged_at"]], [points[-1][1]], "x", color=line.get_color(), markersize=9)
    ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1)
    ax.set(yscale="log", xlabel="epoch", ylabel="sharpness / (2 / lr)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
