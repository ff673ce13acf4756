"""The method interface and classic distillation: :class:`Method`, :class:`Distill`, :func:`born_again`.

A method turns a batch and the student's logits into a loss for the one training loop in :mod:`sdkit.train`. It
may hold state (a frozen teacher, stored predictions); the loop calls ``setup`` once before training, ``prepare``
on every batch before the forward pass (mixup mixes it, DLB appends re-visited samples), ``loss`` after it,
``after_step`` after each optimizer step and ``end_epoch`` after every epoch. The plain :class:`Method` is
cross-entropy; :class:`Distill` distils from a frozen teacher (Hinton et al. 2015), and :func:`born_again` chains
such runs into generations (Furlanello et al. 2018). The self-distillation methods are in :mod:`sdkit.self_kd`,
the teacher-free baselines in :mod:`sdkit.regularizers`, the registry of names in :mod:`sdkit.compare`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .data import Batch, BatchLoader, Data
from .dataloader import DataLoaderAdapter
from .evaluate import evaluate
from .losses import _distillation_loss_unchecked, check_alpha, check_temperature
from .models import frozen_copy

if TYPE_CHECKING:
    from .train import History

__all__ = ["Method", "TrainContext", "CrossEntropy", "Distill", "objective", "Generation", "born_again"]


@dataclass(frozen=True)
class TrainContext:
    """What the training loop tells a method before the first epoch: ``Method.setup(model, ctx)``.

    ``loader`` yields the training batches and answers ``num_samples``, ``labels`` and ``fetch(index)`` (see
    :mod:`sdkit.loader`); ``autocast`` is the loop's mixed-precision context factory; ``seed`` is the run's seed.
    :meth:`of` builds one for a dataset, to use a method outside :func:`sdkit.train`.

    >>> import sdkit
    >>> ctx = TrainContext.of(sdkit.load_dataset("digits"), epochs=3)
    >>> ctx.loader.num_samples, ctx.num_classes, ctx.epochs, ctx.device
    (1294, 10, 3, device(type='cpu'))
    """

    loader: BatchLoader | DataLoaderAdapter
    num_classes: int
    epochs: int
    device: torch.device = torch.device("cpu")
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    seed: int = 0

    @classmethod
    def of(
        cls, data: Data, *, epochs: int = 1, device: torch.device | str = "cpu", seed: int = 0, batch_size: int = 128
    ) -> TrainContext:
        """The context :func:`sdkit.train` would give a method for ``data``'s training split (float32, no DDP)."""
        device = torch.device(device)
        loader = BatchLoader(data.train, batch_size, augment=data.augment, seed=seed, device=device)
        return cls(loader, data.num_classes, epochs, device, contextlib.nullcontext, seed)


class Method:
    """Base class: plain cross-entropy on the hard labels (with optional label smoothing).

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    >>> _ = sdkit.train(model, data, method=Method(label_smoothing=0.1), epochs=2, progress=False, device="cpu")
    >>> sdkit.evaluate(model, data.test)["accuracy"] > 0.8
    True
    >>> batch = Batch(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), torch.arange(2))
    >>> Method().loss(model, batch, torch.zeros(2, 4), epoch=0)  # equal logits for 4 classes: CE = log 4
    tensor(1.3863)
    >>> CrossEntropy is Method  # the same class under a descriptive name
    True
    """

    name = "plain"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got label_smoothing={label_smoothing!r}")
        self.label_smoothing = label_smoothing

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        """Called once before the first epoch, with the student already on ``ctx.device``.

        Batch indices lie in ``[0, ctx.loader.num_samples)``; ``ctx.autocast`` is the loop's mixed-precision
        context factory.
        """
        self.autocast = ctx.autocast

    def prepare(self, batch: Batch) -> Batch:
        """Called on every training batch before the forward pass; returns the batch to train on (this one)."""
        return batch

    def forward(self, forward: Callable[..., torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The training forward pass (``forward`` is the model, maybe wrapped for DDP or compiled); returns the
        logits. A method that needs more of the model's outputs (BYOT's auxiliary heads) asks for them here."""
        return forward(x)

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimizer step."""

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), batch.y, label_smoothing=self.label_smoothing)

    def end_epoch(self, model: nn.Module, epoch: int) -> None:
        """Called after each epoch's last optimizer step."""

    def state_dict(self) -> dict:
        """What a checkpoint must hold to resume this method exactly (after ``setup``)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (called after ``setup``)."""


