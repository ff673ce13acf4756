"""Temperature-scaled soft labels.

A classifier's logits ``z`` become a distribution with a temperature ``T``:

    q_i(T) = exp(z_i / T) / sum_j exp(z_j / T)

``T = 1`` is the ordinary softmax, ``T > 1`` flattens the distribution (more of the "dark knowledge" in the small
probabilities becomes visible), ``T < 1`` sharpens it towards the one-hot argmax.

Precision. float16 and bfloat16 inputs (autocast outputs) are computed in float32: ``z / T`` overflows float16
(largest value 65504) already for ``z = 1e4, T = 0.05``, and would turn the softmax into NaN. ``soften`` and
``soften_probs`` round the result back to the input's dtype; ``entropy`` returns float32, like the losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_logits, check_probs, check_temperature

__all__ = ["soften", "soften_probs", "entropy"]


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
