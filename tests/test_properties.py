"""Property-based tests (hypothesis) of sdkit's numerics: temperatures, entropy and the distillation losses.

Inputs span what a network under mixed precision can hand the losses: logits with entries in [-1e4, 1e4],
temperatures from 0.05 to 100, in float32, float16 and bfloat16. sdkit computes half-precision inputs in float32
(1e4 / 0.05 = 2e5 would overflow float16, whose largest value is 65504).

Every value is checked against an independent float64 computation on the *same* (already rounded) inputs. The
tolerances are derived, not tuned, from the float32 unit roundoff ``u = EPS32 / 2`` (see :func:`log_space_error`),
so a test fails only when sdkit is off by more than float32 arithmetic can explain.

The examples are derandomized (the same ones on every run, so CI is reproducible). To search more widely, run
``SDKIT_PROPERTY_EXAMPLES=5000 pytest tests/test_properties.py``: that many random examples per test.
"""

import math
import os

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, note, settings
from hypothesis import strategies as st

import sdkit

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
EPS32 = torch.finfo(torch.float32).eps  # 2^-23 = twice float32's unit roundoff
MAX_LOGIT, T_MIN, T_MAX = 1e4, 0.05, 100.0

_EXAMPLES = os.environ.get("SDKIT_PROPERTY_EXAMPLES")
SETTINGS = settings(
    max_examples=int(_EXAMPLES or 200),
    deadline=None,
    derandomize=_EXAMPLES is None,
    database=None,
)

temperatures = st.floats(T_MIN, T_MAX)


@st.composite
def tensors(draw, n=1, max_abs=MAX_LOGIT, min_classes=1, dtype=None):
    """``n`` logit tensors of one shape (batch 1-3, 1-10 classes) and one dtype, entries in [-max_abs, max_abs]."""
    dtype = dtype or draw(st.sampled_from(DTYPES))
    batch, classes = draw(st.integers(1, 3)), draw(st.integers(min_classes, 10))
    entries = st.floats(-max_abs, max_abs, allow_nan=False, allow_infinity=False)
    out = []
    for _ in range(n):
        values = draw(st.lists(entries, min_size=batch * classes, max_size=batch * classes))
        out.append(torch.tensor(values, dtype=torch.float64).reshape(batch, classes).to(dtype))
    return out


@st.composite
def pairs(draw):
    """Student and teacher logits of one shape and dtype: independent, or the teacher a shifted, slightly perturbed
    copy of the student (KL near 0, where rounding errors can outweigh the true value)."""
    s, t = draw(tensors(n=2))
    if draw(st.booleans()):
        shift = draw(st.floats(-MAX_LOGIT, MAX_LOGIT))
        noise = draw(st.lists(st.floats(-1e-2, 1e-2), min_size=s.numel(), max_size=s.numel()))
        near = s.double() + shift + torch.tensor(noise, dtype=torch.float64).reshape(s.shape)
        t = near.clamp(-MAX_LOGIT, MAX_LOGIT).to(s.dtype)
    return s, t


def unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


def smallest(dtype: torch.dtype) -> float:
    """The smallest positive (subnormal) number of ``dtype``: the absolute error of rounding a tiny value."""
    return float(torch.finfo(dtype).smallest_normal) * torch.finfo(dtype).eps


def log_space_error(x: torch.Tensor, classes: int) -> float:
    """Bound on the absolute float32 error of each entry of ``log_softmax(x)`` (and of ``x`` itself), where ``x``
    is the exact float64 value of the scaled logits.

    Dividing by T, subtracting the row maximum and the final subtraction each round to within ``u * 2 max|x|``
    (u = EPS32 / 2); the log-sum-exp of C terms in [e^-inf, 1] adds at most ``(C + 2) u``. Summed and rounded up:
    ``EPS32 * (4 max|x| + C + 4)``.
    """
    finite = x[torch.isfinite(x)]
    m = float(finite.abs().max()) if finite.numel() else 0.0
    return EPS32 * (4.0 * m + classes + 4)


