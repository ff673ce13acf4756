import io
import math

import pytest
import torch
from torch import nn

import sdkit
from sdkit.extras.compress import (
    QuantizedLinear,
    count_nonzero,
    prune_global,
    quantize_dynamic_int8,
    sparsity,
    state_dict_bytes,
)


def mlp(seed: int = 0) -> nn.Module:
    return sdkit.build_model("mlp", (1, 8, 8), 10, seed=seed)


N_WEIGHTS = 64 * 256 + 256 * 256 + 256 * 10  # the mlp's three weight matrices


def weight_vector(model: nn.Module) -> torch.Tensor:
    return torch.cat([m.weight.detach().flatten() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))])


def tiny() -> nn.Module:
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -4.0], [3.0, 0.5]]))
        model[0].bias.copy_(torch.tensor([0.01, -0.02]))
        model[2].weight.copy_(torch.tensor([[-2.0, 0.1]]))
        model[2].bias.zero_()
    return model


def test_prune_hand_example_is_global_by_magnitude():
    # six weights; half of them (3) with the smallest |w| over BOTH layers go: 0.1, 0.5 and 1.0
    pruned = prune_global(tiny(), 0.5)
    assert torch.equal(pruned[0].weight, torch.tensor([[0.0, -4.0], [3.0, 0.0]]))
    assert torch.equal(pruned[2].weight, torch.tensor([[-2.0, 0.0]]))
    assert torch.equal(pruned[0].bias, torch.tensor([0.01, -0.02]))  # biases are never pruned
    assert sparsity(pruned) == 0.5


@pytest.mark.parametrize("amount", [0.0, 0.25, 0.5, 0.9, 0.98, 1.0])
def test_prune_exact_fraction_and_smallest_magnitudes(amount):
    model = mlp()
    before = weight_vector(model)
    pruned = prune_global(model, amount)
    after = weight_vector(pruned)
    zeros = int((after == 0).sum())
    assert zeros == round(amount * N_WEIGHTS)
    assert math.isclose(sparsity(pruned), round(amount * N_WEIGHTS) / N_WEIGHTS)
    kept = after != 0
    assert torch.equal(after[kept], before[kept])  # surviving weights are unchanged
    if 0 < zeros < N_WEIGHTS:
        assert before[~kept].abs().max() <= before[kept].abs().min()  # the removed ones are the smallest


def test_prune_leaves_original_untouched_and_is_permanent():
    model = mlp()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = prune_global(model, 0.7)
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
    assert sparsity(model) == 0.0
    for m in list(model.modules()) + list(pruned.modules()):
        assert not m._forward_pre_hooks
    assert set(pruned.state_dict()) == set(reference)  # no weight_orig / weight_mask left behind
    assert all(isinstance(m.weight, nn.Parameter) for m in pruned.modules() if isinstance(m, nn.Linear))
    assert pruned is not model


