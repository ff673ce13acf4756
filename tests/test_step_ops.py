"""A distillation step of sdkit.train launches no more operators than torchdistill's, and syncs the host once an
epoch on CUDA.

A small model on a GPU is launch-bound: its step costs what launching its operators costs, and a host sync
(``loss.item()``, ``bool(t)``, a copy from pageable memory) stalls the queue of kernels. Both are counted here on
the CPU, deterministically: the operators with ``torch.profiler`` (benchmarks/step_ops.py says exactly what counts),
the syncs by counting every tensor-to-Python conversion along the code path sdkit takes on CUDA.
"""

import contextlib
import importlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import load_script

import sdkit
from sdkit.losses import _kd_loss_from_log_probs

ROOT = Path(__file__).resolve().parents[1]
loop = importlib.import_module("sdkit.train")  # the module; sdkit.train is the function


@pytest.fixture(scope="module")
def step_ops():
    return load_script("step_ops")


def test_sdkit_launches_no_more_operators_per_step_than_torchdistills_box(torchdistill, step_ops):
    counts = step_ops.all_counts(steps=2)
    # on the CPU as each runs there: the box updates one parameter at a time (torch's CPU default)
    assert counts["sdkit"] <= min(counts["box"], counts["box-cl"]), counts
    # as each runs on CUDA: sdkit without its per-step check, the box with foreach (torch's CUDA default)
    assert counts["sdkit-cuda-path"] <= min(counts["box-foreach"], counts["box-cl-foreach"]), counts
    assert counts["sdkit-cuda-path"] < counts["sdkit"]  # the CPU's per-step check is one operator
    assert counts["box-foreach"] < counts["box"]


def test_the_operator_count_sees_the_loss(step_ops):
    """The count can fail: the same loop with every loss term through autograd (as the public distillation_loss
    computes it, without its checks) launches more operators than with sdkit's fused term, and the count names them."""

    class Unfused(sdkit.Distill):
        def loss(self, model, batch, logits, epoch):
            log_q = F.log_softmax(self.teacher_logits(batch.x) / self.T, dim=-1)
            kd = _kd_loss_from_log_probs(logits, log_q, self.T)
            return (1 - self.alpha) * F.cross_entropy(logits, batch.y) + self.alpha * kd

    fused = step_ops.ops_per_step("sdkit-cuda-path", steps=2)
    unfused = step_ops.ops_per_step("sdkit-cuda-path", steps=2, method_class=Unfused)
    assert unfused["total"] >= fused["total"] + 20, (unfused, fused)
    assert fused["by_name"]["aten::conv2d"] == 6  # three convolutions, student and teacher
    assert "aten::expm1" in fused["by_name"] and "aten::log1p" not in fused["by_name"]
    assert unfused["by_name"]["aten::log1p"] == 1  # the far branch of the autograd KL terms


class _Syncs:
    """Counts the tensor-to-Python conversions (each a host sync on CUDA) while active."""

    METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count, self.active = 0, False
        for name in self.METHODS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counting(original))

    def _counting(self, original):
        def method(tensor, *args, **kwargs):
            if self.active:
                self.count += 1
            return original(tensor, *args, **kwargs)

        return method

    @contextlib.contextmanager
    def counting(self):
        self.active = True
        try:
            yield
        finally:
            self.active = False


def _cuda_path(monkeypatch) -> None:
    """The code path sdkit.train takes on CUDA, run on the CPU: the loss is checked once an epoch, not per step."""

    class Guard(loop.DivergenceGuard):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, every_step=False, **{k: v for k, v in kwargs.items() if k != "every_step"})

    monkeypatch.setattr(loop, "DivergenceGuard", Guard)


@pytest.mark.parametrize("epochs", [1, 3])
def test_one_host_sync_per_epoch_on_the_cuda_path(monkeypatch, epochs):
    """No conversion inside an epoch's steps, one per epoch after them (the loss and the weights' check), and
    those of validation, which are counted apart."""
    _cuda_path(monkeypatch)
    syncs = _Syncs(monkeypatch)
    data = sdkit.load_dataset("fashion-mnist-sample", train_size=4 * 128 + 1)
    shape = data.input_shape
    teacher = sdkit.build_model("cnn", shape, 10, width=0.25, seed=1)
    student = sdkit.build_model("cnn", shape, 10, width=0.25, seed=0)
    seen = {"steps": 0, "epochs": 0, "validation": 0}
    train_epoch, check_epoch, validate = loop._train_epoch, loop.DivergenceGuard.check_epoch, loop._validate

    def counted(part, fn):
        def wrapper(*args, **kwargs):
            before = syncs.count
            with syncs.counting():
                result = fn(*args, **kwargs)
            seen[part] += syncs.count - before
            return result

        return wrapper

    monkeypatch.setattr(loop, "_train_epoch", counted("steps", train_epoch))
    monkeypatch.setattr(loop.DivergenceGuard, "check_epoch", counted("epochs", check_epoch))
    monkeypatch.setattr(loop, "_validate", counted("validation", validate))
    history = sdkit.train(student, data, teacher=teacher, epochs=epochs, progress=False, device="cpu")
    assert seen["steps"] == 0
    assert seen["epochs"] == epochs
    assert seen["validation"] > 0 and len(history.records) == epochs  # the counter sees the conversions there


def test_the_sync_count_sees_a_per_step_check(monkeypatch):
    """The count can fail: with the CPU's per-step loss check, every step converts its loss."""
    syncs = _Syncs(monkeypatch)
    data = sdkit.load_dataset("fashion-mnist-sample", train_size=4 * 128 + 1)
    model = sdkit.build_model("cnn", data.input_shape, 10, width=0.25, seed=0)
    run_epoch = loop._train_epoch

    def counted(*args, **kwargs):
        with syncs.counting():
            return run_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "_train_epoch", counted)
    sdkit.train(model, data, epochs=1, progress=False, device="cpu")
    assert syncs.count == 4  # the CPU path: one loss.item() per step


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: benchmarks/gpu_check.sh runs it on a GPU")
def test_an_epoch_on_cuda_never_syncs_the_host(monkeypatch):
    """torch's sync debug mode raises at any synchronising call inside the epoch's steps (an ``.item()``, a copy
    from pageable memory, a ``nonzero``)."""
    data = sdkit.load_dataset("fashion-mnist-sample", train_size=4 * 128 + 1)
    teacher = sdkit.build_model("cnn", data.input_shape, 10, width=0.25, seed=1)
    student = sdkit.build_model("cnn", data.input_shape, 10, width=0.25, seed=0)
    train_epoch, epochs_checked = loop._train_epoch, []

    def strict(*args, **kwargs):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            result = train_epoch(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        epochs_checked.append(result.device.type)
        return result

    monkeypatch.setattr(loop, "_train_epoch", strict)
    sdkit.train(student, data, teacher=teacher, epochs=2, progress=False, device="cuda")
    assert epochs_checked == ["cuda", "cuda"]
