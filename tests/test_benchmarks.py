"""The throughput benchmark: both loops optimise the same objective, and a tiny run writes a complete result."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import load_script

import sdkit

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark():
    return load_script("throughput")


def test_the_naive_loop_distils_with_the_same_loss_as_sdkit():
    tp = _load_benchmark()
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(32, 10, generator=g), torch.randn(32, 10, generator=g)
    y = torch.randint(0, 10, (32,), generator=g)
    expected = sdkit.distillation_loss(s, t, y, T=4.0, alpha=0.9)
    torch.testing.assert_close(tp.tutorial_kd_loss(s, t, y), expected)


def test_a_tiny_run_measures_every_task_and_writes_json(run_benchmark):
    args = "--dataset digits --width 0.25 --train-size 300 --batch-size 64 --epochs 2 --device cpu"
    result, stdout = run_benchmark("throughput.py", args)
    rows = {(r["mode"], r["task"]): r for r in result["rows"]}
    assert set(rows) == {(m, t) for m in ("naive", "sdkit") for t in ("train", "distill", "eval")}
    for r in rows.values():
        assert len(r["epoch_seconds"]) == 2 and all(s > 0 for s in r["epoch_seconds"])
        median = sorted(r["epoch_seconds"])[0] / 2 + sorted(r["epoch_seconds"])[1] / 2
        assert r["images_per_second"] == pytest.approx(r["images_per_epoch"] / median)
        assert r["peak_memory_mb"] > 0
    for task in ("train", "distill", "eval"):
        ratio = rows[("sdkit", task)]["images_per_second"] / rows[("naive", task)]["images_per_second"]
        assert result["speedup_sdkit_over_naive"][task] == pytest.approx(ratio)
    data = sdkit.load_dataset("digits", train_size=300)
    assert rows[("naive", "eval")]["images_per_epoch"] == len(data.test)
    assert rows[("sdkit", "train")]["images_per_epoch"] == len(data.train) == 300
    assert result["machine"]["cpu_count"] >= 1 and "--train-size 300" in result["command"]
    assert "speed-up" in stdout


def test_unknown_task_is_rejected_with_the_valid_names():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--tasks", "train,fly"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 2 and "fly" in proc.stderr and "distill" in proc.stderr