def test_prune_cnn_covers_convolutions_but_not_batchnorm():
    model = sdkit.build_model("cnn", (1, 8, 8), 10, width=0.25, seed=0)
    pruned = prune_global(model, 0.6)
    n = weight_vector(model).numel()
    assert int((weight_vector(pruned) == 0).sum()) == round(0.6 * n)
    convs = [m for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    assert all(int((c.weight == 0).sum()) > 0 for c in convs)
    bns = [(a, b) for a, b in zip(model.modules(), pruned.modules(), strict=True) if isinstance(a, nn.BatchNorm2d)]
    assert all(torch.equal(a.weight, b.weight) for a, b in bns)


def test_count_nonzero_weights_and_all_parameters():
    pruned = prune_global(mlp(), 0.5)
    n_bias = 256 + 256 + 10
    kept = N_WEIGHTS - round(0.5 * N_WEIGHTS)
    assert count_nonzero(pruned, weights_only=True) == kept
    n_nonzero_bias = sum(int(torch.count_nonzero(m.bias)) for m in pruned.modules() if isinstance(m, nn.Linear))
    assert n_nonzero_bias == n_bias  # random biases are never exactly zero
    assert count_nonzero(pruned) == kept + n_bias
    assert count_nonzero(mlp()) == sdkit.count_parameters(mlp())


def test_quantized_outputs_close_to_float_outputs():
    model = mlp().eval()
    x = torch.randn(256, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    q = quantize_dynamic_int8(model)
    with torch.no_grad():
        ref, out = model(x), q(x)
    err = float((out - ref).abs().max())
    assert 0 < err < 0.03 * float(ref.abs().max())  # really quantized, yet close
    assert float((out.argmax(1) == ref.argmax(1)).float().mean()) > 0.9
    layers = [m for m in q.modules() if isinstance(m, QuantizedLinear)]
    assert len(layers) == 3
    assert all(
        isinstance(m, nn.Linear) and not isinstance(m, QuantizedLinear) for m in model.net if hasattr(m, "weight")
    )


def test_quantized_weights_use_symmetric_per_tensor_scale():
    model = mlp()
    q = quantize_dynamic_int8(model)
    for float_layer, q_layer in zip(
        [m for m in model.modules() if isinstance(m, nn.Linear)],
        [m for m in q.modules() if isinstance(m, QuantizedLinear)],
        strict=True,
    ):
        w = float_layer.weight.detach()
        qw = q_layer.weight()
        scale = float(w.abs().max()) / 127.5  # symmetric int8: max |w| maps to the edge of [-128, 127]
        assert math.isclose(qw.q_scale(), scale, rel_tol=1e-5)
        assert qw.q_zero_point() == 0
        assert float((qw.dequantize() - w).abs().max()) <= scale / 2 + 1e-7


def test_quantize_keeps_pruned_zeros():
    pruned = prune_global(mlp(), 0.8)
    q = quantize_dynamic_int8(pruned)
    assert sparsity(q) >= sparsity(pruned)
    assert count_nonzero(q, weights_only=True) <= count_nonzero(pruned, weights_only=True)


def test_state_dict_bytes_matches_torch_save_and_shrinks_with_int8():
    model = mlp()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    dense = state_dict_bytes(model)
    assert dense == len(buffer.getvalue())
    assert 4 * sdkit.count_parameters(model) < dense < 4 * sdkit.count_parameters(model) + 4000
    ratio = state_dict_bytes(quantize_dynamic_int8(model)) / dense
    assert 0.24 < ratio < 0.30  # 1 byte instead of 4 per weight, plus float biases and scales


def test_sparse_storage_pays_off_only_when_very_sparse():
    layer = nn.Linear(500, 400)
    dense = state_dict_bytes(layer)
    assert state_dict_bytes(prune_global(layer, 0.0)) == dense  # storing zeros densely saves nothing
    assert state_dict_bytes(prune_global(layer, 0.9)) == dense
    sparse90 = state_dict_bytes(prune_global(layer, 0.9), sparse=True)
    nnz = 500 * 400 - round(0.9 * 500 * 400)
    assert 12 * nnz + 8 * 401 < sparse90 < 12 * nnz + 8 * 401 + 4 * 400 + 4000  # values, column indices, rows
    assert state_dict_bytes(layer, sparse=True) > 2.9 * dense  # a dense matrix in CSR costs three times more


@pytest.mark.parametrize("amount", [1.5, -0.1, float("nan"), "0.5", True, None])
def test_prune_rejects_bad_amount(amount):
    with pytest.raises(ValueError, match=r"amount=") as err:
        prune_global(mlp(), amount)
    assert repr(amount) in str(err.value)


def test_bad_models_and_flags():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        prune_global("mlp", 0.5)
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d"):
        prune_global(nn.ReLU(), 0.5)
    with pytest.raises(ValueError, match="no nn.Linear layer to quantize"):
        quantize_dynamic_int8(nn.Sequential(nn.Conv2d(1, 2, 3)))
    with pytest.raises(ValueError, match="sparse='yes'"):
        state_dict_bytes(mlp(), sparse="yes")
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d"):
        sparsity(nn.Sequential(nn.ReLU()))
