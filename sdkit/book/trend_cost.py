"""Challenge 2 of the chapter "Trends and challenges": what the second training run of born-again distillation
costs, and two ways around it.

:func:`run_cost` trains, per seed, a plain model (which is also the teacher), a born-again student with the
teacher online, one with the teacher's logits cached before training (:class:`CachedDistill`) and PS-KD (one
run). :func:`teacher_overhead` times single training steps of the three objectives, alternated, and
:func:`view_consistency` measures what a cache gets wrong under augmentation. Timings keep the *fastest* of
several repeats or epochs: on a shared machine other processes can only add time.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Batch, BatchLoader, Data, augment_batch
from ..evaluate import evaluate, predict_logits
from ..losses import _distillation_loss_unchecked, check_alpha, check_positive_int, check_temperature, kd_loss
from ..methods import Distill, Method, TrainContext
from ..models import frozen_copy
from ..self_kd import PSKD
from ..train import History
from ..utils import check_seeds
from .trend_training import CPU, load_spec_data, mean_std_record, model_maker, train_timed

__all__ = ["CachedDistill", "epoch_seconds", "fastest_epoch_ratio", "view_consistency", "teacher_overhead", "run_cost"]


class CachedDistill(Method):
    """Distillation from teacher logits computed ONCE, before training, on the un-augmented training inputs.

    Same loss as :class:`sdkit.methods.Distill`, ``(1 - alpha) * CE + alpha * T^2 * KL(teacher || student)``, but
    the teacher's logits for sample ``i`` are looked up by index instead of being recomputed on the augmented view
    the student sees. It saves one teacher forward pass per batch; with augmentation the teacher then labels a
    different view (the clean image) from the one the student is trained on. ``cache_seconds`` is the time of the
    one pass over the training split.
    """

    name = "kd-cached"

    def __init__(self, teacher: nn.Module, T: float = 4.0, alpha: float = 0.9) -> None:
        super().__init__()
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be an nn.Module, got {type(teacher).__name__}")
        self.T, self.alpha = check_temperature(T), check_alpha(alpha)
        self.teacher = frozen_copy(teacher)
        self.cache_seconds = float("nan")

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        super().setup(model, ctx)
        start = time.perf_counter()
        self.teacher.to(ctx.device)
        self.cached = predict_logits(self.teacher, ctx.loader.x, device=ctx.device).to(ctx.device)
        self.cache_seconds = time.perf_counter() - start

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        return _distillation_loss_unchecked(logits, self.cached[batch.index], batch.y, self.T, self.alpha)


def epoch_seconds(history: History) -> list[float]:
    """The wall time of each epoch of a training run, in order."""
    return [r["seconds"] for r in history.records]


def fastest_epoch_ratio(distill_history: History, plain_history: History) -> float:
    """(fastest distillation epoch) / (fastest plain epoch), the first epoch (warm-up) left out when there are more.

    The fastest epoch is the usual benchmark estimate on a shared machine: other processes can only add time."""
    d, p = epoch_seconds(distill_history), epoch_seconds(plain_history)
    return min(d[1:] or d) / min(p[1:] or p)


@torch.no_grad()
def view_consistency(teacher: nn.Module, data: Data, T: float, seed: int = 0) -> dict[str, float]:
    """How different the teacher's soft labels are on the clean training images (what a cache stores) and on one
    randomly augmented view of each (what the student sees): argmax disagreement, mean KL(clean || view) at ``T``
    (times ``T^2``, as in the loss) and the teacher's accuracy on each."""
    generator = torch.Generator().manual_seed(seed)
    clean = predict_logits(teacher, data.train.x, device=CPU)
    views = augment_batch(data.train.x, data.augment, generator)
    view = predict_logits(teacher, views, device=CPU)
    kl_T2 = kd_loss(view, clean, T)  # T^2 * KL(softmax(clean/T) || softmax(view/T)), batch mean
    return {
        "disagreement": float((clean.argmax(-1) != view.argmax(-1)).float().mean()),
        "kl_T2": float(kl_T2),
        "teacher_acc_clean": float((clean.argmax(-1) == data.train.y).float().mean()),
        "teacher_acc_view": float((view.argmax(-1) == data.train.y).float().mean()),
    }


