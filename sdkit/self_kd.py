"""Self-knowledge distillation: methods in which a model, during its one training run, teaches itself.

* :class:`PSKD` (Kim et al. 2021): targets mixed from the labels and the model's own predictions of the last epoch.
* :class:`CSKD` (Yun et al. 2020): the predictions on another sample of the same class as a soft target.
* :class:`EMATeacher`: a teacher that is the exponential moving average of the student's weights.
* :class:`BYOT` (Zhang et al. 2019, "Be Your Own Teacher"): the deepest classifier teaches shallower heads.
* :class:`DLB` (Shen et al. 2022): the last mini-batch's predictions teach the current step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .data import Batch
from .losses import (
    _distillation_loss_unchecked,
    _kd_loss_unchecked,
    check_alpha,
    check_temperature,
)
from .methods import Method, TrainContext
from .models import frozen_copy

__all__ = ["PSKD", "CSKD", "EMATeacher", "BYOT", "DLB", "class_partners"]


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
