"""Accuracy under Gaussian input noise and under the fast gradient sign method (FGSM).

Gaussian noise: every input value gets independent noise, ``x' = x + sigma * z`` with ``z ~ N(0, 1)``.

FGSM (Goodfellow et al. 2015, "Explaining and Harnessing Adversarial Examples") moves every input value by
``eps`` in the direction that increases the loss to first order:

    x' = x + eps * sign(grad_x CE(f(x), y))

so ``||x' - x||_inf = eps`` (a value whose gradient is exactly 0 does not move). It is a one-step, untargeted,
white-box attack: a lower bound on how much an attacker can hurt the model, not a certificate of robustness.

Units: ``sigma`` and ``eps`` are in the units of ``x`` unless ``input_std`` is given. The book's datasets are
normalised, ``x = (pixel - mean) / std`` per channel, so passing ``input_std=data.std`` makes ``sigma`` and ``eps``
*pixel* units (images in [0, 1]): the step in channel ``c`` of the normalised input is ``eps / std_c``. No
clipping to the valid pixel range is applied (the perturbed image may leave [0, 1] by up to ``eps``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Split
from ..losses import check_labels, check_positive_int
from ..models import pick_device

__all__ = ["gaussian_noise_accuracy", "fgsm_attack", "fgsm_accuracy"]


def _check_magnitude(value: float, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number >= 0, got {value!r} of type {type(value).__name__}") from None
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")
    return out


def _check_magnitudes(values: Sequence[float], name: str) -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of numbers >= 0, got {name}={values!r}")
    return [_check_magnitude(v, f"{name}[{i}]") for i, v in enumerate(values)]


def _check_split(split: Split) -> Split:
    if not isinstance(split, Split):
        raise TypeError(f"split must be an sdkit Split (e.g. data.test), got {type(split).__name__}")
    if len(split) == 0:
        raise ValueError("split is empty; pass a split with at least one sample")
    return split


def _scale(input_std: float | Sequence[float] | None, x: torch.Tensor) -> torch.Tensor:
    """Per-channel factor turning a pixel-unit magnitude into input units: ``1 / std_c`` (shape (1, C, 1, 1))."""
    if input_std is None:
        return torch.ones((), dtype=x.dtype, device=x.device)
    std = torch.as_tensor(input_std, dtype=torch.float64).flatten()
    channels = x.shape[1] if x.dim() > 1 else 1
    if std.numel() not in (1, channels) or not bool(torch.isfinite(std).all()) or bool((std <= 0).any()):
        raise ValueError(
            f"input_std must be one positive number or one per channel ({channels}), got input_std={input_std!r}"
        )
    shape = (1, -1) + (1,) * (x.dim() - 2) if std.numel() > 1 else ()
    return (1.0 / std).to(dtype=x.dtype, device=x.device).reshape(shape)


@torch.no_grad()
def gaussian_noise_accuracy(
    model: nn.Module,
    split: Split,
    sigmas: Sequence[float],
    seed: int = 0,
    *,
    input_std: float | Sequence[float] | None = None,
    batch_size: int = 1024,
    device: str | torch.device = "auto",
) -> list[float]:
    """Accuracy of ``model`` (in eval mode) on ``split.x + sigma * z`` for each ``sigma`` in ``sigmas``.

    The same standard-normal draw ``z`` (from ``seed``) is used for every ``sigma`` and every model, so curves
    of different models, and of one model at different ``sigma``, differ by the noise level only (common random
    numbers). ``sigma = 0`` gives the clean accuracy exactly. With ``input_std`` the sigmas are in pixel units.
    Returns one accuracy per sigma, in the order given.

    >>> import sdkit
    >>> data = sdkit.load_dataset("digits")
    >>> model = sdkit.build_model("mlp", data.input_shape, data.num_classes, seed=0)
    >>> _ = sdkit.train(model, data, epochs=2, progress=False, device="cpu")
    >>> clean, noisy, noisier = gaussian_noise_accuracy(model, data.test, [0.0, 0.5, 1.0], input_std=data.std)
    >>> round(clean, 4) == round(sdkit.evaluate(model, data.test)["accuracy"], 4), clean > noisy > noisier
    (True, True)
    """
    sigmas = _check_magnitudes(sigmas, "sigmas")
    _check_split(split)
    check_positive_int(batch_size, "batch_size")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got seed={seed!r}")
    device = pick_device(device, model=model)
    generator = torch.Generator().manual_seed(seed)
    correct = torch.zeros(len(sigmas), dtype=torch.long)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(split), batch_size):
            x = split.x[start : start + batch_size]
            y = split.y[start : start + batch_size].to(device)
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(device) * _scale(input_std, x).to(device)
            x = x.to(device)
            for i, sigma in enumerate(sigmas):
                logits = model(x + sigma * z if sigma > 0 else x)
                correct[i] += int((logits.argmax(-1) == y).sum())
    finally:
        model.train(was_training)
    return (correct.double() / len(split)).tolist()


def _check_inputs(x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        kind = f"{type(x).__name__} {getattr(x, 'dtype', '')}"
        raise ValueError(f"x must be a floating-point tensor of inputs, got {kind}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (batch, ...) with batch >= 1, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite values")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor of class indices, got {type(y).__name__}")


def _loss_gradient_sign(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``sign(grad_x CE(model(x), y))`` with the model in eval mode, touching no parameter's ``.grad``."""
    was_training = model.training
    model.eval()
    try:
        x_in = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            logits = model(x_in)
            check_labels(y.to(logits.device), logits.shape[-1], logits.shape[0], "y")
            # sum, not mean: the sign is the same, and tiny per-sample gradients do not underflow to 0
            loss = F.cross_entropy(logits.float(), y.to(logits.device), reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_in)
    finally:
        model.train(was_training)
    return grad.sign().to(x.device)