CrossEntropy = Method


class Distill(Method):
    """Knowledge distillation from a frozen teacher (Hinton et al. 2015, "Distilling the Knowledge in a Neural
    Network"): ``(1 - alpha) * CE(s, y) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))``.

    The teacher is a frozen deep copy (``eval()``, no gradients), so it is never the student and training the
    student cannot change it. It sees exactly the same augmented batch as the student.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> teacher = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    >>> _ = sdkit.train(teacher, data, epochs=2, progress=False, device="cpu")
    >>> student = sdkit.build_model("mlp", data.input_shape, data.num_classes, width=0.5, seed=1)
    >>> method = Distill(teacher, T=4.0, alpha=0.5)
    >>> _ = sdkit.train(student, data, method=method, epochs=2, progress=False, device="cpu")
    >>> sdkit.evaluate(student, data.test)["accuracy"] > 0.75
    True
    >>> method.teacher is teacher, method.teacher.training  # a frozen copy, in eval mode
    (False, False)
    """

    name = "kd"

    def __init__(self, teacher: nn.Module, T: float = 4.0, alpha: float = 0.9, label_smoothing: float = 0.0) -> None:
        super().__init__(label_smoothing)
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be an nn.Module, got {type(teacher).__name__}")
        self.T, self.alpha = check_temperature(T), check_alpha(alpha)
        self.source = teacher
        self.teacher = frozen_copy(teacher)

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        super().setup(model, ctx)
        if model is self.source:
            raise ValueError(
                "teacher is the student itself; pass a trained copy (sdkit.frozen_copy(model)) or another model"
            )
        self.teacher.to(ctx.device)
        if any(isinstance(m, nn.Conv2d) for m in self.teacher.modules()):
            # the batches arrive in channels_last (see sdkit.train); a teacher in the other layout would convert
            # every activation, and cost twice the forward pass it should (measured in benchmarks/)
            self.teacher.to(memory_format=torch.channels_last)

    def state_dict(self) -> dict:
        return {"teacher": self.teacher.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.teacher.load_state_dict(state["teacher"])

    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), self.autocast():
            return self.teacher(x)

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        teacher_logits = self.teacher_logits(batch.x)
        if teacher_logits.shape != logits.shape:
            raise ValueError(
                f"teacher predicts {teacher_logits.shape[-1]} classes but the student {logits.shape[-1]}; "
                "they must match"
            )
        return _distillation_loss_unchecked(logits, teacher_logits, batch.y, self.T, self.alpha, self.label_smoothing)


def objective(
    method: Method | None,
    teacher: nn.Module | None,
    T: float | None,
    alpha: float | None,
    label_smoothing: float | None,
) -> Method:
    """The method ``sdkit.train`` was asked for by its arguments; a setting it would not use is an error, never
    silently dropped.

    >>> objective(None, None, None, None, None).name, objective(None, nn.Linear(2, 2), None, None, None).T
    ('plain', 4.0)
    >>> objective(Distill(nn.Linear(2, 2)), None, 2.0, None, None)
    Traceback (most recent call last):
    ...
    ValueError: T=2.0 would be ignored: method=Distill(...) brings its own objective; set it on the method instead
    """
    given = {k: v for k, v in (("T", T), ("alpha", alpha), ("label_smoothing", label_smoothing)) if v is not None}
    if method is not None:
        if teacher is not None:
            raise ValueError("pass either teacher= (classic distillation) or method=, not both")
        for name, value in given.items():
            raise ValueError(
                f"{name}={value!r} would be ignored: method={type(method).__name__}(...) brings its own objective; "
                "set it on the method instead"
            )
        return method
    if teacher is not None:
        T, alpha = 4.0 if T is None else T, 0.9 if alpha is None else alpha
        return Distill(teacher, T, alpha, label_smoothing or 0.0)
    for name in ("T", "alpha"):
        if name in given:
            raise ValueError(f"{name}={given[name]!r} would be ignored without a teacher; pass teacher= or drop it")
    return Method(label_smoothing or 0.0)


