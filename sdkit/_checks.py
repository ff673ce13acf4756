"""Argument validation shared by the public API.

Every check raises ``ValueError`` (or ``TypeError`` for a wrong type) whose message names the argument, the
value it got and how to fix it, so that bad input never turns into a silent wrong answer or a deep stack trace.
"""

from __future__ import annotations

import math

import torch


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
