"""Training objectives that plug into the one training loop in :mod:`sdkit.train`.

A method turns a batch and the student's logits into a loss. It may hold state (a frozen teacher, stored
predictions); the loop calls ``setup`` once before training, ``prepare`` on every batch before the forward pass
(mixup mixes it, DLB appends re-visited samples), ``loss`` after it, ``after_step`` after each optimizer step and
``end_epoch`` after every epoch.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_alpha, check_temperature
from .data import Data
from .loader import Batch, BatchLoader, DataLoaderAdapter
from .losses import _distillation_loss_unchecked, _kd_loss_from_log_probs, _kd_loss_unchecked
from .models import frozen_copy

__all__ = [
    "Method", "TrainContext", "CrossEntropy", "Distill", "PSKD", "CSKD", "TeacherFreeKD", "EMATeacher", "BYOT",
    "DLB", "LabelSmoothing", "Mixup", "class_partners", "METHODS", "make_method",
]  # fmt: skip


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


class PSKD(Method):
    """Progressive self-knowledge distillation (Kim et al. 2021, "Self-Knowledge Distillation with Progressive
    Refinement of Targets"). One network, one run: its own predictions from the previous epoch are the teacher.

    At epoch ``t`` (0-based) of ``E`` the target for sample ``i`` is

        q_i = (1 - a_t) * onehot(y_i) + a_t * p_prev(i),     a_t = alpha_T * t / (E - 1),

    where ``p_prev(i)`` is the softmax the model gave sample ``i`` (by its index in the training split) during the
    previous epoch, and the loss is the soft cross-entropy ``-sum_j q_ij log softmax(z_i)_j``. The paper uses
    ``alpha_T = 0.8``. At epoch 0 there is no previous prediction and the target is the one-hot label.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    >>> method = PSKD(alpha_T=0.8)
    >>> _ = sdkit.train(model, data, method=method, epochs=2, progress=False, device="cpu")
    >>> [method.alpha_at(t) for t in range(2)]  # a_t of each epoch
    [0.0, 0.8]
    >>> method.previous.shape  # the last epoch's prediction for every training sample
    torch.Size([1294, 10])
    >>> sdkit.evaluate(model, data.test)["accuracy"] > 0.8
    True
    """

    name = "pskd"

    def __init__(self, alpha_T: float = 0.8) -> None:
        super().__init__()
        self.alpha_T = check_alpha(alpha_T, "alpha_T")

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        super().setup(model, ctx)
        self.epochs = ctx.epochs
        n, c, device = ctx.loader.num_samples, ctx.num_classes, ctx.device
        # The latest prediction for each sample, by index. A sample missing from an epoch (the loop drops the
        # last incomplete batch) keeps its older prediction; one never seen yet gets the plain one-hot target.
        self.previous = torch.zeros(n, c, device=device)
        self.has_previous = torch.zeros(n, dtype=torch.bool, device=device)
        self.current = torch.zeros(n, c, device=device)
        self.has_current = torch.zeros(n, dtype=torch.bool, device=device)

    def alpha_at(self, epoch: int) -> float:
        """``a_t = alpha_T * t / (E - 1)``: 0 at the first epoch, ``alpha_T`` at the last."""
        return self.alpha_T * epoch / max(1, self.epochs - 1)

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        self.current[batch.index] = F.softmax(logits.detach().float(), dim=-1)
        self.has_current[batch.index] = True
        a = self.alpha_at(epoch) * self.has_previous[batch.index].float()[:, None]
        target = (1.0 - a) * F.one_hot(batch.y, logits.shape[-1]).float() + a * self.previous[batch.index]
        return F.cross_entropy(logits.float(), target)

    def end_epoch(self, model: nn.Module, epoch: int) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # every rank saw a disjoint shard: summing gathers all predictions (with their indices) on every rank
            self.current *= self.has_current[:, None]
            torch.distributed.all_reduce(self.current)
            seen = self.has_current.to(torch.int32)
            torch.distributed.all_reduce(seen)
            self.has_current = seen > 0
        self.previous = torch.where(self.has_current[:, None], self.current, self.previous)
        self.has_previous |= self.has_current
        self.has_current.zero_()

    def state_dict(self) -> dict:
        return {name: getattr(self, name) for name in ("previous", "has_previous", "current", "has_current")}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value.to(self.current.device))


def class_partners(labels: torch.Tensor, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each sample ``index[k]`` of a split with ``labels``, a random other sample of the same class.

    Used by CS-KD's class-wise sampler. A class with a single sample pairs that sample with itself.

    >>> labels = torch.tensor([0, 0, 1, 1, 1, 2])
    >>> partners = class_partners(labels, torch.arange(6), torch.Generator().manual_seed(0))
    >>> partners
    tensor([1, 0, 4, 4, 3, 5])
    >>> labels[partners]  # the same classes; only the single sample of class 2 is its own partner
    tensor([0, 0, 1, 1, 1, 2])
    """
    labels_cpu, index_cpu = labels.cpu(), index.cpu()
    partners = torch.empty_like(index_cpu)
    for c in labels_cpu[index_cpu].unique():
        members = torch.nonzero(labels_cpu == c).flatten()
        rows = torch.nonzero(labels_cpu[index_cpu] == c).flatten()
        if len(members) == 1:
            partners[rows] = members[0]
            continue
        # draw among the other members: an offset in [1, n) from the sample's own position, modulo n
        position = torch.searchsorted(members, index_cpu[rows])
        offset = torch.randint(1, len(members), (len(rows),), generator=generator)
        partners[rows] = members[(position + offset) % len(members)]
    return partners.to(index.device)


class CSKD(Method):
    """Class-wise self-knowledge distillation (Yun et al. 2020, "Regularizing Class-wise Predictions via
    Self-knowledge Distillation"): each sample is paired with another sample of the same class, and the model's
    prediction on the partner (no gradient) is the soft target:

        L = CE(z_i, y_i) + lam * T^2 * KL(softmax(z_partner / T) || softmax(z_i / T)),   T = 4, lam = 1.

    The partner is augmented like the batch, with the method's own generator, seeded with ``seed`` (default: the
    ``seed`` of :func:`sdkit.train`, so that runs with different seeds draw different partners).

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    >>> _ = sdkit.train(model, data, method=CSKD(T=4.0, lam=1.0), epochs=2, progress=False, device="cpu")
    >>> sdkit.evaluate(model, data.test)["accuracy"] > 0.8
    True
    """

    name = "cskd"

    def __init__(self, T: float = 4.0, lam: float = 1.0, seed: int | None = None) -> None:
        super().__init__()
        self.T = check_temperature(T)
        if not lam >= 0:
            raise ValueError(f"lam (the weight of the class-wise term) must be >= 0, got lam={lam!r}")
        self.lam, self.seed = float(lam), seed

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        super().setup(model, ctx)
        self.loader = ctx.loader
        self.generator = torch.Generator().manual_seed(ctx.seed if self.seed is None else self.seed)
        self.channels_last = ctx.device.type == "cuda"

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        partners = class_partners(self.loader.labels, batch.index, self.generator)
        x = self.loader.fetch(partners, self.generator)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), self.autocast():
            partner_logits = model(x)
        hard = F.cross_entropy(logits.float(), batch.y)
        return hard + self.lam * _kd_loss_unchecked(logits, partner_logits, self.T)