def prob_tolerance(ref: torch.Tensor, delta: float, dtype: torch.dtype) -> torch.Tensor:
    """Entrywise bound on ``|softmax computed - softmax exact|`` when each scaled logit is off by at most ``delta``.

    Shifting each x_i by at most delta changes every ratio exp(x_i) / sum_j exp(x_j) by a factor within
    exp(+-2 delta), hence ``|dq_i| <= q_i expm1(2 delta)``; the exp, sum and division in float32 add a relative
    ``(C + 4) EPS32``, rounding the result to ``dtype`` a relative ``u_dtype`` and, below the normal range, one
    subnormal step.
    """
    classes = ref.shape[-1]
    rel = math.expm1(2 * delta) + (classes + 4) * EPS32 + unit_roundoff(dtype)
    return ref * rel + smallest(dtype) + smallest(torch.float32)


def assert_distribution(q: torch.Tensor, dtype: torch.dtype) -> None:
    """Finite, in [0, 1], rows summing to 1 within what float32 and the final rounding to ``dtype`` allow:
    ``|sum_i fl(q_i) - 1| <= u_dtype * sum_i q_i + (C + 2) EPS32 + C * smallest(dtype)``."""
    classes = q.shape[-1]
    assert q.dtype == dtype
    assert torch.isfinite(q).all()
    assert (q >= 0).all() and (q <= 1).all()
    sum_tol = unit_roundoff(dtype) * (1 + 1e-3) + (classes + 2) * EPS32 + classes * smallest(dtype)
    worst = float((q.double().sum(-1) - 1).abs().max())
    assert worst <= sum_tol, f"rows sum to 1 +- {worst:.3g} > {sum_tol:.3g}"


def assert_close_to(got: torch.Tensor, ref: torch.Tensor, tol: torch.Tensor | float) -> None:
    err = (got.double() - ref).abs()
    excess = err - tol
    assert float(excess.max()) <= 0, f"error {float(err.max()):.3g} exceeds its bound by {float(excess.max()):.3g}"


# ---------------------------------------------------------------------------------------------------- soften


@SETTINGS
@given(tensors(), temperatures)
def test_soften_is_an_accurate_distribution(z, T):
    (z,) = z
    q = sdkit.soften(z, T)
    assert_distribution(q, z.dtype)
    x = z.double() / T
    ref = torch.softmax(x, -1)
    assert_close_to(q, ref, prob_tolerance(ref, log_space_error(x, z.shape[-1]), z.dtype))


@SETTINGS
@given(tensors(min_classes=2), st.floats(T_MIN, 1.0), st.floats(0.0, 50.0))
def test_soften_approaches_the_argmax_one_hot_as_T_goes_to_0(z, T, margin):
    # With m = z_max - (second largest z) > 0, every other class has q_j = exp((z_j - z_max)/T) * q_max
    # <= exp(-m/T), and 1 - q_max = sum_{j != max} q_j <= (C - 1) exp(-m/T). So
    #     max_i |q_i - onehot_i| <= (C - 1) exp(-m/T)  -> 0 as T -> 0.
    (z,) = z
    dtype, classes = z.dtype, z.shape[-1]
    wide = z.double()
    top = wide.argmax(-1, keepdim=True)
    z = wide.scatter(-1, top, wide.gather(-1, top) + margin).to(dtype)  # widen the winner's lead by `margin`
    exact = z.double()
    top2 = exact.topk(2, -1).values
    m = (top2[:, 0] - top2[:, 1])[:, None]  # the margin after rounding to dtype (a tie gives a trivial bound)
    note(f"margins {m.flatten().tolist()}, T={T}")
    q = sdkit.soften(z, T)
    onehot = F.one_hot(exact.argmax(-1), classes).double()
    bound = (classes - 1) * torch.exp(-m / T)
    delta = log_space_error(exact / T, classes)
    slack = bound * math.expm1(2 * delta) + prob_tolerance(torch.ones(1, dtype=torch.float64), delta, dtype)
    assert_close_to(q, onehot, bound + slack)
    if bool((m / T > 110).all()):  # exp(-110) is below float32's smallest subnormal: exactly one-hot
        assert torch.equal(q.double(), onehot)


