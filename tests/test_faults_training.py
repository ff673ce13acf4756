"""Faults a long training run meets, each produced for real: a rank killed under torchrun, a diverging loss, Ctrl-C
or SIGTERM sent to the CLI. Each run is then resumed and must end with the weights of an uninterrupted run."""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import sdkit
from sdkit.train import DivergenceGuard, TrainingDiverged

# one thread per process: the machine has two cores, and weights are compared bit for bit between processes
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def all_finite(state: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


# --- 1. a rank dies under torchrun ----------------------------------------------------------------------------------

DDP_SCRIPT = textwrap.dedent(
    """
    import dataclasses, os, signal, sys
    import torch
    import torch.distributed as dist
    import sdkit.distributed

    out, ckpt, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    sdkit.distributed.init_process_group("gloo")  # torch.distributed's, with a fresh store prefix per restart
    rank = dist.get_rank()
    attempt = int(os.environ["TORCHELASTIC_RESTART_COUNT"])  # 0, then 1 after torchrun restarted the group
    data = sdkit.load_dataset("digits")
    # a crop per rank, drawn from each rank's own generator: the restarted ranks must get their own streams back
    data = dataclasses.replace(data, augment=sdkit.data.Augment(crop_padding=1))
    model = sdkit.build_model("cnn", data.input_shape, 10, width=0.25, seed=0)  # BatchNorm: buffers all-reduced
    steps = [0]

    def die_mid_epoch(module, inputs):  # rank 1 kills itself at its kill_at-th training step, first attempt only
        if module.training:
            steps[0] += 1
            if rank == 1 and attempt == 0 and steps[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    model.register_forward_pre_hook(die_mid_epoch)
    seen = []

    def read_checkpoint(epoch, history):  # what a rank restarted now would read
        seen.append(sdkit.load_checkpoint(ckpt)["epoch"])

    use_ckpt = ckpt != "-"
    resumed_from = sdkit.load_checkpoint(ckpt)["epoch"] if use_ckpt and os.path.exists(ckpt) else None
    sdkit.train(model, data, epochs=4, seed=1, device="cpu", progress=False, checkpoint=ckpt if use_ckpt else None,
                resume=use_ckpt, on_epoch_end=read_checkpoint if use_ckpt else None)
    torch.save({"model": model.state_dict(), "attempt": attempt, "resumed_from": resumed_from, "seen": seen},
               f"{out}/rank{rank}.pt")
    dist.destroy_process_group()
    """
)


def torchrun(tmp_path: Path, out: Path, ckpt: str, kill_at: int) -> subprocess.CompletedProcess:
    script = tmp_path / "ddp_script.py"
    script.write_text(DDP_SCRIPT)
    out.mkdir()
    # a local c10d rendezvous on a free loopback port; gloo talks over loopback too
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--max-restarts=1",
        "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0", "--monitor-interval=0.5",
        str(script), str(out), ckpt, str(kill_at),
    ]  # fmt: skip
    env = {**ONE_THREAD, "GLOO_SOCKET_IFNAME": "lo"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_rank_killed_mid_epoch_restarts_from_the_checkpoint_to_the_same_weights(tmp_path):
    reference = torchrun(tmp_path, tmp_path / "reference", "-", -1)
    assert reference.returncode == 0, reference.stderr[-3000:]
    # 1294 training samples, 2 ranks, batch 128: 5 steps per rank and epoch, so step 13 is the third of epoch 2
    ckpt = tmp_path / "run.ckpt"
    faulted = torchrun(tmp_path, tmp_path / "faulted", str(ckpt), 13)
    assert faulted.returncode == 0, faulted.stderr[-3000:]
    assert "failed (exitcode: -9) local_rank: 1" in faulted.stderr  # torchrun saw rank 1 die of SIGKILL
    want = torch.load(tmp_path / "reference" / "rank0.pt", weights_only=False)["model"]
    for rank in (0, 1):
        got = torch.load(tmp_path / "faulted" / f"rank{rank}.pt", weights_only=False)
        # the group was restarted once, and every rank resumed from the epoch finished before the kill
        assert got["attempt"] == 1 and got["resumed_from"] == 1, (rank, got["attempt"], got["resumed_from"])
        # when a rank's epoch ends, rank 0's checkpoint of that epoch is already on disk (the barrier)
        assert got["seen"] == [2, 3], (rank, got["seen"])
        # bit-identical: same shards, same per-rank crops, and a two-rank all-reduce (a + b) has one order only
        assert_same_weights(want, got["model"])


# --- 2. the loss diverges -------------------------------------------------------------------------------------------


class BlowsUpAfterFirstEpoch(sdkit.Method):
    """Cross-entropy multiplied by 1e4 from epoch 1 on: under SGD, the learning rate raised 10,000-fold after a good
    first epoch. Its name is the plain method's, so that a plain run can resume from its checkpoint."""

    def loss(self, model, batch, logits, epoch):
        return super().loss(model, batch, logits, epoch) * (1.0 if epoch == 0 else 1e4)


def test_huge_learning_rate_stops_with_the_epoch_and_step_and_keeps_the_good_checkpoint(tmp_path, digits):
    torch.set_num_threads(1)
    ckpt = tmp_path / "run.pt"
    model = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
    # one-cycle warms up from lr/25 = 4: epoch 0 stays finite, epoch 1 at lr ~80 diverges
    with pytest.raises(TrainingDiverged) as caught:
        sdkit.train(model, digits, lr=100.0, epochs=3, progress=False, device="cpu", checkpoint=ckpt)
    err = caught.value
    message = str(err)
    assert err.epoch == 1 and err.step is not None and not math.isfinite(err.loss)
    assert f"at epoch 1, step {err.step} (learning rate" in message
    assert "learning rate too high" in message and "lower lr" in message
    assert "the model holds the weights of epoch 0" in message.lower() and str(ckpt) in message
    state = sdkit.load_checkpoint(ckpt)
    assert state["epoch"] == 0 and all_finite(state["model"])  # the good epoch, not overwritten with NaN
    assert all_finite(model.state_dict())  # the caller's model holds the last good weights, not NaN
    assert_same_weights(state["best"]["model"], model.state_dict())


def test_diverged_run_resumes_from_its_last_good_checkpoint(tmp_path, digits):
    torch.set_num_threads(1)
    kwargs = dict(lr=0.05, schedule="constant", epochs=3, progress=False, device="cpu")
    ckpt = tmp_path / "run.pt"
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, step \d+ \(learning rate 0\.05\)"):
        model = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
        sdkit.train(model, digits, method=BlowsUpAfterFirstEpoch(), checkpoint=ckpt, **kwargs)
    assert sdkit.load_checkpoint(ckpt)["epoch"] == 0
    resumed = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
    history = sdkit.train(resumed, digits, checkpoint=ckpt, resume=True, **kwargs)
    assert history["epoch"] == [0, 1, 2]
    reference = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
    sdkit.train(reference, digits, **kwargs)
    assert_same_weights(reference.state_dict(), resumed.state_dict())  # epoch 0 was the plain run's epoch 0


def test_first_loss_not_finite_blames_the_data_and_says_the_model_is_untrained(tmp_path, digits):
    huge = dataclasses.replace(digits, train=dataclasses.replace(digits.train, x=digits.train.x * 1e38))
    model = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
    with pytest.raises(TrainingDiverged, match=r"epoch 0, step 0 .*before any update: check the data") as caught:
        sdkit.train(model, huge, epochs=2, progress=False, device="cpu", checkpoint=tmp_path / "run.pt")
    assert "not trained" in str(caught.value)
    assert not (tmp_path / "run.pt").exists()  # nothing was saved


def test_off_cpu_the_epoch_loss_and_the_weights_are_checked_once_per_epoch():
    # on CUDA the guard skips the per-step check (a host sync) and checks the epoch's loss and the weights; the
    # "meta" device stands for any non-CPU device here
    model = torch.nn.Linear(2, 2)
    guard = DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=1.0), None, torch.device("meta"))
    guard.check_loss(torch.tensor(float("nan")), epoch=0, best_state=None)  # not synced per step
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 0 \(checked once per epoch\)"):
        guard.check_epoch(float("nan"), epoch=0, best_state=None)
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(TrainingDiverged, match="the weights are not finite at epoch 0"):
        guard.check_epoch(0.5, epoch=0, best_state=None)


