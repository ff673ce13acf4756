"""sdkit against torchdistill (benchmarks/peers.py): agreement before speed.

How torchdistill 1.1.5 weights Hinton's loss (``torchdistill.losses.mid_level.KDLoss.forward``), for student
logits ``s``, teacher logits ``t``, labels ``y``, its ``temperature`` ``T`` and its ``alpha`` and ``beta``::

    soft = KLDivLoss(reduction="batchmean")(log_softmax(s / T, dim=1), softmax(t / T, dim=1))
         = (1/B) sum_b KL(softmax(t_b / T) || softmax(s_b / T))
    hard = CrossEntropyLoss(reduction="mean")(s, y)
    loss = alpha * hard + beta * T**2 * soft            with beta = 1 - alpha unless given

and ``loss = soft`` alone (no ``beta``, no ``T**2``) when its ``alpha`` is None or 0 or no targets are passed.
sdkit's ``distillation_loss(s, t, y, T, alpha) = (1 - alpha) * CE(s, y) + alpha * T**2 * KL`` (batchmean): the
same two terms with the same reductions and the same ``T**2`` on the soft term, but the opposite ``alpha``
(torchdistill's weights the hard labels, sdkit's the teacher). So sdkit's ``alpha = a`` is torchdistill's
``alpha = 1 - a`` (default ``beta = a``), for every ``a`` in ``[0, 1)``; sdkit's ``a = 1`` (teacher only) has no
torchdistill equivalent, because ``alpha = 0`` there also drops the ``T**2``. (torchdistill's own sample config
for CIFAR-10 sets ``alpha: 0.9``: 90% hard labels, i.e. sdkit's ``alpha = 0.1``.)

Every check below also compares with a formula written here from the definitions (and its gradient in closed
form), so a swap of ``alpha`` and ``1 - alpha`` on either side fails, even on both sides at once.
"""

import copy
import math
import statistics
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import load_script

import sdkit

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def peers():
    return load_script("peers")


def reference_kd(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, T: float, alpha: float) -> torch.Tensor:
    """Hinton's loss from its definition: ``(1 - alpha) * mean_b -log q_b[y_b] + alpha * T^2 * mean_b sum_i
    p_bi (log p_bi - log q^T_bi)``, with ``p = softmax(t/T)``, ``q = softmax(s)``, ``q^T = softmax(s/T)``."""
    b = torch.arange(len(y))
    ce = -(s[b, y] - s.logsumexp(1)).mean()
    log_p, log_qT = t / T - (t / T).logsumexp(1, keepdim=True), s / T - (s / T).logsumexp(1, keepdim=True)
    kl = (log_p.exp() * (log_p - log_qT)).sum(1).mean()
    return (1 - alpha) * ce + alpha * T * T * kl


def reference_kd_grad(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, T: float, alpha: float) -> torch.Tensor:
    """d(reference_kd)/ds in closed form: ``[(1 - alpha)(q - onehot(y)) + alpha T (q^T - p)] / B``."""
    onehot = F.one_hot(y, s.shape[1]).to(s.dtype)
    hard = s.softmax(1) - onehot
    soft = (s / T).softmax(1) - (t / T).softmax(1)
    return ((1 - alpha) * hard + alpha * T * soft) / len(y)


def torchdistill_kd(T: float, alpha_td: float | None, beta: float | None = None):
    """torchdistill's KDLoss on logits, as its ``WeightedSumLoss`` calls it (through the models' I/O dicts)."""
    from torchdistill.losses.mid_level import KDLoss

    loss = KDLoss(".", "output", ".", "output", temperature=T, alpha=alpha_td, beta=beta, reduction="batchmean")
    return lambda s, t, y: loss({".": {"output": s}}, {".": {"output": t}}, y)


def random_logits(seed: int, batch: int = 16, classes: int = 10):
    g = torch.Generator().manual_seed(seed)
    s = (3 * torch.randn(batch, classes, generator=g, dtype=torch.float64)).requires_grad_()
    t = 3 * torch.randn(batch, classes, generator=g, dtype=torch.float64)
    return s, t, torch.randint(0, classes, (batch,), generator=g)


def value_and_grad(loss_fn, s, t, y):
    s = s.detach().clone().requires_grad_()
    value = loss_fn(s, t, y)
    (grad,) = torch.autograd.grad(value, s)
    return value.detach(), grad