@SETTINGS
@given(tensors(), temperatures, st.floats(1.0, 1e4))
def test_soften_approaches_uniform_as_T_grows(z, T, ratio):
    # Let D = max z - min z in a row. Every ratio q_i / q_j = exp((z_i - z_j)/T) lies in [exp(-D/T), exp(D/T)],
    # and q_i = 1 / sum_j exp((z_j - z_i)/T), a sum of C terms each in [exp(-D/T), exp(D/T)]; so
    #     exp(-D/T) / C <= q_i <= exp(D/T) / C   and   max_i |q_i - 1/C| <= expm1(D/T) / C,
    # using 1 - exp(-x) <= exp(x) - 1. The bound goes to 0 like D / (C T) as T grows.
    (z,) = z
    T = T * ratio  # temperatures from 0.05 to 1e6: far beyond the logits' spread
    q = sdkit.soften(z, T)
    exact = z.double()
    spread = (exact.max(-1).values - exact.min(-1).values)[:, None]
    classes = z.shape[-1]
    bound = torch.expm1(spread / T) / classes
    delta = log_space_error(exact / T, classes)
    slack = prob_tolerance(torch.full_like(bound, 1 / classes) + bound, delta, z.dtype)
    assert_close_to(q, torch.full_like(exact, 1 / classes), bound + slack)


@SETTINGS
@given(tensors(), temperatures, temperatures)
def test_soften_probs_is_an_accurate_distribution(z, T0, T):
    (z,) = z
    p = torch.softmax(z.double() / T0, -1).to(z.dtype)  # a distribution rounded to dtype: sums to 1 +- u_dtype
    q = sdkit.soften_probs(p, T)
    assert_distribution(q, z.dtype)
    x = p.double().log() / T  # log 0 = -inf stays a zero probability
    ref = torch.softmax(x, -1)
    assert_close_to(q, ref, prob_tolerance(ref, log_space_error(x, z.shape[-1]), z.dtype))


@SETTINGS
@given(tensors(), temperatures)
def test_entropy_is_finite_nonnegative_and_at_most_log_c(z, T):
    (z,) = z
    q = sdkit.soften(z, T)
    h = sdkit.entropy(q)
    assert h.dtype == (torch.float64 if q.dtype == torch.float64 else torch.float32)  # half: computed in float32
    assert torch.isfinite(h).all() and (h >= 0).all()
    q64 = q.double()
    ref = -torch.special.xlogy(q64, q64).sum(-1)
    classes = q.shape[-1]
    # sum_i -q_i log q_i with each term off by a relative few EPS32, plus an absolute q_i * (|log q_i| u) <= u / e
    assert_close_to(h, ref, ref * (classes + 4) * EPS32 + classes * EPS32)
    total = q64.sum(-1)
    # with sum_i q_i = s, the entropy is at most s log(C / s) <= log C + |s - 1| log C (maximum at q_i = s / C)
    assert bool((h.double() <= math.log(classes) * total + (total - 1).abs() + classes * EPS32).all())


# ---------------------------------------------------------------------------------------------------- losses


def reference_log_softmax(z: torch.Tensor, T: float) -> torch.Tensor:
    return F.log_softmax(z.double() / T, -1)


def student_grad(loss_fn, s: torch.Tensor, *args) -> tuple[torch.Tensor, torch.Tensor]:
    s = s.clone().requires_grad_(True)
    loss = loss_fn(s, *args)
    (grad,) = torch.autograd.grad(loss, s)
    return loss.detach(), grad


def assert_finite_nonnegative(loss: torch.Tensor, grad: torch.Tensor, input_dtype: torch.dtype) -> None:
    assert loss.dtype == (torch.float64 if input_dtype == torch.float64 else torch.float32)
    assert loss.dim() == 0 and math.isfinite(float(loss)) and float(loss) >= 0.0, float(loss)
    assert grad.dtype == input_dtype and torch.isfinite(grad).all()


