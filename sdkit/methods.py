"""Training objectives that plug into the one training loop in :mod:`sdkit.train`.

A method turns a batch and the student's logits into a loss. It may hold state (a frozen teacher, stored
predictions); the loop calls ``setup`` once before training and ``end_epoch`` after every epoch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_alpha, check_temperature
from .data import Batch
from .losses import _distillation_loss_unchecked
from .models import frozen_copy

__all__ = ["Method", "CrossEntropy", "Distill", "PSKD"]


class Method:
    """Base class: plain cross-entropy on the hard labels (with optional label smoothing)."""

    name = "plain"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got label_smoothing={label_smoothing!r}")
        self.label_smoothing = label_smoothing

    def setup(self, model: nn.Module, device: torch.device, autocast, *, num_samples: int, epochs: int) -> None:
        """Called once before the first epoch, with the student already on ``device``.

        ``num_samples`` is the size of the training split (batch indices lie in ``[0, num_samples)``).
        """
        self.autocast = autocast

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), batch.y, label_smoothing=self.label_smoothing)

    def end_epoch(self, model: nn.Module, epoch: int) -> None:
        """Called after each epoch's last optimizer step."""


CrossEntropy = Method


class Distill(Method):
    """Knowledge distillation from a frozen teacher (Hinton et al. 2015, "Distilling the Knowledge in a Neural
    Network"): ``(1 - alpha) * CE(s, y) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))``.

    The teacher is a frozen deep copy (``eval()``, no gradients), so it is never the student and training the
    student cannot change it. It sees exactly the same augmented batch as the student.
    """

    name = "kd"

    def __init__(self, teacher: nn.Module, T: float = 4.0, alpha: float = 0.9, label_smoothing: float = 0.0) -> None:
        super().__init__(label_smoothing)
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be an nn.Module, got {type(teacher).__name__}")
        self.T, self.alpha = check_temperature(T), check_alpha(alpha)
        self.source = teacher
        self.teacher = frozen_copy(teacher)

    def setup(self, model: nn.Module, device: torch.device, autocast, *, num_samples: int, epochs: int) -> None:
        super().setup(model, device, autocast, num_samples=num_samples, epochs=epochs)
        if model is self.source:
            raise ValueError(
                "teacher is the student itself; pass a trained copy (sdkit.frozen_copy(model)) or another model"
            )
        self.teacher.to(device)

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
    """

    name = "pskd"

    def __init__(self, alpha_T: float = 0.8) -> None:
        super().__init__()
        self.alpha_T = check_alpha(alpha_T, "alpha_T")

    def setup(self, model: nn.Module, device: torch.device, autocast, *, num_samples: int, epochs: int) -> None:
        super().setup(model, device, autocast, num_samples=num_samples, epochs=epochs)
        self.epochs = epochs
        self.num_classes: int | None = None
        self.previous: torch.Tensor | None = None  # predictions stored during the previous epoch
        self.current: torch.Tensor | None = None  # predictions being stored during this epoch
        self.num_samples, self.device = num_samples, device

    def alpha_at(self, epoch: int) -> float:
        """``a_t = alpha_T * t / (E - 1)``: 0 at the first epoch, ``alpha_T`` at the last."""
        return self.alpha_T * epoch / max(1, self.epochs - 1)

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        if self.current is None:
            self.num_classes = logits.shape[-1]
            self.current = torch.zeros(self.num_samples, self.num_classes, device=self.device)
        probs = F.softmax(logits.detach().float(), dim=-1)
        self.current[batch.index] = probs
        target = F.one_hot(batch.y, logits.shape[-1]).float()
        if self.previous is not None:
            a = self.alpha_at(epoch)
            target = (1.0 - a) * target + a * self.previous[batch.index]
        return F.cross_entropy(logits.float(), target)

    def end_epoch(self, model: nn.Module, epoch: int) -> None:
        self.previous, self.current = self.current, torch.zeros_like(self.current)
