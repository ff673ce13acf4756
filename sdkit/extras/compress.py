"""Model compression after training: global magnitude pruning, int8 dynamic quantization, and size measures.

Global L1 (magnitude) pruning with fraction ``a`` pools the weights ``w`` of every ``nn.Linear`` and ``nn.Conv2d``
layer (biases and BatchNorm parameters are left alone), and sets to zero the ``k = round(a * N)`` entries of
smallest ``|w|`` among all ``N`` of them: a threshold shared by all layers, so layers whose weights are small lose
more. Pruning is made permanent (the mask is multiplied in and removed), so the result is an ordinary module.

Dynamic int8 quantization (``torch.ao.quantization.quantize_dynamic``) stores each ``nn.Linear`` weight matrix as
8-bit integers ``q = clamp(round(w / s) + z, -128, 127)`` with one per-tensor scale ``s`` and zero point ``z``
(``w ~ s * (q - z)``); PyTorch's default weight observer is symmetric, ``z = 0`` and ``s = max|w| / 127.5``, so
the rounding error of each weight is at most ``s / 2``. The activations are quantized on the fly, batch by batch.
It runs on the CPU only, on the backend engine ``torch.backends.quantized.engine`` (e.g. ``x86``, built on
FBGEMM).
"""

from __future__ import annotations

import copy
import io
import math
import warnings

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as QuantizedLinear
from torch.nn.utils import prune

__all__ = [
    "PRUNABLE",
    "prunable_weights",
    "prune_global",
    "quantize_dynamic_int8",
    "state_dict_bytes",
    "sparsity",
    "count_nonzero",
]

#: The layer types whose ``weight`` :func:`prune_global` prunes (biases and BatchNorm are left alone).
PRUNABLE = (nn.Linear, nn.Conv2d)