def grad_tolerance(ref: torch.Tensor, scale: float, eps_log: float, dtype: torch.dtype) -> torch.Tensor:
    """Bound on the error of ``scale * (p - q)``-type gradients: each of p and q is off by a relative
    expm1(eps_log) (see :func:`prob_tolerance`), their difference and the backward pass add a few EPS32 (C of
    them in the row sum), and the gradient is finally rounded to the input's dtype."""
    classes = ref.shape[-1]
    return (
        scale * (2 * math.expm1(eps_log) + (classes + 8) * EPS32) + ref.abs() * unit_roundoff(dtype) + smallest(dtype)
    )


@SETTINGS
@given(pairs(), temperatures)
def test_kd_loss_and_its_gradient_are_finite_nonnegative_and_exact(st_, T):
    s, t = st_
    batch, classes = s.shape
    loss, grad = student_grad(sdkit.kd_loss, s, t, T)
    assert_finite_nonnegative(loss, grad, s.dtype)
    log_p, log_q = reference_log_softmax(s, T), reference_log_softmax(t, T)
    p, q = log_p.exp(), log_q.exp()
    kl = float((q * (log_q - log_p)).sum()) / batch
    # each log-probability is off by at most delta; KL = sum_i q_i phi(u_i) with u = log p - log q and
    # phi(u) = e^u - 1 - u, so an error eps in u moves it by sum_i q_i |phi'(u_i)| eps + O(eps^2)
    # = sum_i |p_i - q_i| eps + O(eps^2) <= 2 eps + eps^2, and the terms' own rounding adds a relative few EPS32
    eps = log_space_error(s.double() / T, classes) + log_space_error(t.double() / T, classes)
    tol = T * T * (2 * eps + eps * eps * math.exp(eps) + kl * ((classes + 8) * EPS32 + 2 * eps))
    assert abs(float(loss) - T * T * kl) <= tol, (float(loss), T * T * kl, tol)
    # d/ds [T^2 KL(q || softmax(s/T))] = T^2 (p - q) / T = T (p - q), divided by the batch ('batchmean')
    ref_grad = T * (p - q) / batch
    assert_close_to(grad, ref_grad, grad_tolerance(ref_grad, T / batch, eps, s.dtype))


@SETTINGS
@given(tensors(), temperatures, st.floats(-MAX_LOGIT, MAX_LOGIT))
def test_kd_loss_of_a_distribution_with_itself_is_zero(z, T, shift):
    (z,) = z
    loss, grad = student_grad(sdkit.kd_loss, z, z, T)
    assert float(loss) == 0.0 and bool((grad == 0).all())  # identical inputs: exactly 0, not just close
    # a constant shift of the teacher's logits leaves softmax(t/T) unchanged, so the KL is 0 up to rounding;
    # rounding z + shift to dtype changes the logits by up to u_dtype |z + shift|, so compare with float64
    t = (z.double() + shift).to(z.dtype)
    loss, grad = student_grad(sdkit.kd_loss, z, t, T)
    assert_finite_nonnegative(loss, grad, z.dtype)
    log_p, log_q = reference_log_softmax(z, T), reference_log_softmax(t, T)
    kl = float((log_q.exp() * (log_q - log_p)).sum()) / z.shape[0]
    eps = log_space_error(z.double() / T, z.shape[-1]) + log_space_error(t.double() / T, z.shape[-1])
    assert float(loss) <= T * T * (kl + 2 * eps * eps * math.exp(eps) + kl * (z.shape[-1] + 8) * EPS32 + 2 * eps)


