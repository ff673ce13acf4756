"""Temperature, the distillation losses, and the argument checks sdkit shares.

Temperature. A classifier's logits ``z`` become a distribution with a temperature ``T``:

    q_i(T) = exp(z_i / T) / sum_j exp(z_j / T)

``T = 1`` is the ordinary softmax, ``T > 1`` flattens the distribution (more of the "dark knowledge" in the small
probabilities becomes visible), ``T < 1`` sharpens it towards the one-hot argmax. float16 and bfloat16 inputs
(autocast outputs) are computed in float32: ``z / T`` overflows float16 (largest value 65504) already for
``z = 1e4, T = 0.05``, and would turn the softmax into NaN. ``soften`` and ``soften_probs`` round the result back
to the input's dtype; ``entropy`` returns float32, like the losses.

Losses. Notation: ``s`` student logits, ``t`` teacher logits, ``q = softmax(t / T)`` the teacher's soft label,
``p = softmax(s / T)`` the student's tempered prediction, ``y`` the hard label, ``B`` the batch size.

* ``soft_cross_entropy``: ``(1/B) sum_b -sum_i q_bi log p_bi``
* ``kd_loss`` (Hinton et al. 2015): ``T^2 * (1/B) sum_b KL(q_b || p_b)``. The ``T^2`` keeps the gradient's size
  roughly independent of ``T`` (the gradient of the KL alone shrinks like ``1/T^2`` for large ``T``).
* ``distillation_loss``: ``(1 - alpha) * CE(s, y) + alpha * kd_loss(s, t, T)``. **alpha weights the soft term.**

Soft cross-entropy and KL differ by the teacher's entropy ``H(q)``, which does not depend on the student, so both
give the same gradients; KL is 0 when the student matches the teacher, which makes it easier to read.

Precision. float16/bfloat16 logits are computed in float32 (the loss is float32). The KL is summed as
``sum_i q_i phi(u_i)`` with ``u = log p - log q`` and ``phi(u) = e^u - 1 - u >= 0`` (equal to
``sum_i q_i (log q_i - log p_i)`` because ``sum_i q_i (e^u_i - 1) = sum_i p_i - sum_i q_i = 0``): every term is
>= 0 as computed, so the loss is never negative, and it is exactly 0 (with a zero gradient) for identical logits.
Summing ``q_i (log q_i - log p_i)`` directly lets the rounding errors of the log-probabilities (~1e-7 each in
float32) cancel into a negative total when ``p`` is close to ``q``, and ``T^2`` magnifies them: float32 logits
once gave ``kd_loss = -15.5`` at ``T = 1e4`` for a true value of 0.4.

The public functions validate their input with the ``check_*`` functions at the end of this module, which the
rest of sdkit shares: each raises ``ValueError`` (``TypeError`` for a wrong type) naming the argument, the value
and the fix. The training loop calls the ``_unchecked`` versions after validating its data
once, because value checks on a GPU tensor force a host synchronisation; their distillation term is fused into one
autograd node with its gradient in closed form (:class:`_FusedKL`), the public functions go through autograd term
by term (so higher derivatives work), and the two agree to float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "soften", "soften_probs", "entropy",
    "soft_cross_entropy", "kd_loss", "distillation_loss", "SoftCrossEntropy", "KDLoss", "DistillationLoss",
]  # fmt: skip


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 (autocast outputs) to float32 for the arithmetic; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def soften(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Soft labels ``softmax(logits / T)`` over the last dimension, in the dtype of ``logits`` (computed in float32
    for float16/bfloat16).

    >>> soften(torch.tensor([2.0, 0.0]), T=2.0)
    tensor([0.7311, 0.2689])
    """
    T = check_temperature(T)
    check_logits(logits, "logits")
    return F.softmax(_upcast(logits) / T, dim=-1).to(logits.dtype)