def _check_model(model: nn.Module, name: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, "weight")`` for every ``nn.Linear`` and ``nn.Conv2d`` of ``model``: what pruning acts on.

    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 10))
    >>> [(type(module).__name__, name) for module, name in prunable_weights(model)]  # BatchNorm is left alone
    [('Conv2d', 'weight'), ('Linear', 'weight')]
    """
    _check_model(model)
    return [(m, "weight") for m in model.modules() if isinstance(m, PRUNABLE)]


def prune_global(model: nn.Module, amount: float) -> nn.Module:
    """A copy of ``model`` with the fraction ``amount`` of its Linear/Conv2d weights (by smallest ``|w|`` over all
    those layers together) set to zero permanently. ``model`` itself is not changed.

    ``amount`` must be a number in ``[0, 1]``; exactly ``round(amount * N)`` of the ``N`` prunable weights are
    zeroed (weights that were already zero count among them).

    >>> layer = nn.Linear(4, 2)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[0.1, -2.0, 0.3, 4.0], [-0.5, 0.2, 3.0, -0.05]]))
    >>> pruned = prune_global(layer, 0.5)  # the 4 smallest |w| of 8 become 0
    >>> (pruned.weight != 0).long()  # kept: -2.0, 4.0, -0.5, 3.0
    tensor([[0, 1, 0, 1],
            [1, 0, 1, 0]])
    >>> sparsity(pruned), sparsity(layer), count_nonzero(pruned, weights_only=True)
    (0.5, 0.0, 4)
    """
    _check_model(model)
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise ValueError(f"amount must be a fraction in [0, 1] (a float, e.g. 0.5), got amount={amount!r}")
    if not (math.isfinite(amount) and 0.0 <= amount <= 1.0):
        raise ValueError(f"amount must be a fraction in [0, 1] of the weights to zero, got amount={amount!r}")
    pruned = copy.deepcopy(model)
    params = prunable_weights(pruned)
    if not params:
        raise ValueError(f"model has no nn.Linear or nn.Conv2d layer to prune (a {type(model).__name__})")
    # a float amount is a fraction for torch (an int would be an absolute count): pass float(amount)
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(amount))
    for module, name in params:
        prune.remove(module, name)  # weight = weight_orig * mask, then drop the mask and the hook
    return pruned


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """A CPU copy of ``model`` with every ``nn.Linear`` replaced by a dynamically quantized int8 linear layer
    (weights int8 with a per-tensor scale, activations quantized per batch at run time). ``model`` is unchanged.

    Convolutions are left in float32 (dynamic quantization covers Linear and recurrent layers only). The torch
    quantization API used here is deprecated in recent torch releases in favour of ``torchao``; its deprecation
    warnings are silenced here, the result is the same.

    >>> model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    >>> quantized = quantize_dynamic_int8(model)
    >>> quantized[0].weight().dtype, model[0].weight.dtype  # the copy is int8; the model keeps its float32 weights
    (torch.qint8, torch.float32)
    >>> quantized(torch.zeros(4, 256)).shape
    torch.Size([4, 10])
    >>> state_dict_bytes(quantized) < state_dict_bytes(model) / 3  # int8 weights: about a quarter of float32
    True
    """
    _check_model(model)
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        raise ValueError(f"model has no nn.Linear layer to quantize (a {type(model).__name__})")
    float_copy = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*deprecated.*")
        return torch.ao.quantization.quantize_dynamic(float_copy, {nn.Linear}, dtype=torch.qint8, inplace=True)


def _sparse_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in model.state_dict().items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dim() >= 2:
            csr = value.reshape(value.shape[0], -1).to_sparse_csr()
            # rebuild from compact copies: to_sparse_csr may over-allocate the index storage, and torch.save
            # writes whole storages
            parts = (csr.crow_indices().clone(), csr.col_indices().clone(), csr.values().clone())
            value = torch.sparse_csr_tensor(*parts, size=csr.shape, check_invariants=False)
        out[key] = value
    return out


def state_dict_bytes(model: nn.Module, *, sparse: bool = False) -> int:
    """Size in bytes of ``torch.save(model.state_dict())``: what the model costs on disk.

    A pruned model stored densely is exactly as large as the unpruned one (its zeros are stored too). With
    ``sparse=True`` every float tensor of two or more dimensions is saved in compressed sparse row (CSR) form
    instead: 4 bytes per nonzero value plus an 8-byte column index per nonzero and one 8-byte row pointer per row,
    which beats dense float32 storage only above about 2/3 sparsity. Packed int8 weights are saved as they are.

    >>> model = nn.Linear(256, 256)
    >>> state_dict_bytes(model) > 4 * (256 * 256 + 256)  # the float32 values plus the file format's own bytes
    True
    >>> pruned = prune_global(model, 0.9)
    >>> state_dict_bytes(pruned) == state_dict_bytes(model)  # stored densely, the zeros cost as much as before
    True
    >>> state_dict_bytes(pruned, sparse=True) < state_dict_bytes(model) / 2  # CSR: 12 bytes per nonzero
    True
    """
    _check_model(model)
    if not isinstance(sparse, bool):
        raise ValueError(f"sparse must be True or False, got sparse={sparse!r}")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*[Ss]parse CSR tensor support is in beta.*")
        torch.save(_sparse_state_dict(model) if sparse else model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def _weights(model: nn.Module) -> list[torch.Tensor]:
    """Weight matrices of the Linear/Conv2d layers, dequantized for int8 dynamic linear layers."""
    out = []
    for m in model.modules():
        if isinstance(m, QuantizedLinear):
            out.append(m.weight().dequantize())
        elif isinstance(m, PRUNABLE):
            out.append(m.weight.detach())
    return out


def _parameters(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter tensor, with int8 dynamic linear layers' weights and biases in float."""
    out = []
    for m in model.modules():
        if isinstance(m, QuantizedLinear):
            out.append(m.weight().dequantize())
            if m.bias() is not None:
                out.append(m.bias().detach())
        else:
            out.extend(p.detach() for p in m.parameters(recurse=False))
    return out


def count_nonzero(model: nn.Module, *, weights_only: bool = False) -> int:
    """Number of nonzero parameter entries: of all parameters, or (``weights_only``) of the Linear/Conv2d weight
    matrices only. Works on int8-quantized models too (a weight that rounds to the integer 0 counts as zero).

    >>> layer = nn.Linear(3, 2)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 3.0]]))
    ...     _ = layer.bias.fill_(0.5)
    >>> count_nonzero(layer), count_nonzero(layer, weights_only=True)  # 3 weights + 2 biases; 3 weights
    (5, 3)
    """
    _check_model(model)
    tensors = _weights(model) if weights_only else _parameters(model)
    return int(sum(int(torch.count_nonzero(t)) for t in tensors))


def sparsity(model: nn.Module) -> float:
    """Fraction of the entries of the Linear/Conv2d weight matrices (dequantized, for an int8 model) that are
    exactly zero. Biases and normalisation parameters are not counted (pruning leaves them alone).

    >>> layer = nn.Linear(3, 2)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 3.0]]))
    >>> sparsity(layer)  # 3 of the 6 weights are zero
    0.5
    """
    _check_model(model)
    weights = _weights(model)
    if not weights:
        raise ValueError(f"model has no nn.Linear or nn.Conv2d layer (a {type(model).__name__})")
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / total