@SETTINGS
@given(tensors(n=2), temperatures)
def test_soft_cross_entropy_and_its_gradient(st_, T):
    s, t = st_
    batch, classes = s.shape
    q = sdkit.soften(t, T)  # a distribution in the input dtype, as a caller would build it
    loss, grad = student_grad(sdkit.soft_cross_entropy, s, q, T)
    assert_finite_nonnegative(loss, grad, s.dtype)
    log_p, q64 = reference_log_softmax(s, T), q.double()
    ref = float(-(q64 * log_p).sum()) / batch
    delta = log_space_error(s.double() / T, classes)
    # -sum_i q_i log p_i with each log p_i off by delta and the sum rounded: sum(q) delta + (C + 4) EPS32 |ref|
    assert abs(float(loss) - ref) <= float(q64.sum(-1).max()) * delta + (classes + 4) * EPS32 * ref
    # d/ds_j [-sum_i q_i log softmax(s/T)_i] = (p_j sum_i q_i - q_j) / T  (sum q = 1 up to rounding)
    ref_grad = (log_p.exp() * q64.sum(-1, keepdim=True) - q64) / (T * batch)
    assert_close_to(grad, ref_grad, grad_tolerance(ref_grad, 1 / (T * batch), delta, s.dtype))


@SETTINGS
@given(pairs(), temperatures, st.floats(0.0, 1.0), st.floats(0.0, 0.5), st.randoms())
def test_distillation_loss_and_its_gradient(st_, T, alpha, smoothing, rnd):
    s, t = st_
    batch, classes = s.shape
    y = torch.tensor([rnd.randrange(classes) for _ in range(batch)])
    loss, grad = student_grad(sdkit.distillation_loss, s, t, y, T, alpha, smoothing)
    assert_finite_nonnegative(loss, grad, s.dtype)
    # hard term: cross-entropy at T = 1 against (1 - ls) onehot(y) + ls / C
    target = (1 - smoothing) * F.one_hot(y, classes).double() + smoothing / classes
    log_p1 = reference_log_softmax(s, 1.0)
    hard = float(-(target * log_p1).sum()) / batch
    log_p, log_q = reference_log_softmax(s, T), reference_log_softmax(t, T)
    kl = float((log_q.exp() * (log_q - log_p)).sum()) / batch
    ref = (1 - alpha) * hard + alpha * T * T * kl
    delta1 = log_space_error(s.double(), classes)
    eps = log_space_error(s.double() / T, classes) + log_space_error(t.double() / T, classes)
    kd_tol = T * T * (2 * eps + eps * eps * math.exp(eps) + kl * ((classes + 8) * EPS32 + 2 * eps))
    tol = (1 - alpha) * (delta1 + (classes + 4) * EPS32 * hard) + alpha * kd_tol + 4 * EPS32 * ref
    assert abs(float(loss) - ref) <= tol
    # gradient: (1 - alpha) (softmax(s) - target) / B + alpha T (p - q) / B
    ref_grad = ((1 - alpha) * (log_p1.exp() - target) + alpha * T * (log_p.exp() - log_q.exp())) / batch
    tol_grad = grad_tolerance(ref_grad, (1 - alpha) / batch, delta1, s.dtype) + grad_tolerance(
        ref_grad, alpha * T / batch, eps, s.dtype
    )
    assert_close_to(grad, ref_grad, tol_grad)


@SETTINGS
@given(tensors(n=2), temperatures, st.floats(0.0, 1.0), st.randoms())
def test_module_wrappers_equal_the_functions(st_, T, alpha, rnd):
    s, t = st_
    y = torch.tensor([rnd.randrange(s.shape[-1]) for _ in range(s.shape[0])])
    q = sdkit.soften(t, T)
    assert torch.equal(sdkit.KDLoss(T)(s, t), sdkit.kd_loss(s, t, T))
    assert torch.equal(sdkit.SoftCrossEntropy(T)(s, q), sdkit.soft_cross_entropy(s, q, T))
    assert torch.equal(sdkit.DistillationLoss(T, alpha)(s, t, y), sdkit.distillation_loss(s, t, y, T, alpha))


