"""What the four trend experiments share: loading a budget's data set, making and training models on the CPU, the
three roles of a repetition (teacher, distilled student, the student's plain twin) and per-group summaries.

Seeds are explicit everywhere: a repetition with base seed ``s`` trains its teacher from seed ``s`` and both
students from seed ``s + 1``, so that the distilled student and its twin share initialisation and data order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..data import Data
from ..datasets import load_dataset
from ..evaluate import predict_logits
from ..models import build_model
from ..train import History, train
from . import stats

__all__ = ["CPU", "ROLES", "mean_std_record", "load_spec_data", "model_maker", "train_timed", "teacher_and_students",
           "accuracy_on", "summaries"]  # fmt: skip

#: The experiments run on the CPU: small models, and timings that readers can reproduce without a GPU.
CPU = torch.device("cpu")
#: The three models of one repetition, in the order they are trained.
ROLES = ("teacher", "distilled student", "student alone")


def mean_std_record(values: Sequence[float]) -> dict[str, float]:
    """The record the committed trend results store for ``values``: ``{"mean", "std", "n"}``, from the one
    :func:`sdkit.book.stats.mean_std` (sample std, ``ddof=1``; 0 for a single value)."""
    mean, std = stats.mean_std(values, single=0.0)
    return {"mean": mean, "std": std, "n": len(values)}


def load_spec_data(spec: dict[str, Any]) -> Data:
    """The data set a budget section names, with its optional ``train_size``, ``test_size`` and ``val_fraction``."""
    kwargs = {k: spec[k] for k in ("train_size", "test_size") if spec.get(k) is not None}
    if "val_fraction" in spec:
        kwargs["val_fraction"] = spec["val_fraction"]
    return load_dataset(spec["dataset"], **kwargs)


def model_maker(name: str, data: Data, width: float = 1.0) -> Callable[[int], nn.Module]:
    """``make(seed)`` -> a fresh model ``name`` for ``data``, initialised from ``seed``."""

    def make(seed: int) -> nn.Module:
        return build_model(name, data.input_shape, data.num_classes, width=width, seed=seed)

    return make


def train_timed(model: nn.Module, data: Data, spec: dict[str, Any], seed: int, **kwargs: Any) -> tuple[History, float]:
    """Train ``model`` in place for ``spec["epochs"]`` at ``spec["lr"]`` (else sdkit's default) on the CPU
    (``kwargs`` go to :func:`sdkit.train`, e.g. a teacher); returns the history and the wall time in seconds,
    validation included."""
    start = time.perf_counter()
    history = train(
        model,
        data,
        epochs=spec["epochs"],
        batch_size=spec.get("batch_size", 128),
        lr=spec.get("lr"),
        augment=spec.get("augment", True),
        device=CPU,
        seed=seed,
        progress=False,
        **kwargs,
    )
    return history, time.perf_counter() - start


def teacher_and_students(model: str, data: Data, spec: dict[str, Any], s: int) -> dict[str, nn.Module]:
    """The three models of one repetition, trained in this order: a teacher (seed ``s``), its distilled student
    (seed ``s + 1``) and the student's plain twin (seed ``s + 1``: same initialisation and data order), by role."""
    make = model_maker(model, data)
    teacher = make(s)
    train_timed(teacher, data, spec, s)
    student = make(s + 1)
    train_timed(student, data, spec, s + 1, teacher=teacher, T=spec["T"], alpha=spec["alpha"])
    alone = make(s + 1)
    train_timed(alone, data, spec, s + 1)
    return dict(zip(ROLES, (teacher, student, alone), strict=True))


def accuracy_on(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on inputs ``x`` with labels ``y`` (works for quantized models too)."""
    return float((predict_logits(model, x, device=CPU).argmax(-1) == y).float().mean())


def summaries(rows: list[dict[str, Any]], keys: Sequence[str], value: str) -> dict[str, dict[str, float]]:
    """Group ``rows`` by the values of ``keys`` (joined by ``|``) and summarise ``value`` with :func:`mean_std`."""
    groups = stats.group(rows, lambda row: "|".join(str(row[k]) for k in keys))
    return {k: mean_std_record([row[value] for row in members]) for k, members in groups.items()}