def soften_probs(probs: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Apply temperature ``T`` to a distribution given as probabilities.

    Since ``p_i = softmax(z)_i`` means ``log p_i = z_i - logsumexp(z)``, and the constant drops out of a softmax,

        soften_probs(p, T)_i = p_i^(1/T) / sum_j p_j^(1/T) = softmax(log p / T)_i,

    which is how it is computed (in log space, so tiny probabilities do not underflow). Zero probabilities stay 0.
    The result has the dtype of ``probs`` (computed in float32 for float16/bfloat16).

    >>> soften_probs(torch.tensor([0.8, 0.1, 0.1]), T=2.0)
    tensor([0.5858, 0.2071, 0.2071])
    """
    T = check_temperature(T)
    check_probs(probs, "probs")
    return F.softmax(torch.log(_upcast(probs)) / T, dim=-1).to(probs.dtype)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats, ``H(q) = -sum_i q_i log q_i``, over the last dimension (``0 log 0 = 0``); float32
    for float16/bfloat16 input.

    >>> entropy(torch.tensor([0.5, 0.5]))
    tensor(0.6931)
    """
    check_probs(probs, "probs")
    probs = _upcast(probs)
    return -torch.special.xlogy(probs, probs).sum(-1)


# ------------------------------------------------------------------------------------------- losses


def _kl_terms(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Elementwise ``q_i phi(u_i)``, ``u = log p - log q``, ``phi(u) = e^u - 1 - u``: each >= 0, summing to
    ``KL(q || p)`` over the classes (see the module docstring).

    ``u <= 1``: ``q (expm1(u) - u)``; ``expm1`` is accurate to within an ulp, so ``expm1(u) >= u`` holds as computed.
    ``u > 1`` (``p > e q``), where ``e^u`` may overflow: ``q phi(u) = p (1 - (1 + u) e^-u)``, computed as
    ``exp(log p + log1p(-(1 + u) e^-u))``, an exponential and so >= 0. Each branch is evaluated on clamped ``u`` so
    that the branch :func:`torch.where` discards stays finite (a NaN there would still poison the gradient).
    """
    u = log_p - log_q
    near = log_q.exp() * (torch.expm1(u.clamp(max=1.0)) - u)
    far_u = u.clamp(min=1.0)
    far = torch.exp(log_p + torch.log1p(-(1.0 + far_u) * torch.exp(-far_u)))
    return torch.where(u <= 1.0, near, far)


def _kd_loss_from_log_probs(student_logits: torch.Tensor, log_q: torch.Tensor, T: float) -> torch.Tensor:
    """``T^2 * KL(q || softmax(s / T))`` for a target given as log-probabilities ``log_q`` (used as it is)."""
    log_p = F.log_softmax(_upcast(student_logits) / T, dim=-1)
    log_q = log_q.to(log_p.dtype)
    # 'batchmean': the summed KL divided by the batch size, the true mean per-sample KL ('mean' would also divide
    # by the number of classes and silently shrink the loss C times). A 1-D input is one sample.
    batch = log_p.shape[0] if log_p.dim() > 1 else 1
    return (T * T) * _kl_terms(log_p, log_q).sum() / batch


class _FusedKL(torch.autograd.Function):
    """``scale * sum KL(q || softmax(s / T))`` with its gradient in closed form, ``scale * (p - q) / T``: the
    non-negative terms of :func:`_kl_terms` as one autograd node instead of some twenty, its backward one product
    (a launch-bound GPU step pays per operator: benchmarks/step_ops.py). For a target without a gradient; agrees
    with :func:`_kd_loss_from_log_probs` to float rounding (tests/test_losses.py). Without autograd, neither branch
    needs clamping: the one :func:`torch.where` discards may overflow harmlessly."""

    @staticmethod
    def forward(ctx, student_logits: torch.Tensor, log_q: torch.Tensor, T: float, scale: float) -> torch.Tensor:
        log_p = F.log_softmax(student_logits / T, dim=-1)
        u = log_p - log_q
        q = log_q.exp()
        p_minus_q = log_p.exp() - q
        near = q * (torch.expm1(u) - u)  # u <= 1: as in _kl_terms
        far = torch.addcmul(p_minus_q, q, u, value=-1.0)  # u > 1: p - (1 + u) q >= (1 - 2/e) p, never negative
        ctx.save_for_backward(p_minus_q)
        ctx.factor = scale / T
        return torch.where(u <= 1.0, near, far).sum() * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return ctx.saved_tensors[0] * (grad * ctx.factor), None, None, None  # scale * (p - q) / T


def _kd_loss_unchecked(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float,
                       weight: float = 1.0) -> torch.Tensor:  # fmt: skip
    """The training loop's ``weight * T^2 * KL(softmax(t/T) || softmax(s/T))`` ('batchmean'): fused
    (:class:`_FusedKL`) unless the teacher's logits need a gradient too (a detached copy does not)."""
    s, log_q = _upcast(student_logits), F.log_softmax(_upcast(teacher_logits) / T, dim=-1)
    if log_q.requires_grad:
        return weight * _kd_loss_from_log_probs(s, log_q, T)
    batch = s.shape[0] if s.dim() > 1 else 1
    return _FusedKL.apply(s, log_q.to(s.dtype), T, weight * T * T / batch)


def _distillation_loss_unchecked(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                                 T: float, alpha: float, label_smoothing: float = 0.0) -> torch.Tensor:  # fmt: skip
    """The training loop's objective (no checks; see the module docstring): the distillation term fused."""
    s = _upcast(student_logits)  # once: under autocast each upcast is a kernel
    hard = F.cross_entropy(s, targets, label_smoothing=label_smoothing)
    return hard if alpha == 0.0 else torch.add(_kd_loss_unchecked(s, teacher_logits, T, alpha), hard, alpha=1 - alpha)


def _check_inputs(student_logits: torch.Tensor, target: torch.Tensor, target_name: str, T: float) -> float:
    """The checks every loss makes: ``T``, the student's logits (finite, not empty), the target (probabilities
    for ``target_probs``, logits otherwise) and the same number of classes on both. Returns ``T`` as a float."""
    T = check_temperature(T)
    check_logits(student_logits, "student_logits")
    check_not_empty(student_logits, "student_logits")
    (check_probs if target_name == "target_probs" else check_logits)(target, target_name)
    check_same_classes(student_logits, target, "student_logits", target_name)
    return T


def soft_cross_entropy(student_logits: torch.Tensor, target_probs: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Cross-entropy against a soft target: ``(1/B) sum_b -sum_i q_bi log softmax(s_b / T)_i``.

    ``target_probs`` are probabilities (rows summing to 1), e.g. ``soften(teacher_logits, T)``.
    Equals ``KL(q || p) + H(q)``.

    >>> soft_cross_entropy(torch.zeros(1, 4), torch.full((1, 4), 0.25))  # log 4
    tensor(1.3863)
    """
    T = _check_inputs(student_logits, target_probs, "target_probs", T)
    log_p = _upcast(student_logits) / T
    return F.cross_entropy(log_p, _upcast(target_probs).to(log_p.dtype))


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float = 4.0) -> torch.Tensor:
    """Hinton's soft loss ``T^2 * KL(softmax(t/T) || softmax(s/T))``, averaged over the batch ('batchmean').

    >>> z = torch.tensor([[1.0, 2.0, 3.0]])
    >>> kd_loss(z, z, T=4.0)
    tensor(0.)
    """
    T = _check_inputs(student_logits, teacher_logits, "teacher_logits", T)
    return _kd_loss_from_log_probs(student_logits, F.log_softmax(_upcast(teacher_logits) / T, dim=-1), T)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    T: float = 4.0,
    alpha: float = 0.9,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``(1 - alpha) * CE(s, y) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))``.

    ``alpha`` is the weight of the **soft** (teacher) term: ``alpha = 0`` is plain cross-entropy training and
    ``alpha = 1`` ignores the hard labels. Some published code uses the opposite convention; sdkit never does.

    >>> s, t = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    >>> distillation_loss(s, t, torch.tensor([0]), T=1.0, alpha=0.0)  # = CE(s, y) = log(1 + e^-2)
    tensor(0.1269)
    """
    T = _check_inputs(student_logits, teacher_logits, "teacher_logits", T)
    alpha = check_alpha(alpha)
    targets = check_labels(targets, student_logits.shape[-1], student_logits.shape[0]).long()  # any integer dtype
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1), got label_smoothing={label_smoothing!r}")
    hard = F.cross_entropy(_upcast(student_logits), targets, label_smoothing=label_smoothing)
    log_q = F.log_softmax(_upcast(teacher_logits) / T, dim=-1)  # every term through autograd: see the module doc
    return hard if alpha == 0.0 else (1.0 - alpha) * hard + alpha * _kd_loss_from_log_probs(student_logits, log_q, T)


class _TemperatureLoss(nn.Module):
    """A loss ``fn(student_logits, target, T)`` as a module that holds its temperature ``T``."""

    fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]

    def __init__(self, T: float) -> None:
        super().__init__()
        self.T = check_temperature(T)

    def forward(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return type(self).fn(student_logits, target, self.T)


class SoftCrossEntropy(_TemperatureLoss):
    """Module form of :func:`soft_cross_entropy`: ``(1/B) sum_b -sum_i q_bi log softmax(s_b / T)_i``.

    >>> SoftCrossEntropy(T=1.0)(torch.zeros(1, 4), torch.full((1, 4), 0.25))  # log 4
    tensor(1.3863)
    """

    fn = staticmethod(soft_cross_entropy)

    def __init__(self, T: float = 1.0) -> None:
        super().__init__(T)


class KDLoss(_TemperatureLoss):
    """Module form of :func:`kd_loss`: ``T^2 * (1/B) sum_b KL(softmax(t_b/T) || softmax(s_b/T))``.

    >>> s, t = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    >>> KDLoss(T=1.0)(s, t)  # KL((0.119, 0.881) || (0.881, 0.119)) = (0.881 - 0.119) * log(0.881 / 0.119)
    tensor(1.5232)
    """

    fn = staticmethod(kd_loss)

    def __init__(self, T: float = 4.0) -> None:
        super().__init__(T)


class DistillationLoss(nn.Module):
    """Module form of :func:`distillation_loss` (``alpha`` weights the soft term):
    ``(1 - alpha) * CE(s, y) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))``.

    >>> s, t, y = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]]), torch.tensor([0])
    >>> DistillationLoss(T=1.0, alpha=0.5)(s, t, y)  # (0.1269 + 1.5232) / 2 = CE and KD terms averaged
    tensor(0.8251)
    """

    def __init__(self, T: float = 4.0, alpha: float = 0.9, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.T, self.alpha, self.label_smoothing = check_temperature(T), check_alpha(alpha), label_smoothing

    def forward(self, student_logits, teacher_logits, targets) -> torch.Tensor:
        return distillation_loss(student_logits, teacher_logits, targets, self.T, self.alpha, self.label_smoothing)


# ---------------------------------------------------------------------------------- argument checks


def _as_float(value: object, message: str) -> float:
    """``float(value)`` for a number, else ``TypeError(message)``. ``True`` and strings such as ``"4"`` are not
    numbers here, although ``float()`` would quietly accept them."""
    if not isinstance(value, (bool, str)):
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
    raise TypeError(message)


def check_temperature(T: float, name: str = "T") -> float:
    """Return ``T`` as a float if it is a finite number > 0, else raise ``ValueError`` (``TypeError`` for a
    non-number)."""
    value = _as_float(T, f"{name} must be a positive number, got {T!r} of type {type(T).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0 (e.g. {name}=4.0), got {name}={T!r}")
    return value


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """Return ``alpha`` as a float if it lies in [0, 1], else raise ``ValueError`` (``TypeError`` for a non-number)."""
    value = _as_float(alpha, f"{name} must be a number in [0, 1], got {alpha!r}")
    if not (0.0 <= value <= 1.0):  # also rejects NaN
        raise ValueError(
            f"{name} is the weight of the soft (distillation) term and must lie in [0, 1], got {name}={alpha!r}"
        )
    return value


def check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
    return value


def check_logits(logits: torch.Tensor, name: str) -> torch.Tensor:
    """Logits must be a floating tensor of shape (..., C) with C >= 1 and only finite values."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {logits.dtype}; call .float() first")
    if logits.dim() < 1 or logits.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (batch, classes), got shape {tuple(logits.shape)}")
    if logits.numel() and not bool(torch.isfinite(logits).all()):
        bad = int((~torch.isfinite(logits)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); check the model output or the input data")
    return logits


def check_not_empty(tensor: torch.Tensor, name: str) -> None:
    """A loss averages over samples: a tensor without any would give NaN (0 / 0) instead of an error."""
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(tensor.shape)}); a loss needs at least one sample")


def check_probs(probs: torch.Tensor, name: str, atol: float | None = None) -> None:
    """Probabilities must be finite, >= 0 and sum to 1 over the last dimension.

    The default tolerance on the sums is ``max(1e-3, eps)`` with ``eps`` the machine epsilon of the dtype: rounding
    each probability of an exact distribution to the dtype moves the sum by up to half an ``eps``, which for
    bfloat16 (``eps = 2^-7``) is more than 1e-3, so a bfloat16 softmax output must not be rejected.
    """
    check_logits(probs, name)
    if atol is None:
        atol = max(1e-3, torch.finfo(probs.dtype).eps)
    probs = probs.detach()  # value checks only: no autograd warnings for tensors that require grad
    if bool((probs < 0).any()):
        raise ValueError(f"{name} has negative entries (min {float(probs.min()):.3g}); pass probabilities, not logits")
    sums = probs.sum(-1, dtype=torch.float64)
    worst = float((sums - 1).abs().max()) if sums.numel() else 0.0
    if worst > atol:
        row_sum = float(sums.flatten()[(sums - 1).abs().argmax()])
        raise ValueError(
            f"{name} must sum to 1 over its last dimension, but a row sums to {row_sum:.4g} (off by {worst:.3g}); "
            "normalise it, or pass logits to the logits-based function"
        )


def check_same_classes(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} has shape {tuple(a.shape)} but {name_b} has shape {tuple(b.shape)}; they must match "
            "(same batch size and the same number of classes: teacher and student must predict the same classes)"
        )


def check_labels(targets: torch.Tensor, num_classes: int, batch: int, name: str = "targets") -> torch.Tensor:
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(targets).__name__}")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool or targets.dim() != 1:
        raise ValueError(
            f"{name} must be a 1-D integer tensor of class indices, got dtype {targets.dtype} and shape "
            f"{tuple(targets.shape)}; for probability targets use soft_cross_entropy"
        )
    if targets.shape[0] != batch:
        raise ValueError(f"{name} has {targets.shape[0]} labels but the logits have {batch} rows")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}), got values from {int(targets.min())} to {int(targets.max())}; "
            "check the label encoding or the model's number of classes"
        )
    return targets
