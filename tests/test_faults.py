"""Faults a long run meets, each produced for real rather than mocked.

* a full disk and a read-only folder: a small tmpfs mounted in a private mount namespace (``unshare -m``);
* damaged data files: real IDX/gzip and CIFAR pickle files, cut or with bytes flipped on disk;
* two processes writing the same result file while a third reads it;
* planted checkpoint and CIFAR files whose unpickling would run code.
"""

from __future__ import annotations

import builtins
import gzip
import json
import multiprocessing
import os
import pickle
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import sdkit
import sdkit.datasets as sdatasets
from sdkit.checkpoint import FORMAT

REQUIRE_FAULT_TESTS = "SDKIT_REQUIRE_FAULT_TESTS"

# ---------------------------------------------------------------------------------------------------- full disk


def _namespace_problem(folder: Path) -> str | None:
    """Why a private mount namespace with a tmpfs cannot be made here, or None when it can."""
    if shutil.which("unshare") is None:
        return "the unshare command (util-linux) is not installed"
    folder.mkdir(exist_ok=True)
    probe = subprocess.run(["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=64k none "$1"', "sh", str(folder)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a private mount namespace (needs root or user namespaces): {probe.stderr}"
    return None


@pytest.fixture
def private_mounts(tmp_path: Path) -> Path:
    """A folder in which a subprocess started under ``unshare -m`` may mount a tmpfs. Skips with the reason when
    mount namespaces are unavailable, except under ``$SDKIT_REQUIRE_FAULT_TESTS=1`` (CI), where that fails."""
    problem = _namespace_problem(tmp_path / "probe")
    if problem:
        if os.environ.get(REQUIRE_FAULT_TESTS) == "1":
            pytest.fail(f"{problem} (${REQUIRE_FAULT_TESTS}=1 makes the fault tests required)")
        pytest.skip(problem)
    folder = tmp_path / "disk"
    folder.mkdir()
    return folder


# Runs inside the namespace: mounts a 512 KiB tmpfs, writes small good files, optionally makes the tmpfs
# read-only, then tries writes that cannot succeed and reports what happened as JSON on stdout.
FULL_DISK_SCRIPT = textwrap.dedent(
    """
    import json, os, subprocess, sys
    import torch
    import sdkit

    folder, mode = sys.argv[1], sys.argv[2]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "none", folder], check=True)
    small = {"epoch": 0, "model": {"w": torch.ones(10)}, "optimizer": {}, "scheduler": {}, "loader_rng": {},
             "method": {}, "history": [], "best": {}}
    sdkit.atomic_write_json(f"{folder}/result.json", {"accuracy": 0.9})
    sdkit.save_checkpoint(f"{folder}/run.pt", small)
    good_checkpoint = open(f"{folder}/run.pt", "rb").read()
    if mode == "readonly":
        subprocess.run(["mount", "-o", "remount,ro", folder], check=True)
    big = {**small, "model": {"w": torch.zeros(300_000)}}  # 1.2 MB: more than the 512 KiB tmpfs holds
    attempts = {
        "json": lambda: sdkit.atomic_write_json(f"{folder}/result.json", {"values": list(range(200_000))}),
        "checkpoint": lambda: sdkit.save_checkpoint(f"{folder}/run.pt", big),
        "new_file": lambda: sdkit.atomic_torch_save(f"{folder}/new.pt", torch.zeros(300_000)),
        "new_folder": lambda: sdkit.atomic_write_json(f"{folder}/sub/r.json", {"values": list(range(200_000))}),
    }
    report = {}
    for name, attempt in attempts.items():
        try:
            attempt()
            report[name] = None
        except OSError as err:
            report[name] = {"type": type(err).__name__, "message": str(err), "errno": err.errno}
    report["files"] = sorted(os.listdir(folder))
    report["json_after"] = json.load(open(f"{folder}/result.json"))
    report["checkpoint_intact"] = open(f"{folder}/run.pt", "rb").read() == good_checkpoint
    report["checkpoint_loads"] = sdkit.load_checkpoint(f"{folder}/run.pt")["epoch"] == 0
    print(json.dumps(report))
    """
)


@pytest.mark.parametrize(
    ("mode", "reason"), [("full", "no space left on device"), ("readonly", "read-only file system")]
)
def test_full_or_read_only_disk_keeps_the_previous_file(private_mounts, tmp_path, mode, reason):
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK_SCRIPT)
    done = subprocess.run(["unshare", "-m", sys.executable, str(script), str(private_mounts), mode],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    disk = str(private_mounts)
    for name, what, path, previous in [
        ("json", "JSON file", "result.json", "the previous file is intact"),
        ("checkpoint", "checkpoint", "run.pt", "the previous file is intact"),
        ("new_file", "file", "new.pt", "no file was created"),
        ("new_folder", "JSON file", "sub/r.json", "no file was created"),
    ]:
        assert report[name] is not None, f"{name}: the write should have failed"
        assert report[name]["message"].startswith(f"could not write {what} {disk}/{path}: {reason} ({previous}); ")
    assert report["checkpoint"]["errno"] == (28 if mode == "full" else 30)  # ENOSPC / EROFS, still readable
    # the previous files are whole, and no temporary file was left behind
    assert report["json_after"] == {"accuracy": 0.9}
    assert report["checkpoint_intact"] and report["checkpoint_loads"]
    expected = ["result.json", "run.pt"] + (["sub"] if mode == "full" else [])
    assert report["files"] == expected


# ---------------------------------------------------------------------------------------------------- damaged data


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    """An IDX file exactly as the MNIST/Fashion-MNIST distributions ship it (uint8, big-endian dimensions)."""
    payload = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def fashion_mnist_folder(folder: Path, compress: bool) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (60, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(60) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(20) % 10,
    }
    return {stem: write_idx(folder / stem, array, compress) for stem, array in arrays.items()}


def cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_bytes(path: Path, start: int, count: int = 16) -> None:
    data = bytearray(path.read_bytes())
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("compress", "damage"),
    [
        (True, cut_in_half),
        (True, lambda path: flip_bytes(path, path.stat().st_size // 2)),  # inside the deflate stream
        (False, cut_in_half),
        (False, lambda path: flip_bytes(path, 4, 4)),  # the first dimension in the header
    ],
    ids=["gzip-cut", "gzip-flipped", "idx-cut", "idx-header-flipped"],
)
def test_damaged_idx_file_is_named_with_how_to_fetch_it_again(tmp_path, compress, damage):
    files = fashion_mnist_folder(tmp_path, compress)
    sdkit.load_dataset("fashion-mnist", tmp_path)  # intact: loads
    damaged = files["train-images-idx3-ubyte"]
    damage(damaged)
    with pytest.raises(ValueError, match="damaged") as caught:
        sdkit.load_dataset("fashion-mnist", tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{damaged} is damaged: ")
    assert message.endswith("delete it and pass download=True (CLI: --download) to fetch it again, "
                            "or replace it with an intact copy")  # fmt: skip


def test_damaged_debian_file_says_reinstall_the_package(tmp_path, monkeypatch):
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    files = fashion_mnist_folder(debian, compress=True)
    monkeypatch.setattr(sdatasets, "DEBIAN_FASHION_MNIST", debian)  # where the loader looks for Debian's copy
    cut_in_half(files["t10k-labels-idx1-ubyte"])
    with pytest.raises(ValueError, match=r"sudo apt-get install --reinstall dataset-fashion-mnist") as caught:
        sdkit.load_dataset("fashion-mnist", tmp_path / "empty-root")
    assert str(files["t10k-labels-idx1-ubyte"]) in str(caught.value)


def write_cifar10(root: Path) -> Path:
    """CIFAR-10's python batches: pickles of dicts with a uint8 (N, 3072) array and a list of int labels."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "batch_label": name,
            "labels": [int(v) for v in rng.integers(0, 10, 8)],
            "data": rng.integers(0, 256, (8, 3072), dtype=np.uint8),
            "filenames": [f"{name}_{i}.png" for i in range(8)],
        }
        # the official files are protocol-2 pickles of these dicts written under numpy 1, which names its array
        # constructor numpy.core.multiarray._reconstruct (numpy 2 writes numpy._core): write that name
        data = pickle.dumps(batch, protocol=2).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
        assert b"cnumpy.core.multiarray\n_reconstruct\n" in data
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("damage", [cut_in_half, lambda path: flip_bytes(path, 0, 2)], ids=["cut", "header-flipped"])
def test_damaged_cifar_batch_is_named_with_how_to_fetch_it_again(tmp_path, damage):
    folder = write_cifar10(tmp_path)
    assert len(sdkit.load_dataset("cifar10", tmp_path).test) == 8  # intact: loads
    damage(folder / "data_batch_3")
    with pytest.raises(ValueError) as caught:
        sdkit.load_dataset("cifar10", tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{folder / 'data_batch_3'} is damaged: ")
    assert "delete it and pass download=True" in message


# ---------------------------------------------------------------------------------------------------- two writers


def _write_repeatedly(path: str, writer: int, rounds: int, size: int) -> None:
    for i in range(rounds):
        sdkit.atomic_write_json(path, {"writer": writer, "round": i, "values": [writer] * size, "end": "complete"})


def test_two_processes_writing_one_result_file_leave_it_whole(tmp_path):
    path = tmp_path / "result.json"
    rounds, size = 200, 20_000  # each file is about 140 kB of indented JSON: many pages, many write() calls
    sdkit.atomic_write_json(path, {"writer": 0, "round": -1, "values": [0] * size, "end": "complete"})
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    writers = [context.Process(target=_write_repeatedly, args=(str(path), w, rounds, size)) for w in (1, 2)]
    for process in writers:
        process.start()
    reads, invalid, seen = 0, [], set()
    while any(p.is_alive() for p in writers):  # this process reads while the two others write
        text = path.read_text()
        reads += 1
        try:
            content = json.loads(text)
        except json.JSONDecodeError as err:
            invalid.append(f"{err} in {len(text)} characters")
            continue
        writer = content["writer"]
        seen.add(writer)
        assert content["end"] == "complete" and content["values"] == [writer] * size
    for process in writers:
        process.join(timeout=300)
    assert [p.exitcode for p in writers] == [0, 0]
    assert not invalid, f"{len(invalid)} of {reads} reads saw invalid JSON: {invalid[:3]}"
    assert reads > 0 and seen - {0}, "the reader never saw a writer's file"
    final = json.loads(path.read_text())
    assert final["writer"] in (1, 2) and final["round"] == rounds - 1
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind


# ---------------------------------------------------------------------------------------------------- planted files


class Planted:
    """An object whose unpickling runs code: it touches ``marker`` (through ``os.system`` or ``builtins.exec``)."""

    def __init__(self, marker: Path, via: str) -> None:
        self.marker, self.via = marker, via

    def __reduce__(self):
        if self.via == "os.system":
            return os.system, (f"touch {self.marker}",)
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("via", ["os.system", "builtins.exec"])
def test_planted_checkpoint_is_refused_without_running_code(tmp_path, digits, via):
    marker = tmp_path / "MARKER"
    planted = tmp_path / "planted.pt"
    state = {"format": FORMAT, "epoch": 0, "epochs": 1, "model": {}, "optimizer": {}, "scheduler": {},
             "loader_rng": {}, "method": {"x": Planted(marker, via)}, "history": [], "best": {}}  # fmt: skip
    torch.save(state, planted)
    # the plant works: an unsafe load runs its code (on another marker)
    control = tmp_path / "CONTROL"
    torch.save({"x": Planted(control, via)}, tmp_path / "control.pt")
    torch.load(tmp_path / "control.pt", weights_only=False)
    assert control.exists()
    called = "posix.system" if via == "os.system" else "(builtins.)?exec"  # torch names builtins without module
    with pytest.raises(ValueError, match=f"checkpoint {planted} was refused: loading it would call {called},"):
        sdkit.load_checkpoint(planted)
    model = sdkit.build_model("mlp", digits.input_shape, 10)
    with pytest.raises(ValueError, match="was refused"):
        sdkit.train(model, digits, epochs=1, checkpoint=planted, resume=True, progress=False)
    assert not marker.exists()


@pytest.mark.parametrize("via", ["os.system", "builtins.exec"])
def test_planted_cifar_batch_is_refused_without_running_code(tmp_path, via):
    folder = write_cifar10(tmp_path)
    marker = tmp_path / "MARKER"
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({"data": Planted(marker, via), "labels": [0] * 8}, f, protocol=2)
    with open(tmp_path / "control", "wb") as f:
        pickle.dump(Planted(tmp_path / "CONTROL", via), f)
    with open(tmp_path / "control", "rb") as f:
        pickle.load(f)  # the plant works: plain pickle.load runs its code (on another marker)
    assert (tmp_path / "CONTROL").exists()
    called = "posix.system" if via == "os.system" else "builtins.exec"
    with pytest.raises(ValueError, match=f"would call {called}, which a CIFAR batch never holds") as caught:
        sdkit.load_dataset("cifar10", tmp_path)
    assert str(caught.value).startswith(f"{folder / 'data_batch_2'} is not a CIFAR file")
    assert not marker.exists()


class Interrupt(Exception):
    pass


def test_real_checkpoint_loads_safely_and_resumes_bit_identically(tmp_path, digits):
    torch.set_num_threads(1)
    kwargs = dict(epochs=3, seed=3, progress=False, device="cpu")
    reference = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
    sdkit.train(reference, digits, method=sdkit.PSKD(), **kwargs)

    def stop_after_epoch_1(epoch, history):
        if epoch == 1:
            raise Interrupt

    ckpt = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        model = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
        sdkit.train(model, digits, method=sdkit.PSKD(), checkpoint=ckpt, on_epoch_end=stop_after_epoch_1, **kwargs)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1  # the safe loader reads it with no allow-list
    resumed = sdkit.build_model("mlp", digits.input_shape, 10, seed=0)
    sdkit.train(resumed, digits, method=sdkit.PSKD(), checkpoint=ckpt, resume=True, **kwargs)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