def fgsm_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    input_std: float | Sequence[float] | None = None,
) -> torch.Tensor:
    """FGSM adversarial examples ``x + eps * sign(grad_x CE(model(x), y))`` (in units of ``x``, or pixel units
    with ``input_std``), computed with ``model`` in eval mode.

    Only the gradient with respect to the input is computed (``torch.autograd.grad``): the parameters' ``.grad``
    are left exactly as they were, and the model's train/eval mode is restored afterwards. Returns a new tensor
    on ``x``'s device with no autograd history.

    >>> from torch import nn
    >>> model = nn.Linear(2, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.eye(2))  # the logits are the inputs themselves
    >>> x_adv = fgsm_attack(model, torch.tensor([[1.0, 0.0]]), torch.tensor([0]), eps=0.25)
    >>> x_adv  # the true class's logit goes down by eps, the other one up
    tensor([[0.7500, 0.2500]])
    """
    eps = _check_magnitude(eps, "eps")
    _check_inputs(x, y)
    if eps == 0:
        return x.detach().clone()
    return (x.detach() + eps * _scale(input_std, x) * _loss_gradient_sign(model, x, y)).detach()


def fgsm_accuracy(
    model: nn.Module,
    split: Split,
    epsilons: Sequence[float],
    *,
    input_std: float | Sequence[float] | None = None,
    batch_size: int = 512,
    device: str | torch.device = "auto",
) -> list[float]:
    """Accuracy of ``model`` on FGSM examples of ``split`` for each ``eps`` in ``epsilons`` (one per eps).

    Each adversarial batch is made against ``model`` itself (white-box). ``eps = 0`` gives the clean accuracy,
    the same number as ``sdkit.evaluate(model, split)["accuracy"]``.

    >>> from torch import nn
    >>> from sdkit import Split
    >>> model = nn.Linear(2, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.eye(2))  # the logits are the inputs themselves
    >>> split = Split(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.4]]), torch.tensor([0, 1, 0]))
    >>> fgsm_accuracy(model, split, [0.0, 0.25])  # eps = 0.25 turns (0.6, 0.4) into (0.35, 0.65): wrong
    [1.0, 0.6666666666666666]
    """
    epsilons = _check_magnitudes(epsilons, "epsilons")
    _check_split(split)
    check_positive_int(batch_size, "batch_size")
    device = pick_device(device, model=model)
    correct = [0] * len(epsilons)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(split), batch_size):
            x = split.x[start : start + batch_size].to(device)
            y = split.y[start : start + batch_size].to(device)
            _check_inputs(x, y)
            step = _scale(input_std, x) * _loss_gradient_sign(model, x, y)  # one gradient serves every eps
            with torch.no_grad():
                for i, eps in enumerate(epsilons):
                    x_adv = x + eps * step if eps > 0 else x
                    correct[i] += int((model(x_adv).argmax(-1) == y).sum())
    finally:
        model.train(was_training)
    return [c / len(split) for c in correct]
