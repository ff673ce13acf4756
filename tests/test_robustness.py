import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sdkit
from sdkit.extras.robustness import fgsm_accuracy, fgsm_attack, gaussian_noise_accuracy


def two_class_linear(w: torch.Tensor) -> nn.Module:
    """logits = (w . x, 0): the input gradient of CE is (p0 - [y == 0]) * w, so its sign is known analytically."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(w.numel(), 2, bias=False)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([w, torch.zeros_like(w)]))
    return model


def test_fgsm_sign_on_two_class_linear_model_is_known_analytically():
    w = torch.tensor([0.5, -1.0, 2.0, -0.25, 1.5, -3.0], dtype=torch.float64)
    model = two_class_linear(w)
    x = torch.tensor([[0.25, 0.5, -0.5, 1.0, 0.0, 0.75]] * 2, dtype=torch.float64)
    y = torch.tensor([0, 1])
    eps = 0.125  # dyadic values: the arithmetic below is exact in float64
    x_adv = fgsm_attack(model, x, y, eps)
    # y = 0: gradient (p0 - 1) w with p0 < 1 -> moves along -sign(w); y = 1: gradient p0 w -> moves along +sign(w)
    assert torch.equal(x_adv[0], x[0] - eps * w.sign())
    assert torch.equal(x_adv[1], x[1] + eps * w.sign())
    assert torch.equal((x_adv - x).abs().amax(dim=1), torch.full((2,), eps, dtype=torch.float64))


def test_fgsm_matches_an_independent_gradient_on_a_multiclass_linear_model():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(5, 12, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    model = nn.Linear(12, 5).double()
    with torch.no_grad():
        model.weight.copy_(W)
        model.bias.copy_(b)
    x = torch.randn(32, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (32,), generator=g)
    # closed form: d CE / d x = W^T (softmax(Wx + b) - onehot(y))
    grad = (F.softmax(x @ W.T + b, -1) - F.one_hot(y, 5).double()) @ W
    for eps in (0.01, 0.3):
        delta = fgsm_attack(model, x, y, eps) - x
        assert torch.allclose(delta, eps * grad.sign(), atol=1e-12)
        assert torch.allclose(delta.abs().amax(dim=1), torch.full((32,), eps, dtype=torch.float64), atol=1e-12)


def test_fgsm_linf_norm_is_eps_and_pixel_units_divide_by_std(digits):
    model = sdkit.build_model("cnn", digits.input_shape, 10, seed=0)
    x, y = digits.test.x[:20], digits.test.y[:20]
    for eps in (0.05, 0.2):
        delta = fgsm_attack(model, x, y, eps) - x
        assert torch.allclose(delta.abs().flatten(1).amax(1), torch.full((20,), eps), atol=1e-6)
        pixel = (fgsm_attack(model, x, y, eps, input_std=digits.std) - x) * digits.std[0]
        assert torch.allclose(pixel.abs().flatten(1).amax(1), torch.full((20,), eps), atol=1e-6)
        assert torch.equal(pixel.sign(), delta.sign())


def test_fgsm_accumulates_no_parameter_gradient_and_restores_train_mode(digits):
    model = sdkit.build_model("cnn", digits.input_shape, 10, seed=0).train()
    x, y = digits.test.x[:16], digits.test.y[:16]
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    assert all(p.grad is None for p in model.parameters())
    x_adv = fgsm_attack(model, x, y, 0.1)
    assert all(p.grad is None for p in model.parameters())
    assert model.training  # mode restored
    assert all(torch.equal(stats[k], v) for k, v in model.state_dict().items())  # BatchNorm stats untouched
    # the attack ran in eval mode: identical to attacking the model put in eval mode explicitly
    assert torch.equal(x_adv, fgsm_attack(model.eval(), x, y, 0.1))
    assert not x_adv.requires_grad
    # existing gradients are left exactly as they were
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    fgsm_accuracy(model, digits.test, [0.0, 0.1])
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())


@pytest.fixture(scope="module")
def trained(digits):
    model = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
    sdkit.train(model, digits, epochs=3, progress=False, device="cpu")
    return model


def test_fgsm_accuracy_at_zero_equals_evaluate_and_drops_with_eps(digits, trained):
    clean = sdkit.evaluate(trained, digits.test)["accuracy"]
    accs = fgsm_accuracy(trained, digits.test, [0.0, 0.5, 2.0], batch_size=100)
    assert accs[0] == pytest.approx(clean, abs=1e-6)  # evaluate averages in float32; 1 image = 0.003
    assert accs[2] < accs[1] < accs[0]


def test_gaussian_noise_sigma_zero_is_identity_and_noise_is_reproducible(digits, trained):
    clean = sdkit.evaluate(trained, digits.test)["accuracy"]
    accs = gaussian_noise_accuracy(trained, digits.test, [0.0, 1.0, 3.0], seed=5, batch_size=64)
    assert accs[0] == pytest.approx(clean, abs=1e-6)  # evaluate averages in float32; 1 image = 0.003
    assert accs == gaussian_noise_accuracy(trained, digits.test, [0.0, 1.0, 3.0], seed=5, batch_size=64)
    assert accs[2] < accs[0]


def test_gaussian_noise_pixel_units_equal_sigma_over_std(digits, trained):
    std = digits.std[0]
    pixel = gaussian_noise_accuracy(trained, digits.test, [0.1, 0.3], seed=1, input_std=digits.std)
    normalised = gaussian_noise_accuracy(trained, digits.test, [0.1 / std, 0.3 / std], seed=1)
    assert pixel == pytest.approx(normalised, abs=1e-12)


def test_gaussian_noise_matches_a_direct_computation(digits, trained):
    # the same draw as the function: one generator, batch by batch, in order
    g = torch.Generator().manual_seed(3)
    x, y = digits.test.x, digits.test.y
    z = torch.cat([torch.randn(x[i : i + 100].shape, generator=g) for i in range(0, len(x), 100)])
    with torch.no_grad():
        expected = float((trained.eval()(x + 0.7 * z).argmax(-1) == y).double().mean())
    got = gaussian_noise_accuracy(trained, digits.test, [0.7], seed=3, batch_size=100)[0]
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), math.inf])
def test_bad_magnitudes_are_rejected(digits, trained, bad):
    x, y = digits.test.x[:4], digits.test.y[:4]
    with pytest.raises(ValueError, match="eps"):
        fgsm_attack(trained, x, y, bad)
    with pytest.raises(ValueError, match="epsilons"):
        fgsm_accuracy(trained, digits.test, [0.0, bad])
    with pytest.raises(ValueError, match="sigmas"):
        gaussian_noise_accuracy(trained, digits.test, [bad])


def test_other_bad_inputs_are_rejected(digits, trained):
    x, y = digits.test.x[:4], digits.test.y[:4]
    with pytest.raises(ValueError, match="sigmas"):
        gaussian_noise_accuracy(trained, digits.test, [])
    with pytest.raises(ValueError, match="sigmas"):
        gaussian_noise_accuracy(trained, digits.test, 0.1)
    with pytest.raises(ValueError, match="input_std"):
        gaussian_noise_accuracy(trained, digits.test, [0.1], input_std=0.0)
    with pytest.raises(ValueError, match="input_std"):
        fgsm_attack(trained, x, y, 0.1, input_std=[1.0, 2.0])
    with pytest.raises(ValueError, match="floating-point"):
        fgsm_attack(trained, x.long(), y, 0.1)
    with pytest.raises(ValueError, match="y"):
        fgsm_attack(trained, x, torch.tensor([0, 1, 2, 10]), 0.1)
    with pytest.raises(ValueError, match="y"):
        fgsm_attack(trained, x, y[:3], 0.1)
    with pytest.raises(TypeError, match="split"):
        fgsm_accuracy(trained, x, [0.1])
    with pytest.raises(ValueError, match="batch_size"):
        fgsm_accuracy(trained, digits.test, [0.1], batch_size=0)