def teacher_overhead(
    model_name: str,
    data: Data,
    *,
    width: float = 1.0,
    batch_size: int = 128,
    steps: int = 10,
    repeats: int = 5,
    T: float = 4.0,
    alpha: float = 0.9,
    seed: int = 0,
) -> dict[str, Any]:
    """How much an online teacher slows training down: the time of ``steps`` training steps (forward, loss,
    backward, optimizer step) with plain cross-entropy, with :class:`sdkit.methods.Distill` (one extra teacher
    forward pass per batch) and with :class:`CachedDistill` (teacher logits looked up), alternated ``repeats``
    times on the same augmented batches after one warm-up round.

    ``ratio`` = (fastest distillation repeat) / (fastest plain repeat), ``cached_ratio`` the same for the cache
    (whose one-off pass over the training split, ``cache_seconds``, is not included). On a shared machine other
    processes can only add time, so the fastest repeat is the best estimate of the true cost, and alternating the
    objectives exposes all of them to the same conditions. Since an epoch is ``N / batch_size`` such steps, these
    are also the per-epoch ratios.
    """
    check_positive_int(steps, "steps")
    check_positive_int(repeats, "repeats")
    make = model_maker(model_name, data, width)
    teacher, student = make(seed), make(seed + 1)
    channels_last = any(isinstance(m, nn.Conv2d) for m in student.modules())
    if channels_last:
        student.to(memory_format=torch.channels_last)
    loader = BatchLoader(data.train, batch_size, augment=data.augment, seed=seed, drop_last=True,
                         channels_last=channels_last)  # fmt: skip
    batches = list(itertools.islice(iter(loader), steps))
    methods = {"plain": Method(), "kd": Distill(teacher, T, alpha), "cached": CachedDistill(teacher, T, alpha)}
    ctx = TrainContext(loader, data.num_classes, epochs=1, device=CPU)
    for method in methods.values():
        method.setup(student, ctx)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
    student.train()
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    for r in range(repeats + 1):
        for name, method in methods.items():
            start = time.perf_counter()
            for batch in batches:
                loss = method.loss(student, batch, student(batch.x), 0)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if r > 0:  # round 0 is the warm-up
                seconds[name].append(time.perf_counter() - start)
    return {
        "plain_seconds": seconds["plain"],
        "kd_seconds": seconds["kd"],
        "cached_seconds": seconds["cached"],
        "ratio": min(seconds["kd"]) / min(seconds["plain"]),
        "cached_ratio": min(seconds["cached"]) / min(seconds["plain"]),
        "cache_seconds": methods["cached"].cache_seconds,
        "images_per_repeat": len(batches) * batch_size,
    }


def run_cost(spec: dict[str, Any]) -> dict[str, Any]:
    """Wall time and test accuracy of plain training (= the teacher's run), born-again (teacher + student: two
    runs), born-again with cached teacher outputs, and PS-KD (one run); the per-epoch time ratios of those runs;
    the overhead of the online teacher's forward pass measured by :func:`teacher_overhead` (the mlp, and a small
    CNN); and the consistency cost of caching under augmentation (:func:`view_consistency`)."""
    data = load_spec_data(spec)
    runs, overhead = [], []
    consistency: dict[str, float] = {}
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    for i in check_seeds(spec["seeds"]):
        s = 1000 * i
        make = model_maker(spec["model"], data)
        teacher = make(s)
        h_plain, w_plain = train_timed(teacher, data, spec, s)
        student = make(s + 1)
        h_kd, w_kd = train_timed(student, data, spec, s + 1, teacher=teacher, T=spec["T"], alpha=spec["alpha"])
        cached = make(s + 1)
        method = CachedDistill(teacher, spec["T"], spec["alpha"])
        h_cache, w_cache = train_timed(cached, data, spec, s + 1, method=method)
        pskd = make(s + 1)
        h_pskd, w_pskd = train_timed(pskd, data, spec, s + 1, method=PSKD(alpha_T=spec["pskd_alpha"]))
        acc = {
            k: evaluate(m, data.test, device=CPU)["accuracy"]
            for k, m in (("plain", teacher), ("kd", student), ("cached", cached), ("pskd", pskd))
        }
        runs += [
            {
                "seed": i,
                "method": "plain (one run)",
                "wall": w_plain,
                "loop": h_plain.seconds,
                "accuracy": acc["plain"],
            },
            {
                "seed": i,
                "method": "born-again (teacher + student)",
                "wall": w_plain + w_kd,
                "loop": h_plain.seconds + h_kd.seconds,
                "accuracy": acc["kd"],
            },
            {
                "seed": i,
                "method": "born-again, cached teacher",
                "wall": w_plain + w_cache,
                "loop": h_plain.seconds + h_cache.seconds + method.cache_seconds,
                "accuracy": acc["cached"],
            },
            {"seed": i, "method": "PS-KD (one run)", "wall": w_pskd, "loop": h_pskd.seconds, "accuracy": acc["pskd"]},
        ]
        overhead.append(
            {
                "seed": i,
                "model": spec["model"],
                "kd_over_plain": fastest_epoch_ratio(h_kd, h_plain),
                "cached_over_plain": fastest_epoch_ratio(h_cache, h_plain),
                "pskd_over_plain": fastest_epoch_ratio(h_pskd, h_plain),
                "cache_seconds": method.cache_seconds,
                "plain_epoch_seconds": float(np.median(epoch_seconds(h_plain))),
                "epoch_seconds": {
                    "plain": epoch_seconds(h_plain),
                    "kd": epoch_seconds(h_kd),
                    "cached": epoch_seconds(h_cache),
                    "pskd": epoch_seconds(h_pskd),
                },  # fmt: skip
            }
        )
        if i == 0:
            consistency = view_consistency(teacher, data, spec["T"])
    bench = spec["benchmark"]
    common = dict(repeats=bench["repeats"], T=spec["T"], alpha=spec["alpha"])
    cnn = teacher_overhead("cnn", data, width=bench["cnn_width"], steps=bench["cnn_steps"], **common)
    benchmark = [
        {"model": spec["model"], **teacher_overhead(spec["model"], data, steps=bench["mlp_steps"], **common)},
        {"model": f"cnn (width {bench['cnn_width']})", **cnn},
    ]
    methods = [r["method"] for r in runs[:4]]
    return {
        "spec": spec,
        "dataset": {"name": data.name, "train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "runs": runs,
        "summary": {
            m: {k: mean_std_record([r[k] for r in runs if r["method"] == m]) for k in ("wall", "loop", "accuracy")}
            for m in methods
        },
        "overhead": overhead,
        "benchmark": benchmark,
        "consistency": consistency,
        "load_average": list(load),
        "threads": torch.get_num_threads(),
    }