# --- 4. Ctrl-C or SIGTERM during `python -m sdkit run` --------------------------------------------------------------

CLI = ["run", "--model", "mlp", "--generations", "1", "--epochs", "30", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    done = subprocess.run([sys.executable, "-m", "sdkit", *CLI, "--checkpoint-dir", str(folder)],
                          capture_output=True, text=True, timeout=300, env=ONE_THREAD)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return folder


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_cleanly_and_resume_reaches_the_same_weights(tmp_path, uninterrupted, sig, status):
    folder = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, "-m", "sdkit", *CLI, "--checkpoint-dir", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ONE_THREAD)  # fmt: skip
    deadline = time.monotonic() + 240
    while not (folder / "gen0.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)  # at once: 59 of the 60 epochs are still to come
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith(f"sdkit: stopped by {sig.name}; the checkpoints in {folder} hold the last finished")
    assert not list(folder.glob(".*.tmp"))  # no temporary file left behind
    first = sdkit.load_checkpoint(folder / "gen0.pt")  # intact
    assert first["epoch"] >= 0 and all_finite(first["model"])
    # run the command the message gives, as it gives it
    command = shlex.split(lines[0].split("continue with: ", 1)[1])
    assert command[:3] == ["python", "-m", "sdkit"] and command[-1] == "--resume"
    resumed = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, timeout=300,
                             env=ONE_THREAD)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    for name in ("gen0.pt", "gen1.pt"):
        want, got = sdkit.load_checkpoint(uninterrupted / name), sdkit.load_checkpoint(folder / name)
        assert got["epoch"] == want["epoch"] == 29
        assert_same_weights(want["model"], got["model"])
        assert_same_weights(want["best"]["model"], got["best"]["model"])