@pytest.mark.parametrize("T, alpha", [(4.0, 0.9), (4.0, 0.3), (1.0, 0.7), (2.5, 0.0)])
def test_kd_losses_agree_in_value_and_gradient_once_alpha_is_mapped(torchdistill, T, alpha):
    s, t, y = random_logits(seed=int(10 * T + 100 * alpha))
    expected = reference_kd(s, t, y, T, alpha).detach(), reference_kd_grad(s, t, y, T, alpha)
    ours = value_and_grad(lambda *a: sdkit.distillation_loss(*a, T=T, alpha=alpha), s, t, y)
    theirs = value_and_grad(torchdistill_kd(T, alpha_td=1 - alpha), s, t, y)  # default beta = 1 - alpha_td
    for got in (ours, theirs):
        torch.testing.assert_close(got[0], expected[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got[1], expected[1], rtol=1e-10, atol=1e-12)
    # the mapping matters: the unmapped alpha weights the other term and gives another loss
    if alpha not in (0.0, 0.5):
        assert not torch.allclose(value_and_grad(torchdistill_kd(T, alpha_td=alpha), s, t, y)[0], expected[0])


def test_torchdistill_alpha_zero_is_the_bare_kl_without_T_squared(torchdistill):
    # why benchmarks/peers.py refuses --alpha 1: torchdistill returns the soft term alone, unscaled
    s, t, y = random_logits(seed=3)
    T = 4.0
    bare = torchdistill_kd(T, alpha_td=0.0)(s, t, y)
    torch.testing.assert_close(bare, reference_kd(s, t, y, T, alpha=1.0) / T**2, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(bare * T**2, sdkit.kd_loss(s, t, T=T), rtol=1e-10, atol=1e-12)


def test_one_epoch_of_each_from_the_same_weights_on_the_same_batches_ends_at_the_same_weights(
    torchdistill, peers, digits, monkeypatch
):
    T, alpha, bs = 4.0, 0.9, 64
    student = sdkit.build_model("cnn", digits.input_shape, digits.num_classes, width=0.25, seed=0)
    teacher = sdkit.frozen_copy(sdkit.build_model("cnn", digits.input_shape, digits.num_classes, width=0.5, seed=1))

    # the batches sdkit.train really uses, recorded as its distillation method sees them
    batches, distill_loss = [], sdkit.Distill.loss

    def recording_loss(self, model, batch, logits, epoch):
        batches.append((batch.x.detach().clone(), batch.y.clone()))
        return distill_loss(self, model, batch, logits, epoch)

    monkeypatch.setattr(sdkit.Distill, "loss", recording_loss)
    ours = copy.deepcopy(student)
    sdkit.train(ours, digits, teacher=teacher, T=T, alpha=alpha, epochs=1, batch_size=bs, lr=peers.LR,
                momentum=peers.MOMENTUM, weight_decay=peers.WEIGHT_DECAY, select="last", device="cpu",
                progress=False)  # fmt: skip
    assert len(batches) == len(digits.train) // bs

    # torchdistill: the benchmark's own config and epoch loop, fed the same batches in the same order
    theirs = copy.deepcopy(student)
    config = peers.torchdistill_train_config(T=T, alpha=alpha, batch_size=bs, steps=len(batches), epochs=1,
                                             data_loader=False)  # fmt: skip
    box = peers.distillation_box(copy.deepcopy(teacher), theirs, config, torch.device("cpu"))
    peers.torchdistill_epoch(box, ((x.contiguous(), y, {}) for x, y in batches), torch.device("cpu"), epoch=0)

    # and the same epoch written out from the definitions: reference_kd, SGD with Nesterov, one-cycle per step
    reference = copy.deepcopy(student).train()
    opt = torch.optim.SGD(reference.parameters(), lr=peers.LR, momentum=peers.MOMENTUM, nesterov=True,
                          weight_decay=peers.WEIGHT_DECAY)  # fmt: skip
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, peers.LR, total_steps=len(batches), pct_start=peers.WARMUP)
    for x, y in batches:
        with torch.no_grad():
            t_logits = teacher(x.contiguous())
        loss = reference_kd(reference(x.contiguous()), t_logits, y, T, alpha)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    start, want = student.state_dict(), reference.state_dict()
    moved = max(
        (want[k].double() - start[k].double()).abs().max().item() for k in start if start[k].is_floating_point()
    )
    assert moved > 1e-2  # the epoch changed the weights: the comparison below is not of three copies of the start
    for name, got in (("sdkit", ours.state_dict()), ("torchdistill", theirs.state_dict())):
        for k in want:
            # float32 on a channels_last vs NCHW layout: the kernels sum in another order, nothing more
            message = f"{name}, {k}: {{}}"
            torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-5, msg=message.format)


