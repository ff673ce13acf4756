"""Teacher-free baselines a self-distillation method must beat: label smoothing, mixup and a virtual teacher.

* :class:`TeacherFreeKD` (Yuan et al. 2020): distillation from a hand-made "virtual teacher" distribution.
* :class:`LabelSmoothing` (Szegedy et al. 2016): cross-entropy with smoothed one-hot targets.
* :class:`Mixup` (Zhang et al. 2018): training on convex combinations of pairs of samples and their labels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .data import Batch
from .losses import (
    _kd_loss_from_log_probs,
    check_alpha,
    check_temperature,
)
from .methods import Method, TrainContext

__all__ = ["TeacherFreeKD", "LabelSmoothing", "Mixup", "virtual_teacher"]


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