@dataclass
class Generation:
    """One model of a born-again sequence with its training history and test metrics.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> make = lambda seed: sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=seed)
    >>> teacher, student = born_again(make, data, generations=1, epochs=2, progress=False, device="cpu")
    >>> student.history["epoch"], sorted(student.metrics)  # its training run and its test metrics
    ([0, 1], ['accuracy', 'ece', 'nll'])
    """

    model: nn.Module
    history: History | None  # None for a teacher passed in already trained
    metrics: dict[str, float]


def born_again(
    make_model: Callable[[int], nn.Module],
    data: Data,
    generations: int = 2,
    *,
    T: float = 4.0,
    alpha: float = 0.9,
    seed: int = 0,
    teacher: nn.Module | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    **train_kwargs: Any,
) -> list[Generation]:
    """Train a teacher (generation 0) with cross-entropy, then ``generations`` students, each a fresh model from
    ``make_model(seed)`` distilled from the previous generation with ``T`` and ``alpha``.

    Pass ``teacher`` to start from an already trained model instead of training generation 0 (its
    :class:`Generation` then has ``history=None``).
    ``checkpoint_dir`` keeps one checkpoint per generation (``gen0.pt``, ``gen1.pt``, ...); with ``resume=True`` a
    finished generation is reloaded and an interrupted one continues where it stopped.
    Returns ``generations + 1`` entries, the teacher first, each evaluated on ``data.test``.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> make = lambda seed: sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=seed)
    >>> generations = born_again(make, data, generations=1, alpha=0.5, epochs=2, progress=False, device="cpu")
    >>> len(generations), [g.metrics["accuracy"] > 0.75 for g in generations]  # the teacher, then one student
    (2, [True, True])
    >>> teacher = generations[0].model  # a trained teacher is reused, not trained again
    >>> again = born_again(make, data, generations=1, teacher=teacher, epochs=2, progress=False, device="cpu")
    >>> len(again), again[0].model is teacher, again[0].history
    (2, True, None)
    """
    if isinstance(generations, bool) or not isinstance(generations, int) or generations < 0:
        raise ValueError(f"generations must be an integer >= 0, got generations={generations!r}")
    check_temperature(T)
    check_alpha(alpha)
    progress = train_kwargs.pop("progress", True)
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir (the folder holding gen0.pt, gen1.pt, ...)")

    def ckpt(g: int) -> dict[str, Any]:
        if checkpoint_dir is None:
            return {}
        return {"checkpoint": Path(checkpoint_dir) / f"gen{g}.pt", "resume": resume}

    from .train import train  # here, not at the top: sdkit.train imports this module

    results: list[Generation] = []
    if teacher is None:
        teacher = make_model(seed)
        history = train(teacher, data, seed=seed, progress=progress, desc="gen 0 (teacher)", **ckpt(0), **train_kwargs)
        results.append(Generation(teacher, history, evaluate(teacher, data.test)))
    else:
        results.append(Generation(teacher, None, evaluate(teacher, data.test)))
    previous = teacher
    for g in range(1, generations + 1):
        student = make_model(seed + g)
        if student is previous:
            raise ValueError("make_model must return a new model each call (it returned the teacher itself)")
        history = train(
            student, data, teacher=previous, T=T, alpha=alpha, seed=seed + g, progress=progress, desc=f"gen {g}",
            **ckpt(g), **train_kwargs,
        )  # fmt: skip
        results.append(Generation(student, history, evaluate(student, data.test)))
        previous = student
    return results
