import math

import pytest
import torch
import torch.nn.functional as F

import sdkit


def logits(*shape, seed=0, scale=3.0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * scale


def manual_kl(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Per-row KL(q || p) by the definition, float64."""
    return (q * (q.log() - p.log())).sum(-1)


def test_soft_cross_entropy_is_kl_plus_entropy():
    s, t = logits(8, 10, seed=1), logits(8, 10, seed=2)
    for T in (1.0, 3.0):
        q, p = torch.softmax(t / T, -1), torch.softmax(s / T, -1)
        expected = (manual_kl(q, p) + sdkit.entropy(q)).mean()
        torch.testing.assert_close(sdkit.soft_cross_entropy(s, q, T).double(), expected, rtol=1e-5, atol=1e-6)


def test_kd_loss_against_manual_float64():
    s, t = logits(16, 10, seed=3), logits(16, 10, seed=4)
    for T in (0.5, 1.0, 4.0, 20.0):
        q, p = torch.softmax(t / T, -1), torch.softmax(s / T, -1)
        expected = T * T * manual_kl(q, p).mean()  # batchmean: mean over samples of the per-sample KL
        got = sdkit.kd_loss(s.float(), t.float(), T)
        torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-6)


def test_kd_loss_of_identical_logits_is_zero():
    z = logits(4, 5, dtype=torch.float32)
    assert float(sdkit.kd_loss(z, z, T=3.0)) == pytest.approx(0.0, abs=1e-6)


def test_kd_loss_is_batchmean_not_mean():
    s, t = logits(6, 100, seed=5, dtype=torch.float32), logits(6, 100, seed=6, dtype=torch.float32)
    with pytest.warns(UserWarning, match="batchmean"):  # PyTorch itself warns about this pitfall
        per_element_mean = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), reduction="mean", log_target=True)
    # 'mean' divides by B*C instead of B: exactly C = 100 times too small
    torch.testing.assert_close(sdkit.kd_loss(s, t, T=1.0), 100 * per_element_mean, rtol=1e-5, atol=0)


def grad_norm(loss_fn, s, t, T):
    s = s.clone().requires_grad_(True)
    loss_fn(s, t, T).backward()
    return float(s.grad.norm())


def test_t_squared_keeps_gradient_scale():
    s, t = logits(32, 10, seed=7, scale=1.0), logits(32, 10, seed=8, scale=1.0)
    with_t2 = [grad_norm(sdkit.kd_loss, s, t, T) for T in (5.0, 10.0, 20.0, 40.0)]
    without = [grad_norm(lambda a, b, T: sdkit.kd_loss(a, b, T) / T**2, s, t, T) for T in (5.0, 10.0, 20.0, 40.0)]
    # with T^2: roughly constant (within 10%) at large T
    assert max(with_t2) / min(with_t2) < 1.1
    # without: shrinks like 1/T^2, so doubling T divides the gradient by ~4
    for a, b in zip(without, without[1:], strict=False):
        assert a / b == pytest.approx(4.0, rel=0.1)


def test_distillation_loss_alpha_endpoints_and_mix():
    s, t = logits(8, 10, seed=9, dtype=torch.float32), logits(8, 10, seed=10, dtype=torch.float32)
    y = torch.arange(8) % 10
    ce = F.cross_entropy(s, y)
    kd = sdkit.kd_loss(s, t, 4.0)
    torch.testing.assert_close(sdkit.distillation_loss(s, t, y, T=4.0, alpha=0.0), ce)
    torch.testing.assert_close(sdkit.distillation_loss(s, t, y, T=4.0, alpha=1.0), kd)
    torch.testing.assert_close(sdkit.distillation_loss(s, t, y, T=4.0, alpha=0.3), 0.7 * ce + 0.3 * kd)


def test_module_wrappers_match_functions():
    s, t = logits(4, 6, seed=11, dtype=torch.float32), logits(4, 6, seed=12, dtype=torch.float32)
    y = torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(sdkit.KDLoss(2.0)(s, t), sdkit.kd_loss(s, t, 2.0))
    torch.testing.assert_close(sdkit.DistillationLoss(2.0, 0.5)(s, t, y), sdkit.distillation_loss(s, t, y, 2.0, 0.5))
    q = torch.softmax(t, -1)
    torch.testing.assert_close(sdkit.SoftCrossEntropy(2.0)(s, q), sdkit.soft_cross_entropy(s, q, 2.0))


def test_soft_cross_entropy_of_uniform_is_log_c():
    assert float(sdkit.soft_cross_entropy(torch.zeros(2, 4), torch.full((2, 4), 0.25))) == pytest.approx(math.log(4))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s, t, y: sdkit.kd_loss(s, t, T=0.0), "T must be a finite number > 0"),
        (lambda s, t, y: sdkit.kd_loss(s, t, T=float("nan")), "T must be a finite number > 0"),
        (lambda s, t, y: sdkit.distillation_loss(s, t, y, alpha=1.5), "alpha .* must lie in \\[0, 1\\]"),
        (lambda s, t, y: sdkit.distillation_loss(s, t, y, alpha=-0.1), "alpha"),
        (lambda s, t, y: sdkit.kd_loss(s, t[:, :3]), "teacher_logits has shape"),
        (lambda s, t, y: sdkit.distillation_loss(s, t, torch.tensor([0, 7])), "targets must lie in \\[0, 5\\)"),
        (lambda s, t, y: sdkit.distillation_loss(s, t, torch.tensor([0, -1])), "targets must lie in"),
        (lambda s, t, y: sdkit.kd_loss(torch.full_like(s, float("nan")), t), "student_logits contains"),
        (lambda s, t, y: sdkit.soft_cross_entropy(s, torch.full_like(s, 0.5)), "must sum to 1"),
        (lambda s, t, y: sdkit.distillation_loss(s, t, y.float()), "1-D integer tensor"),
        (lambda s, t, y: sdkit.kd_loss(s, t, T=float("inf")), "T must be a finite number > 0"),
        (lambda s, t, y: sdkit.kd_loss(s, t, T=-4.0), "T must be a finite number > 0 .*got T=-4.0"),
        (lambda s, t, y: sdkit.distillation_loss(s, t, y, alpha=float("nan")), "alpha .* must lie in \\[0, 1\\]"),
        (lambda s, t, y: sdkit.soft_cross_entropy(s, torch.full((2, 3), 1 / 3)), "target_probs has shape \\(2, 3\\)"),
        (lambda s, t, y: sdkit.distillation_loss(s, t[:, :4], y), "teacher_logits has shape \\(2, 4\\)"),
        (lambda s, t, y: sdkit.kd_loss(s, torch.full_like(t, float("inf"))), "teacher_logits contains 10 NaN or inf"),
        (lambda s, t, y: sdkit.soft_cross_entropy(s, torch.full_like(s, float("nan"))), "target_probs contains"),
        (lambda s, t, y: sdkit.soft_cross_entropy(s, -torch.eye(2, 5)), "target_probs has negative entries"),
        (lambda s, t, y: sdkit.kd_loss(s[:0], t[:0]), "student_logits is empty \\(shape \\(0, 5\\)\\)"),
        (lambda s, t, y: sdkit.distillation_loss(s[:0], t[:0], y[:0]), "student_logits is empty"),
        (lambda s, t, y: sdkit.soft_cross_entropy(s[:0], t[:0].softmax(-1)), "student_logits is empty"),
        (lambda s, t, y: sdkit.distillation_loss(s, t, y[:1]), "targets has 1 labels but the logits have 2 rows"),
        (
            lambda s, t, y: sdkit.distillation_loss(s, t, y, label_smoothing=1.0),
            "label_smoothing must lie in \\[0, 1\\)",
        ),
    ],
)
def test_bad_input_raises_clear_value_error(call, message):
    s, t, y = torch.zeros(2, 5), torch.zeros(2, 5), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=message):
        call(s, t, y)


@pytest.mark.parametrize("T", [0.05, 1.0, 4.0, 100.0])
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_the_training_loops_fused_distillation_loss_agrees_with_the_autograd_one(T, scale):
    """The loop's objective (one autograd node for the KD term, its gradient in closed form) against the public
    distillation_loss (every term through autograd): the same value and gradient to float rounding, also where
    the teacher is extreme (p > e q: the far branch), never negative, and exactly 0 for identical logits."""
    from sdkit.losses import _distillation_loss_unchecked, _kd_loss_unchecked

    g = torch.Generator().manual_seed(0)
    s = (scale * torch.randn(32, 10, generator=g)).requires_grad_()
    t, y = scale * torch.randn(32, 10, generator=g), torch.randint(0, 10, (32,), generator=g)
    fused = _distillation_loss_unchecked(s, t, y, T, 0.9)
    (fused_grad,) = torch.autograd.grad(fused, s)
    assert fused.grad_fn.next_functions[0][0].name() == "_FusedKLBackward"  # the fused path was taken
    reference = sdkit.distillation_loss(s, t, y, T, 0.9)
    (reference_grad,) = torch.autograd.grad(reference, s)
    torch.testing.assert_close(fused, reference, rtol=1e-6, atol=0.0)
    # against the float64 gradient: as close as the autograd one, up to rounding (p - q cancels at large T in both)
    s64 = s.detach().double().requires_grad_()
    (exact,) = torch.autograd.grad(sdkit.distillation_loss(s64, t.double(), y, T, 0.9), s64)
    errors = [float((grad.double() - exact).abs().max() / exact.abs().max()) for grad in (fused_grad, reference_grad)]
    assert errors[0] <= max(3 * errors[1], 1e-6), errors
    assert float(_kd_loss_unchecked(s, s.detach(), T)) == 0.0
    assert float(_kd_loss_unchecked(s, t, T)) >= 0.0
    # a teacher logit that needs a gradient (a partner network) goes through autograd, and gets its gradient
    t_grad = t.clone().requires_grad_()
    assert torch.autograd.grad(_kd_loss_unchecked(s, t_grad, T), t_grad)[0].abs().sum() > 0