def test_torchdistill_leaves_the_teacher_in_the_mode_it_is_given(torchdistill, peers, digits):
    """torchdistill 1.1.5 never calls ``teacher.eval()``: a teacher in train mode (``nn.Module``'s default, and how
    its example script loads one) stays there, so a BatchNorm teacher normalises with each batch's statistics and
    its running statistics drift while the student learns. peers.py, like ``sdkit.Distill``, passes an eval-mode
    teacher; this test notes the pitfall and fails if torchdistill starts handling it."""
    teacher = sdkit.build_model("cnn", digits.input_shape, digits.num_classes, width=0.25, seed=1)
    student = sdkit.build_model("cnn", digits.input_shape, digits.num_classes, width=0.25, seed=0)
    config = peers.torchdistill_train_config(T=4.0, alpha=0.9, batch_size=64, steps=1, epochs=1, data_loader=False)
    box = peers.distillation_box(teacher, student, config, torch.device("cpu"))
    running_mean = teacher.features[1].running_mean.clone()
    batch = (digits.train.x[:64], digits.train.y[:64], {})
    peers.torchdistill_epoch(box, [batch], torch.device("cpu"), epoch=0)
    assert teacher.training and not any(p.requires_grad for p in teacher.parameters())  # frozen, not in eval
    assert not torch.equal(teacher.features[1].running_mean, running_mean)


def test_merge_rounds_takes_the_median_of_every_timed_epoch(peers):
    def row(mode, wall, cpu, mb):
        return {"mode": mode, "epoch_seconds": wall, "epoch_cpu_seconds": cpu, "images_per_epoch": 100,
                "peak_memory_mb": mb}  # fmt: skip

    rows = [row("sdkit", [1.0, 4.0], [0.5, 1.0], 5.0), row("naive", [3.0], [2.0], 9.0), row("sdkit", [2.0], [4.0], 7.0)]
    merged = {r["mode"]: r for r in peers.merge_rounds(rows)}
    assert list(merged) == ["sdkit", "naive"]
    assert merged["sdkit"]["epoch_seconds"] == [1.0, 4.0, 2.0] and merged["sdkit"]["epoch_cpu_seconds"] == [0.5, 1, 4]
    assert merged["sdkit"]["images_per_second"] == pytest.approx(100 / 2.0)
    assert merged["sdkit"]["images_per_cpu_second"] == pytest.approx(100 / 1.0)
    assert merged["sdkit"]["peak_memory_mb"] == 7.0 and merged["naive"]["images_per_second"] == pytest.approx(100 / 3)


def test_format_table_shows_every_mode_with_its_speed_and_sdkits_speedup(peers):
    measured = [("naive", 1000.0, 500.0, 800.0), ("torchdistill", 1500.0, 1000.0, 850.0), ("sdkit", 4500, 1500, 900)]
    rows = [{"mode": m, "images_per_second": ips, "images_per_cpu_second": cpu, "peak_memory_mb": mb}
            for m, ips, cpu, mb in measured]  # fmt: skip
    config = {"dataset": "fashion-mnist", "model": "cnn", "width": 0.5, "batch_size": 128, "train_size": 10000,
              "T": 4.0, "alpha": 0.9, "epochs": 3, "rounds": 2}  # fmt: skip
    result = {
        "rows": rows,
        "speedup_sdkit_over": peers.speedups(rows),
        "speedup_sdkit_over_cpu_time": peers.speedups(rows, "images_per_cpu_second"),
        "config": config,
        "machine": {"cpu_model": "AMD EPYC", "torch_threads": 2, "load_average": [1.5, 1.0, 0.5]},
        "load_average_before": [0.5, 0.4, 0.3],
    }
    assert result["speedup_sdkit_over"] == {"naive": 4.5, "torchdistill": 3.0}
    assert result["speedup_sdkit_over_cpu_time"] == {"naive": 3.0, "torchdistill": 1.5}
    lines = peers.format_table(result).splitlines()
    by_label = {line.split("  ")[0]: line.split() for line in lines[2:5]}
    assert by_label[peers.LABELS["naive"]][-5:] == ["1,000", "500", "4.50x", "3.00x", "800"]
    assert by_label[peers.LABELS["torchdistill"]][-5:] == ["1,500", "1,000", "3.00x", "1.50x", "850"]
    assert by_label[peers.LABELS["sdkit"]][-3:] == ["4,500", "1,500", "900"]  # no speed-up over itself
    assert "median of 6 timed epochs" in lines[-1] and "[0.5, 0.4, 0.3] before" in lines[-1]