def virtual_teacher(targets: torch.Tensor, num_classes: int, correct_prob: float) -> torch.Tensor:
    """Teacher-free KD's hand-designed distribution: ``correct_prob`` on the label, the rest spread evenly."""
    q = torch.full((len(targets), num_classes), (1.0 - correct_prob) / (num_classes - 1), device=targets.device)
    return q.scatter_(1, targets[:, None], correct_prob)


class TeacherFreeKD(Method):
    """Teacher-free KD with a virtual teacher (Yuan et al. 2020, "Revisiting Knowledge Distillation via Label
    Smoothing Regularization", Tf-KD_reg): the teacher is the distribution ``q`` with ``correct_prob`` (0.9) on the
    true class and ``(1 - correct_prob) / (C - 1)`` elsewhere, and

        L = (1 - alpha) * CE(z, y) + alpha * T^2 * KL(q || softmax(z / T)).

    The paper (and its code) also softens ``q`` itself, as ``softmax(q / T)``, and tunes T and alpha per dataset;
    sdkit uses ``q`` as it is (a proper distribution), with ``T = 4``, ``alpha = 0.5``.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    >>> method = TeacherFreeKD(correct_prob=0.9, T=4.0, alpha=0.5)
    >>> _ = sdkit.train(model, data, method=method, epochs=2, progress=False, device="cpu")
    >>> sdkit.evaluate(model, data.test)["accuracy"] > 0.75
    True
    >>> batch = Batch(torch.zeros(1, 1, 8, 8), torch.tensor([0]), torch.tensor([0]))
    >>> method.loss(model, batch, torch.zeros(1, 10), epoch=0)  # 0.5 * log 10 + 0.5 * 16 * KL(q || uniform)
    tensor(15.2135)
    """

    name = "tfkd"

    def __init__(self, correct_prob: float = 0.9, T: float = 4.0, alpha: float = 0.5) -> None:
        super().__init__()
        if not 0.0 < correct_prob < 1.0:
            raise ValueError(f"correct_prob must lie in (0, 1), got correct_prob={correct_prob!r}")
        self.correct_prob, self.T, self.alpha = correct_prob, check_temperature(T), check_alpha(alpha)

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        q = virtual_teacher(batch.y, logits.shape[-1], self.correct_prob)
        soft = _kd_loss_from_log_probs(logits, q.log(), self.T)
        return (1.0 - self.alpha) * F.cross_entropy(logits.float(), batch.y) + self.alpha * soft


