"""Kill a training process with SIGKILL partway, resume it, and get bit-identical weights."""

import signal
import subprocess
import sys
import textwrap

import pytest
import torch

import sdkit

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    import sdkit

    out, ckpt, method, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    torch.set_num_threads(1)
    data = sdkit.load_dataset("digits")
    model = sdkit.build_model("cnn", data.input_shape, 10, seed=0, width=0.5)
    methods = {"plain": None, "pskd": sdkit.PSKD(), "ema": sdkit.EMATeacher(ema_decay=0.9)}

    def die(epoch, history):
        if epoch == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    sdkit.train(model, data, method=methods[method], epochs=5, seed=3, progress=False,
                checkpoint=ckpt if ckpt != "-" else None, resume=ckpt != "-", on_epoch_end=die)
    torch.save(model.state_dict(), out)
    """
)


def run(tmp_path, out, ckpt, method, kill_at):
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), str(out), str(ckpt), method, str(kill_at)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.parametrize("method", ["plain", "pskd"])
def test_sigkill_then_resume_is_bit_identical(tmp_path, method):
    reference = run(tmp_path, tmp_path / "reference.pt", "-", method, -1)
    assert reference.returncode == 0, reference.stderr
    ckpt = tmp_path / "run.ckpt"
    killed = run(tmp_path, tmp_path / "never.pt", ckpt, method, 2)
    assert killed.returncode == -signal.SIGKILL and ckpt.exists() and not (tmp_path / "never.pt").exists()
    assert sdkit.load_checkpoint(ckpt)["epoch"] == 2
    resumed = run(tmp_path, tmp_path / "resumed.pt", ckpt, method, -1)
    assert resumed.returncode == 0, resumed.stderr
    a, b = torch.load(tmp_path / "reference.pt"), torch.load(tmp_path / "resumed.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_checkpoint_holds_method_state_and_history(tmp_path, digits):
    model = sdkit.build_model("mlp", digits.input_shape, 10)
    sdkit.train(model, digits, method=sdkit.PSKD(), epochs=2, checkpoint=tmp_path / "c.pt", progress=False)
    state = sdkit.load_checkpoint(tmp_path / "c.pt")
    assert state["epoch"] == 1 and len(state["history"]) == 2 and state["method_name"] == "pskd"
    previous, has = state["method"]["previous"], state["method"]["has_previous"]
    assert previous.shape == (len(digits.train), 10)
    # training drops the last incomplete batch, so a few samples may not have been seen yet
    assert int(has.sum()) >= len(digits.train) - 128
    torch.testing.assert_close(previous[has].sum(-1), torch.ones(int(has.sum())))


def test_bad_checkpoints_are_rejected_clearly(tmp_path, digits):
    mlp = lambda: sdkit.build_model("mlp", digits.input_shape, 10)  # noqa: E731
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="corrupted or truncated"):
        sdkit.train(mlp(), digits, epochs=1, checkpoint=tmp_path / "junk.pt", resume=True, progress=False)
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an sdkit checkpoint"):
        sdkit.load_checkpoint(tmp_path / "foreign.pt")
    good = tmp_path / "good.pt"
    sdkit.train(mlp(), digits, epochs=1, checkpoint=good, progress=False)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupted or truncated"):
        sdkit.load_checkpoint(truncated)
    with pytest.raises(ValueError, match="does not match this model"):
        cnn = sdkit.build_model("cnn", digits.input_shape, 10)
        sdkit.train(cnn, digits, epochs=1, checkpoint=good, resume=True, progress=False)
    with pytest.raises(ValueError, match="epochs=1"):
        sdkit.train(mlp(), digits, epochs=3, checkpoint=good, resume=True, progress=False)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        sdkit.train(mlp(), digits, epochs=1, resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sdkit.load_checkpoint(tmp_path / "missing.pt")
