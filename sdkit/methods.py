"""Training objectives that plug into the one training loop in :mod:`sdkit.train`.

A method turns a batch and the student's logits into a loss. It may hold state (a frozen teacher, stored
predictions); the loop calls ``setup`` once before training and ``end_epoch`` after every epoch.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_alpha, check_temperature
from .data import Batch
from .losses import _distillation_loss_unchecked
from .models import frozen_copy

__all__ = ["Method", "CrossEntropy", "Distill"]


class Method:
    """Base class: plain cross-entropy on the hard labels (with optional label smoothing)."""

    name = "plain"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got label_smoothing={label_smoothing!r}")
        self.label_smoothing = label_smoothing

    def setup(self, model: nn.Module, device: torch.device, autocast) -> None:
        """Called once before the first epoch, with the student already on ``device``."""
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

    def setup(self, model: nn.Module, device: torch.device, autocast) -> None:
        super().setup(model, device, autocast)
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