class EMATeacher(Method):
    """Distillation from an exponential moving average of the student's own weights (mean teacher, Tarvainen &
    Valpola 2017; the teacher of DINO, Caron et al. 2021). After every optimizer step, under no_grad,

        theta_teacher <- m_k * theta_teacher + (1 - m_k) * theta_student,   m_k = min(m, 1 - 1 / (k + 1)),

    for every parameter and floating-point buffer (BatchNorm running statistics); integer buffers are copied.
    ``k`` counts optimizer steps from 1 and ``m = ema_decay = 0.99``: the ramp (from the mean-teacher code) lets the
    teacher follow the student closely at first, so that it does not keep its random initial weights for hundreds
    of steps.
    The loss is ``(1 - a_t) * CE(z, y) + a_t * T^2 * KL(softmax(t/T) || softmax(z/T))`` with the EMA teacher's
    logits ``t`` on the same augmented batch, ``T = 2`` and the soft weight ramped up linearly over the run,
    ``a_t = alpha * t / (E - 1)`` with ``alpha = 0.5`` (mean teachers ramp their consistency weight up too): with a
    constant weight from the first step, the student and its average pull each other towards flat predictions.
    The EMA's memory is about ``1 / (1 - m)`` steps; on a small dataset with few steps per epoch, lower ``m``.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    >>> method = EMATeacher(ema_decay=0.9)
    >>> [round(method.decay_at(k), 3) for k in (1, 2, 5, 100)]  # the ramp, capped at m = 0.9
    [0.5, 0.667, 0.833, 0.9]
    >>> _ = sdkit.train(model, data, method=method, epochs=2, progress=False, device="cpu")
    >>> method.steps  # optimizer steps: 2 epochs of 10 batches of 128
    20
    >>> sdkit.evaluate(model, data.test)["accuracy"] > 0.8
    True
    """

    name = "ema"

    def __init__(self, ema_decay: float = 0.99, T: float = 2.0, alpha: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1) (e.g. 0.99), got ema_decay={ema_decay!r}")
        self.ema_decay, self.T, self.alpha = ema_decay, check_temperature(T), check_alpha(alpha)

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        super().setup(model, ctx)
        self.teacher = frozen_copy(model)
        self.steps, self.epochs = 0, ctx.epochs

    def alpha_at(self, epoch: int) -> float:
        """``a_t = alpha * t / (E - 1)``."""
        return self.alpha * epoch / max(1, self.epochs - 1)

    def state_dict(self) -> dict:
        return {"teacher": self.teacher.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.teacher.load_state_dict(state["teacher"])
        self.steps = state["steps"]

    def decay_at(self, step: int) -> float:
        """``m_k = min(m, 1 - 1/(k + 1))`` for optimizer step ``k >= 1``."""
        return min(self.ema_decay, 1.0 - 1.0 / (step + 1))

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        self.steps += 1
        m = self.decay_at(self.steps)
        for t, s in zip(self.teacher.parameters(), model.parameters(), strict=True):
            t.lerp_(s, 1.0 - m)
        for t, s in zip(self.teacher.buffers(), model.buffers(), strict=True):
            if t.is_floating_point():
                t.lerp_(s, 1.0 - m)
            else:
                t.copy_(s)

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        with torch.no_grad(), self.autocast():
            teacher_logits = self.teacher(batch.x)
        return _distillation_loss_unchecked(logits, teacher_logits, batch.y, self.T, self.alpha_at(epoch))


class BYOT(Method):
    """Be Your Own Teacher (Zhang et al. 2019): auxiliary classifiers on the intermediate stages of a
    :class:`sdkit.models.ResNet`; the deepest classifier teaches the shallower ones. With ``z_k`` the logits of
    head ``k`` (the last being the network's own classifier) and ``f_k`` the features,

        L = sum_k [ (1 - alpha) * CE(z_k, y) + alpha * T^2 * KL(softmax(z_deep/T) || softmax(z_k/T))
                    + beta * || f_k - f_deep ||^2 ]   (the deepest head gets only its CE)

    with ``alpha = 0.3``, ``T = 3``, ``beta = 0.03`` (the feature hint; 0 switches it off). The teacher terms are
    detached. Build the model with ``sdkit.build_model("resnet...", ..., aux_heads=True)``: its heads are part of
    the model, so the optimizer trains them; at evaluation only the final classifier is used.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("resnet8", data.input_shape, data.num_classes, seed=0, aux_heads=True)
    >>> _ = sdkit.train(model, data, method=BYOT(), epochs=2, progress=False, device="cpu")
    >>> len(model.aux_heads), sdkit.evaluate(model, data.test)["accuracy"] > 0.8
    (2, True)
    """

    name = "byot"

    def __init__(self, T: float = 3.0, alpha: float = 0.3, beta: float = 0.03) -> None:
        super().__init__()
        if not beta >= 0:
            raise ValueError(f"beta (the feature-hint weight) must be >= 0, got beta={beta!r}")
        self.T, self.alpha, self.beta = check_temperature(T), check_alpha(alpha), float(beta)

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        super().setup(model, ctx)
        if not getattr(model, "aux_heads", None):
            raise ValueError(
                "BYOT needs a ResNet with auxiliary heads: build_model('resnet8', shape, classes, aux_heads=True)"
            )

    def forward(self, forward: Callable[..., torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        logits, self.aux = forward(x, return_aux=True)
        return logits

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        """The loss of the last :meth:`forward` (whose auxiliary outputs it reads)."""
        deep_logits = logits.float()
        deep_feature = self.aux.features[-1]
        total = F.cross_entropy(deep_logits, batch.y)
        for head_logits, feature in zip(self.aux.logits, self.aux.features[:-1], strict=True):
            total = total + _distillation_loss_unchecked(head_logits, deep_logits.detach(), batch.y, self.T, self.alpha)
            if self.beta:
                total = total + self.beta * (feature - deep_feature.detach()).pow(2).sum(-1).mean()
        return total


class LabelSmoothing(Method):
    """Label smoothing (Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision") set to
    the target of teacher-free KD's virtual teacher: cross-entropy against ``q = (1 - eps) onehot(y) + eps / C``
    with ``eps = (1 - correct_prob) * C / (C - 1)``, so that ``q`` puts ``correct_prob`` on the label and spreads
    the rest evenly, exactly :class:`TeacherFreeKD`'s ``q``. It is the baseline that tells whether a method's gain
    needs a teacher at all.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    >>> method = LabelSmoothing(correct_prob=0.9)
    >>> _ = sdkit.train(model, data, method=method, epochs=2, progress=False, device="cpu")
    >>> round(method.label_smoothing, 4)  # eps for 10 classes: 0.1 * 10 / 9
    0.1111
    >>> batch = Batch(torch.zeros(1, 1, 8, 8), torch.tensor([0]), torch.tensor([0]))
    >>> q = virtual_teacher(batch.y, 10, 0.9)
    >>> logits = torch.randn(1, 10, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.isclose(method.loss(model, batch, logits, 0), -(q * logits.log_softmax(-1)).sum()))
    True
    """

    name = "ls"

    def __init__(self, correct_prob: float = 0.9) -> None:
        super().__init__()
        if not 0.0 < correct_prob < 1.0:
            raise ValueError(f"correct_prob must lie in (0, 1), got correct_prob={correct_prob!r}")
        self.correct_prob = correct_prob

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        super().setup(model, ctx)
        c = ctx.num_classes
        self.label_smoothing = (1.0 - self.correct_prob) * c / (c - 1)


class Mixup(Method):
    """mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization"), the strong regulariser the book
    compares self-distillation with. Each batch is mixed with a shuffled copy of itself,

        x~ = lam * x + (1 - lam) * x[perm],   L = lam * CE(f(x~), y) + (1 - lam) * CE(f(x~), y[perm]),

    with one ``lam ~ Beta(alpha, alpha)`` per batch (``alpha = 0.2``, the paper's value for ImageNet-sized data).
    ``lam`` and ``perm`` come from torch's global generator, which :func:`sdkit.train` seeds with its ``seed``
    and stores in checkpoints, so a run is reproducible and resumes exactly.

    >>> mixup = Mixup(alpha=0.2)
    >>> batch = Batch(torch.eye(4).view(4, 1, 2, 2), torch.arange(4), torch.arange(4))
    >>> mixed = mixup.prepare(batch)  # one lam and one permutation for the whole batch
    >>> bool(torch.allclose(mixed.x, mixup.lam * batch.x + (1 - mixup.lam) * batch.x[mixup.perm]))
    True
    >>> 0.0 <= mixup.lam <= 1.0
    True
    """

    name = "mixup"

    def __init__(self, alpha: float = 0.2) -> None:
        super().__init__()
        if not (isinstance(alpha, (int, float)) and alpha > 0 and math.isfinite(alpha)):
            raise ValueError(f"alpha (the Beta distribution's parameter) must be a number > 0, got alpha={alpha!r}")
        self.alpha = float(alpha)

    def prepare(self, batch: Batch) -> Batch:
        self.lam = float(torch.distributions.Beta(self.alpha, self.alpha).sample())
        self.perm = torch.randperm(len(batch.y)).to(batch.y.device)
        return batch._replace(x=self.lam * batch.x + (1.0 - self.lam) * batch.x[self.perm])

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        logits = logits.float()
        return self.lam * F.cross_entropy(logits, batch.y) + (1.0 - self.lam) * F.cross_entropy(
            logits, batch.y[self.perm]
        )


class DLB(Method):
    """Self-distillation from the last mini-batch (Shen et al. 2022, "Self-Distillation from the Last Mini-Batch
    for Consistency Regularization"). Every batch also carries half of the previous batch's samples; the
    predictions the model made on those samples one step earlier (detached) are their soft targets:

        L = CE(z, y) + alpha * T^2 * KL(softmax(z_prev / T) || softmax(z_again / T)),

    where ``z`` are the logits of the whole extended batch (new samples and re-visited ones, each with its hard
    label), ``z_again`` the logits of the re-visited samples now and ``z_prev`` their logits at the previous step.
    ``T = 3`` and ``alpha = 1`` as in the paper. The re-visited images are the same augmented tensors as one step
    earlier, so the target moves only with the weights. A step costs about 1.5 forward/backward passes.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    >>> method = DLB(T=3.0, alpha=1.0)
    >>> _ = sdkit.train(model, data, method=method, epochs=3, progress=False, device="cpu")
    >>> sdkit.evaluate(model, data.test)["accuracy"] > 0.8
    True
    """

    name = "dlb"

    def __init__(self, T: float = 3.0, alpha: float = 1.0) -> None:
        super().__init__()
        self.T = check_temperature(T)
        if not (isinstance(alpha, (int, float)) and alpha >= 0 and math.isfinite(alpha)):
            raise ValueError(f"alpha (the weight of the consistency term) must be a number >= 0, got alpha={alpha!r}")
        self.alpha = float(alpha)

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        super().setup(model, ctx)
        self.last: tuple[Batch, torch.Tensor] | None = None  # re-visited samples and their logits one step ago
        self.n_new = 0

    def prepare(self, batch: Batch) -> Batch:
        self.n_new = len(batch.y)
        if self.last is None:
            return batch
        again = self.last[0]
        return Batch(
            torch.cat([batch.x, again.x]), torch.cat([batch.y, again.y]), torch.cat([batch.index, again.index])
        )

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        logits = logits.float()
        total = F.cross_entropy(logits, batch.y)
        if self.last is not None:
            total = total + self.alpha * _kd_loss_unchecked(logits[self.n_new :], self.last[1], self.T)
        keep = slice(0, (self.n_new + 1) // 2)  # half of this step's new samples are re-visited at the next step
        self.last = (Batch(batch.x[keep], batch.y[keep], batch.index[keep]), logits[keep].detach())
        return total

    def end_epoch(self, model: nn.Module, epoch: int) -> None:
        self.last = None  # an epoch starts afresh: the loader's last batch may differ in size and layout

    def state_dict(self) -> dict:
        return {}  # checkpoints are written between epochs, when nothing is carried over


#: Method names (as the CLI and :func:`sdkit.book.compare` spell them) and their classes. ``kd`` needs a teacher.
METHODS: dict[str, type[Method]] = {
    "plain": Method,
    "kd": Distill,
    "pskd": PSKD,
    "cskd": CSKD,
    "tfkd": TeacherFreeKD,
    "ema": EMATeacher,
    "byot": BYOT,
    "dlb": DLB,
    "ls": LabelSmoothing,
    "mixup": Mixup,
}


def make_method(name: str, args: Mapping[str, Any] | None = None, **extra: Any) -> Method:
    """Build the method registered as ``name`` in :data:`METHODS` with hyperparameters ``args`` (and ``extra``,
    e.g. ``teacher=`` for ``kd``); a hyperparameter the class does not take is an error naming the valid ones.

    >>> make_method("pskd", {"alpha_T": 0.5}).alpha_T
    0.5
    >>> make_method("pskd", {"T": 2.0})
    Traceback (most recent call last):
    ...
    ValueError: method 'pskd' has no hyperparameter 'T'; it takes ['alpha_T']
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {list(METHODS)}")
    cls = METHODS[name]
    kwargs = {**(args or {}), **extra}
    valid = [p for p in inspect.signature(cls).parameters if p != "self"]
    for key in kwargs:
        if key not in valid:
            raise ValueError(f"method {name!r} has no hyperparameter {key!r}; it takes {valid}")
    return cls(**kwargs)