def test_breakdown_gives_each_modes_cpu_time_per_image_and_what_each_step_saves(peers):
    ips = {"naive": 500, "torchdistill": 1000, "torchdistill-fed": 1250, "torchdistill-fed-cl": 2000, "sdkit": 2500}
    result = {"rows": [{"mode": m, "images_per_cpu_second": v} for m, v in ips.items()]}
    lines = peers.breakdown(result).splitlines()[2:]
    last = lambda label: next(line for line in lines if line.startswith(label)).split()[-1]
    # 1e6 / images per CPU-second: 1000, 800, 500 and 400 microseconds per image from torchdistill to sdkit
    assert last(peers.LABELS["torchdistill"]) == "1000.0" and last(peers.LABELS["sdkit"]) == "400.0"
    assert [last(name) for _, _, name in peers.STEPS] == ["+200.0", "+300.0", "+100.0"]


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--modes", "sdkit,fly"], "sdkit,fly"),
        (["--alpha", "1.0"], "--alpha=1.0"),
        (["--epochs", "0"], "--epochs"),
        (["--workers", "-1"], "--workers=-1"),
        (["--dataset", "imagenet"], "imagenet"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument_and_value(peers, capsys, argv, named):
    with pytest.raises(SystemExit) as exit_:
        peers.main(argv)
    assert exit_.value.code == 2 and named in capsys.readouterr().err


def test_a_tiny_run_measures_every_mode_and_writes_json(torchdistill, run_benchmark):
    args = "--dataset digits --width 0.25 --train-size 300 --batch-size 64 --epochs 1 --threads 1"
    result, stdout = run_benchmark("peers.py", args)
    rows = {r["mode"]: r for r in result["rows"]}
    assert list(rows) == ["naive", "torchdistill", "torchdistill-fed", "torchdistill-fed-cl", "sdkit"]
    for r in rows.values():
        assert r["images_per_epoch"] == 300 and len(r["epoch_seconds"]) == 1 and r["epoch_seconds"][0] > 0
        assert r["images_per_second"] == pytest.approx(300 / statistics.median(r["epoch_seconds"]))
        assert len(r["epoch_cpu_seconds"]) == 1 and r["epoch_cpu_seconds"][0] > 0
        assert r["images_per_cpu_second"] == pytest.approx(300 / r["epoch_cpu_seconds"][0])
        assert r["peak_memory_mb"] > 0
    for mode, ratio in result["speedup_sdkit_over"].items():
        assert ratio == pytest.approx(rows["sdkit"]["images_per_second"] / rows[mode]["images_per_second"])
    for mode, ratio in result["speedup_sdkit_over_cpu_time"].items():
        assert ratio == pytest.approx(rows["sdkit"]["images_per_cpu_second"] / rows[mode]["images_per_cpu_second"])
    assert set(result["speedup_sdkit_over"]) == set(result["speedup_sdkit_over_cpu_time"]) == set(rows) - {"sdkit"}
    assert result["torchdistill"] == torchdistill.__version__ and result["machine"]["torch_threads"] == 1
    assert len(result["load_average_before"]) == len(result["machine"]["load_average"]) == 3
    assert result["config"]["T"] == 4.0 and "--train-size 300" in result["command"]
    assert "sdkit speed-up" in stdout and not math.isnan(rows["sdkit"]["images_per_second"])