def test_kd_loss_of_one_row_is_its_batch_of_one():
    # a 1-D input is one sample: 'batchmean' must not divide by the number of classes
    s, t = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0])
    assert torch.equal(sdkit.kd_loss(s, t, 2.0), sdkit.kd_loss(s[None], t[None], 2.0))
    q = sdkit.soften(t, 2.0)
    kl_plus_h = sdkit.kd_loss(s, t, 2.0) / 4 + sdkit.entropy(q)  # T^2 KL / T^2 + H(q) = soft cross-entropy
    torch.testing.assert_close(kl_plus_h, sdkit.soft_cross_entropy(s, q, 2.0))


def test_float32_kd_loss_stays_accurate_at_extreme_temperature():
    # At T = 1e4 the KL is ~1e-9 and T^2 multiplies every rounding error by 1e8: log-probabilities subtracted
    # entry by entry (error ~1e-7 each) once gave -15.49 here. The reference is the float64 computation.
    t = torch.tensor([[2.0, 1.0, 0.5, -0.5, -3.0]])
    s = torch.tensor([[1.0, 1.5, 0.0, -1.0, -1.5]])
    for T in (100.0, 1e3, 1e4):
        ref = float(sdkit.kd_loss(s.double(), t.double(), T))
        got = float(sdkit.kd_loss(s, t, T))
        assert got >= 0 and abs(got / ref - 1) < 0.05, (T, got, ref)


# ---------------------------------------------------------------------------------------------------- bad dtypes

BAD_DTYPES = [torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool, torch.complex64]


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=str)
@pytest.mark.parametrize(
    "call, name",
    [
        (lambda bad, good, y: sdkit.soften(bad, 2.0), "logits"),
        (lambda bad, good, y: sdkit.soften_probs(bad, 2.0), "probs"),
        (lambda bad, good, y: sdkit.entropy(bad), "probs"),
        (lambda bad, good, y: sdkit.kd_loss(bad, good), "student_logits"),
        (lambda bad, good, y: sdkit.kd_loss(good, bad), "teacher_logits"),
        (lambda bad, good, y: sdkit.soft_cross_entropy(bad, good.softmax(-1)), "student_logits"),
        (lambda bad, good, y: sdkit.soft_cross_entropy(good, bad), "target_probs"),
        (lambda bad, good, y: sdkit.distillation_loss(bad, good, y), "student_logits"),
        (lambda bad, good, y: sdkit.distillation_loss(good, bad, y), "teacher_logits"),
    ],
)
def test_non_float_inputs_raise_a_value_error_naming_the_argument(call, name, dtype):
    good, y = torch.zeros(2, 3), torch.tensor([0, 1])
    bad = torch.zeros(2, 3, dtype=dtype)
    with pytest.raises(ValueError, match=f"^{name} must be a floating-point tensor, got dtype {dtype}"):
        call(bad, good, y)


@pytest.mark.parametrize("dtype", [torch.bool, torch.complex64, torch.float32], ids=str)
def test_non_integer_labels_raise_a_value_error(dtype):
    with pytest.raises(ValueError, match=f"targets must be a 1-D integer tensor .*dtype {dtype}"):
        sdkit.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0, 1], dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.uint8], ids=str)
def test_any_integer_label_dtype_is_accepted(dtype):
    s, t = torch.randn(2, 3, generator=torch.Generator().manual_seed(0)), torch.zeros(2, 3)
    y = torch.tensor([0, 2])
    assert torch.equal(sdkit.distillation_loss(s, t, y.to(dtype)), sdkit.distillation_loss(s, t, y))


@pytest.mark.parametrize("value", [True, "4", None, [4.0]], ids=repr)
def test_temperature_and_alpha_of_the_wrong_type_raise_a_type_error(value):
    with pytest.raises(TypeError, match="^T must be a positive number"):
        sdkit.soften(torch.zeros(3), value)
    with pytest.raises(TypeError, match="^alpha must be a number in \\[0, 1\\]"):
        sdkit.distillation_loss(torch.zeros(1, 3), torch.zeros(1, 3), torch.tensor([0]), alpha=value)
