"""How long a training run takes on a device, from a few measured runs: the model behind :mod:`sdkit.book.cost`.

A :class:`Run` is one training job (a model, its training and validation images, epochs, batch size, an online
teacher if any). Its work is counted in *forward passes*: a training step costs ``k`` forward passes of the model
(forward, backward, optimizer; ``k`` is measured as eval throughput / train throughput where a benchmark timed
both, else the usual 3), an online teacher adds one forward pass of the teacher, and validation one of the model.
Each forward pass of a batch of ``B`` images of a model with ``F`` FLOPs per image takes ``a + b * B * F``
seconds: ``a`` is the fixed price of a batch (kernel launches, Python, the optimizer's loop over tensors: what
dominates small models on a GPU) and ``b`` the price of a FLOP. :func:`fit_device` finds ``a`` and ``b`` for a
device by least squares (relative error) over measured runs: benchmark epochs and timed experiments. With runs of
one shape only, ``a`` cannot be told from ``b`` and is set to 0 (pure compute).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Run", "DeviceModel", "forward_flops", "work", "fit_device", "DEFAULT_PASSES_PER_STEP"]

#: Forward-pass equivalents of one training step when no benchmark measured it (backward ~ 2 forward passes).
DEFAULT_PASSES_PER_STEP = 3.0


@dataclass(frozen=True)
class Run:
    """One training job, ``repeats`` times (seeds). ``teacher`` is the ``(model, width)`` of an online teacher
    (one forward pass per training image); ``passes`` counts training passes per image (2 for CS-KD and DLB, which
    also train on a second batch); ``forward_images`` are forward-only images outside the epochs (soft labels,
    attacks, evaluation of pruned variants); ``on_cpu`` marks a run the chapter keeps on the CPU on any machine."""

    label: str
    model: str
    width: float
    shape: tuple[int, int, int]
    n_train: int
    epochs: int
    batch_size: int = 128
    n_val: int = 0
    teacher: tuple[str, float] | None = None
    passes: float = 1.0
    forward_images: int = 0
    on_cpu: bool = False
    repeats: int = 1

    @property
    def training_images(self) -> int:
        """Images the run trains on: epochs x training images x repeats (teacher and validation passes aside)."""
        return self.epochs * self.n_train * self.repeats


@functools.cache
def forward_flops(model: str, width: float, shape: tuple[int, int, int]) -> float:
    """FLOPs of one forward pass of ``sdkit.build_model(model, shape, 10, width=width)`` on one image, counted by
    torch's FlopCounterMode (matrix products and convolutions; element-wise layers are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..models import build_model

    net = build_model(model, shape, 10, width=width).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, *shape))
    return float(counter.get_total_flops())


def work(run: Run, passes_per_step: float) -> tuple[float, float]:
    """``(batches, flops)`` of ``run`` in forward-pass units: the number of batch forward passes (each costs
    ``a``) and the FLOPs of all forward passes (each costs ``b``), validation and ``forward_images`` included."""
    f = forward_flops(run.model, run.width, run.shape)
    f_teacher = forward_flops(run.teacher[0], run.teacher[1], run.shape) if run.teacher else 0.0
    per_step = passes_per_step * run.passes
    steps = run.epochs * math.ceil(run.n_train / run.batch_size)
    batches = steps * (per_step + (1 if run.teacher else 0))
    batches += run.epochs * math.ceil(run.n_val / run.batch_size) + math.ceil(run.forward_images / run.batch_size)
    flops = run.epochs * run.n_train * (per_step * f + f_teacher) + (run.epochs * run.n_val + run.forward_images) * f
    return batches * run.repeats, flops * run.repeats


@dataclass(frozen=True)
class DeviceModel:
    """``seconds = batch_seconds * batches + flop_seconds * flops`` for one device (see the module docstring)."""

    name: str
    batch_seconds: float
    flop_seconds: float
    passes_per_step: float

    def seconds(self, runs: Sequence[Run]) -> float:
        """The estimated wall time of ``runs`` one after another on this device."""
        total = 0.0
        for run in runs:
            batches, flops = work(run, self.passes_per_step)
            total += self.batch_seconds * batches + self.flop_seconds * flops
        return total

    def images_per_second(self, run: Run) -> float:
        """The training images per second this model predicts for ``run``."""
        return run.training_images / self.seconds([run])


def fit_device(
    name: str, measured: Sequence[tuple[Sequence[Run], float]], passes_per_step: float = DEFAULT_PASSES_PER_STEP
) -> DeviceModel:
    """Fit :class:`DeviceModel` to ``measured`` pairs ``(runs, seconds)`` (each: a workload and its measured wall
    time) by least squares on the relative error, with both prices >= 0."""
    if not measured:
        raise ValueError(f"no measured runs for device {name!r}: pass at least one (runs, seconds) pair")
    rows = []
    for runs, seconds in measured:
        if not seconds > 0:
            raise ValueError(f"measured seconds must be positive, got seconds={seconds!r} for device {name!r}")
        parts = [work(r, passes_per_step) for r in runs]
        rows.append((sum(p[0] for p in parts) / seconds, sum(p[1] for p in parts) / seconds))
    x = np.array(rows)  # each row / its seconds: the fit's equations read x @ (a, b) = 1
    ones = np.ones(len(rows))
    if np.linalg.matrix_rank(x / x.max(axis=0), tol=1e-6) == 2:
        (a, b), *_ = np.linalg.lstsq(x, ones, rcond=None)
        if a >= 0 and b >= 0:
            return DeviceModel(name, float(a), float(b), passes_per_step)
    # one workload shape (or a negative price): all the time goes to the FLOPs
    b = float(x[:, 1] @ ones / (x[:, 1] @ x[:, 1]))
    return DeviceModel(name, 0.0, b, passes_per_step)
