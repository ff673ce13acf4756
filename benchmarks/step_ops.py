"""Operators per training step, counted on the CPU: sdkit.train against torchdistill's box on the same job.

A small model on a GPU is launch-bound (a width-0.5 CNN at batch 128 takes a few milliseconds a step, most of it
launching kernels), so what its step costs there is the number of operators it launches, which the CPU can count.

**What is counted.** The top-level ATen operators of a training step: every ``aten::`` event that
``torch.profiler`` records on the CPU and that no other ``aten::`` operator called (``aten::conv2d`` counts once,
not with the ``aten::convolution`` inside it; an operator the autograd engine or the optimizer calls counts).
Per step means the marginal count: ``(ops of a run of 2k steps - ops of a run of k steps) / k``, so that the
set-up, validation and per-epoch work of either loop cancel and what is left is exactly one step: the batch
(indexing, crop, flip), the student's and the teacher's forward passes, the loss, the backward pass, the optimizer
and the scheduler, and the loop's own bookkeeping. Deterministic, so tests/test_step_ops.py asserts on it.

**The variants.** ``sdkit``: ``sdkit.train(student, data, teacher=teacher, T=4, alpha=0.9)`` as it runs on the CPU
(it checks each step's loss there); ``sdkit-cuda-path``: the same with the per-step check off, as it runs on CUDA.
``box``: torchdistill's distillation box for the same objective fed the same ``sdkit.BatchLoader`` batches, in the
benchmark's loop (``benchmarks/peers.py``: ``forward_process``, ``post_forward_process``, ``loss.item()``), the
models in NCHW; ``box-cl``: both models and the batches in channels_last. ``-foreach``: the box's optimizer with
``foreach=True``, its default on CUDA (on the CPU torch's default is one update per parameter).

    python benchmarks/step_ops.py                  # prints the counts
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import sys
from collections import Counter
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

import sdkit

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

VARIANTS = ("sdkit", "sdkit-cuda-path", "box", "box-cl", "box-foreach", "box-cl-foreach")
#: how the Performance page names each variant, and the mode of peers.py that times the same loop on the CPU
LABELS = {
    "sdkit": "sdkit.train (on the CPU: each step's loss checked)",
    "sdkit-cuda-path": "sdkit.train as it runs on CUDA",
    "box": "torchdistill's box fed sdkit's batches, NCHW",
    "box-cl": "  the same, channels_last",
    "box-foreach": "  NCHW, optimizer foreach (its CUDA default)",
    "box-cl-foreach": "  channels_last, optimizer foreach",
}
TIMED = {"sdkit": "sdkit", "box": "torchdistill-fed", "box-cl": "torchdistill-fed-cl"}
#: the job: peers.py's model and objective on the bundled Fashion-MNIST sample, 3 and 6 steps of batch 128
JOB = {"dataset": "fashion-mnist-sample", "model": "cnn", "width": 0.5, "batch_size": 128, "T": 4.0, "alpha": 0.9}


def top_level_ops(run) -> Counter:
    """The top-level ``aten::`` operators (called by no other ``aten::`` operator) that ``run()`` executes on the
    CPU, by name (``torch.profiler``, CPU activity only)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    counts: Counter = Counter()
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is None:
            counts[event.name] += 1
    return counts


@functools.cache
def _dataset(name: str) -> sdkit.Data:
    return sdkit.load_dataset(name)


def _job(steps: int, job: dict):
    data = _dataset(job["dataset"])
    n = steps * job["batch_size"] + 1  # drop_last: exactly `steps` steps
    if len(data.train) < n:
        raise ValueError(f"{job['dataset']} has {len(data.train)} training images, fewer than {steps} steps need")
    data = dataclasses.replace(data, train=sdkit.Split(data.train.x[:n], data.train.y[:n]))
    shape, classes = data.input_shape, data.num_classes
    student = sdkit.build_model(job["model"], shape, classes, width=job["width"], seed=0)
    teacher = sdkit.frozen_copy(sdkit.build_model(job["model"], shape, classes, width=job["width"], seed=1))
    return data, student, teacher


def _sdkit_run(steps: int, job: dict, every_step: bool, method_class=None):
    data, student, teacher = _job(steps, job)
    method = (method_class or sdkit.Distill)(teacher, T=job["T"], alpha=job["alpha"])
    loop = importlib.import_module("sdkit.train")  # the module (sdkit.train is the function)
    original = loop.DivergenceGuard

    class Guard(original):  # the per-step check as on CUDA (False) or on the CPU (True)
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.every_step = every_step

    def run() -> None:
        loop.DivergenceGuard = Guard
        try:
            sdkit.train(student, data, method=method, epochs=1, batch_size=job["batch_size"], lr=peers.LR,
                        device="cpu", progress=False)  # fmt: skip
        finally:
            loop.DivergenceGuard = original

    return run


def _box_run(steps: int, job: dict, channels_last: bool, foreach: bool):
    data, student, teacher = _job(steps, job)
    if channels_last:
        student.to(memory_format=torch.channels_last)
        teacher.to(memory_format=torch.channels_last)
    device = torch.device("cpu")
    loader = sdkit.BatchLoader(data.train, job["batch_size"], augment=data.augment, device=device, drop_last=True,
                               channels_last=channels_last)  # fmt: skip
    config = peers.torchdistill_train_config(T=job["T"], alpha=job["alpha"], batch_size=job["batch_size"],
                                             steps=10 * steps, epochs=1, data_loader=False)  # fmt: skip
    if foreach:
        config["optimizer"]["kwargs"]["foreach"] = True
    box = peers.distillation_box(teacher, student, config, device)
    return lambda: peers.torchdistill_epoch(box, ((b.x, b.y, {}) for b in loader), device, 0)


def _run(variant: str, steps: int, job: dict, method_class=None):
    if variant.startswith("sdkit"):
        return _sdkit_run(steps, job, every_step=variant == "sdkit", method_class=method_class)
    return _box_run(steps, job, channels_last="-cl" in variant, foreach=variant.endswith("-foreach"))


def ops_per_step(variant: str, *, steps: int = 3, job: dict | None = None, method_class=None) -> dict:
    """``{"total": ops per step, "by_name": {operator: count per step}}`` of one variant (see the module docstring),
    from runs of ``steps`` and ``2 * steps`` steps. ``method_class`` replaces ``sdkit.Distill`` (sdkit variants)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {list(VARIANTS)}")
    job = JOB | (job or {})
    short, long = (top_level_ops(_run(variant, n, job, method_class)) for n in (steps, 2 * steps))
    by_name = {name: (long[name] - short[name]) / steps for name in sorted(long | short)}
    by_name = {name: n for name, n in by_name.items() if n}
    return {"total": sum(by_name.values()), "by_name": by_name}


def all_counts(variants=VARIANTS, **kwargs) -> dict[str, float]:
    """Operators per step of each variant."""
    torch.manual_seed(0)
    return {v: ops_per_step(v, **kwargs)["total"] for v in variants}


if __name__ == "__main__":
    if not peers.torchdistill_available():
        sys.exit(f"the box variants need torchdistill: {peers.PEERS_EXTRA}")
    for name, total in all_counts().items():
        print(f"{name:<16} {total:6.1f} operators per step")
