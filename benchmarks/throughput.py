"""Training and evaluation throughput: the loop most tutorials write vs sdkit's loop, on the same model and data.

(a) naive: a torch Dataset whose ``__getitem__`` applies torchvision per-sample transforms (random crop with
    padding, horizontal flip, normalise), a ``DataLoader`` collating batches, the teacher's forward in the loop.
(b) sdkit: the library itself: ``sdkit.train`` (with ``teacher=`` for distillation) and ``sdkit.predict_logits``.
    The whole split is one tensor on the device, a seeded permutation per epoch, crop and flip applied to whole
    batches (``sdkit.BatchLoader``), channels_last for conv nets, bf16 autocast on CUDA.

Both run one warm-up epoch, then ``--epochs`` timed epochs; the median epoch gives images/second. Each
configuration runs in a fresh subprocess, and its peak memory is measured over the timed part only (VmHWM reset
through /proc/self/clear_refs on Linux; max allocated on CUDA). Prints a table and writes JSON (atomically).

    python benchmarks/throughput.py                      # Fashion-MNIST, small CNN, CPU or GPU
    python benchmarks/throughput.py --device cuda --train-size 60000 --out benchmarks/results/gpu.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import multiprocessing as mp
import queue
import resource
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import sdkit

MODES = ("naive", "sdkit")
TASKS = ("train", "distill", "eval")


class PerSampleDataset(torch.utils.data.Dataset):
    """What a typical tutorial has: uint8 images, transforms applied one sample at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float, augment: bool):
        import torchvision.transforms.v2 as T

        self.images, self.labels = images, labels
        steps = [T.RandomCrop(images.shape[-1], padding=2), T.RandomHorizontalFlip()] if augment else []
        self.transform = T.Compose([*steps, T.ToDtype(torch.float32, scale=True), T.Normalize([mean], [std])])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def uint8_images(split: sdkit.Split, data: sdkit.Data) -> torch.Tensor:
    """The split's images back as uint8 pixels, the form a torchvision dataset hands to per-sample transforms."""
    return (data.denormalize(split.x) * 255).round().clamp(0, 255).to(torch.uint8)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_job(args: dict) -> tuple[torch.device, sdkit.Dataset, torch.nn.Module, torch.nn.Module]:
    """The device, the data, the student (seed 0) and its frozen teacher (seed 1): the same job for every loop."""
    torch.manual_seed(0)
    device = sdkit.pick_device(args["device"])
    data = sdkit.load_dataset(args["dataset"], train_size=args["train_size"])
    shape, classes = data.input_shape, data.num_classes
    student = sdkit.build_model(args["model"], shape, classes, width=args["width"], seed=0).to(device)
    teacher = sdkit.frozen_copy(sdkit.build_model(args["model"], shape, classes, width=args["width"], seed=1))
    return device, data, student, teacher.to(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start the peak-memory measurement here, after the data is loaded, so that it covers the training only."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _reset_peak_rss()


def time_epochs(
    epoch: Callable[[], object], epochs: int, device: torch.device, cpu_seconds: list[float] | None = None
) -> list[float]:
    """Wall seconds of ``epochs`` calls of ``epoch`` after one untimed warm-up call (allocator, oneDNN caches).
    With ``cpu_seconds``, each timed call's CPU time in this process is appended to it."""
    seconds, cpu = [], []
    for _ in range(1 + epochs):
        start, start_cpu = time.perf_counter(), time.process_time()
        epoch()
        _sync(device)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    if cpu_seconds is not None:
        cpu_seconds.extend(cpu[1:])
    return seconds[1:]


def measured_row(
    epoch_seconds: list[float],
    images: int,
    device: torch.device,
    epoch_cpu_seconds: list[float] | None = None,
    **labels,
) -> dict:
    """One result row: ``labels``, images/second of the median epoch and the peak memory since
    :func:`reset_peak_memory`; with ``epoch_cpu_seconds`` also images per CPU-second of the median epoch."""
    # the median epoch: one epoch slowed down by another process on a shared machine does not move it
    median = statistics.median(epoch_seconds)
    peak_mb = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _peak_rss_mb()
    row = labels | {"images_per_second": images / median, "epoch_seconds": epoch_seconds, "images_per_epoch": images,
                    "peak_memory_mb": peak_mb, "device": str(device)}  # fmt: skip
    if epoch_cpu_seconds is not None:
        row |= {"epoch_cpu_seconds": epoch_cpu_seconds,
                "images_per_cpu_second": images / statistics.median(epoch_cpu_seconds)}  # fmt: skip
    return row


def run_isolated(target: Callable, *args) -> dict:
    """``target(*args, queue)`` in a fresh spawned process (its own allocator, caches and peak memory); returns
    what it put on the queue, or raises if the process died without a result."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, results))
    proc.start()
    while True:
        try:
            row = results.get(timeout=1.0)
            break
        except queue.Empty:
            if not proc.is_alive():
                raise RuntimeError(f"the benchmark process for {args[:-1]} exited with code {proc.exitcode}") from None
    proc.join()
    return row


def _run_one(mode: str, task: str, args: dict, results) -> None:
    device, data, student, teacher = build_job(args)
    bs, epochs = args["batch_size"], args["epochs"]
    split = data.test if task == "eval" else data.train
    reset_peak_memory(device)
    if mode == "naive":
        epoch_seconds = naive_loop(task, student, teacher, data, split, bs, epochs, device, args["workers"])
    elif task == "eval":
        epoch_seconds = time_epochs(lambda: sdkit.predict_logits(student, split.x, batch_size=bs), epochs, device)
    else:  # the library's own loop; History records each epoch's training time (validation excluded)
        objective = {"teacher": teacher, "T": 4.0, "alpha": 0.9} if task == "distill" else {}
        history = sdkit.train(
            student, data, **objective, epochs=1 + epochs, batch_size=bs, device=device, progress=False
        )  # fmt: skip
        epoch_seconds = history["seconds"][1:]
    results.put(measured_row(epoch_seconds, len(split), device, mode=mode, task=task))


def tutorial_kd_loss(logits, teacher_logits, labels, T: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Hinton et al.'s loss as a tutorial writes it inline: ``alpha T^2 KL(p_T || q_T) + (1 - alpha) CE``."""
    log_q, log_p = F.log_softmax(logits / T, -1), F.log_softmax(teacher_logits / T, -1)
    soft = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
    return alpha * T * T * soft + (1 - alpha) * F.cross_entropy(logits, labels)


def naive_loop(
    task: str,
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    data: sdkit.Dataset,
    split: sdkit.Split,
    bs: int,
    epochs: int,
    device: torch.device,
    workers: int,
    T: float = 4.0,
    alpha: float = 0.9,
    cpu_seconds: list[float] | None = None,
) -> list[float]:
    """The loop the seed's snippet implies: per-sample transforms in a DataLoader, teacher forward in the loop.
    Returns the seconds of ``epochs`` timed epochs after a warm-up epoch (CPU seconds: see :func:`time_epochs`)."""
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    dataset = PerSampleDataset(uint8_images(split, data), split.y, data.mean[0], data.std[0], augment=task != "eval")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=bs, shuffle=task != "eval", num_workers=workers, pin_memory=device.type == "cuda"
    )

    def epoch():
        if task == "eval":
            student.eval()
            with torch.no_grad():
                for x, _ in loader:
                    student(x.to(device))
            return
        student.train()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = student(x)
            if task == "distill":
                with torch.no_grad():
                    teacher_logits = teacher(x)
                loss = tutorial_kd_loss(logits, teacher_logits, y, T, alpha)
            else:
                loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    return time_epochs(epoch, epochs, device, cpu_seconds)


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM, so the peak below covers the timed epochs, not data loading
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_rss_mb() -> float:
    """Peak resident memory since :func:`_reset_peak_rss` (VmHWM), or over the process' life elsewhere."""
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args: dict) -> dict:
    rows = []
    for task in args["tasks"]:
        for mode in MODES:
            row = run_isolated(_run_one, mode, task, args)
            rows.append(row)
            print(f"  {task:<8} {mode:<6} {row['images_per_second']:>10.0f} img/s  peak {row['peak_memory_mb']:.0f} MB",
                  flush=True)  # fmt: skip
    ratios = {}
    for task in args["tasks"]:
        by = {r["mode"]: r for r in rows if r["task"] == task}
        ratios[task] = by["sdkit"]["images_per_second"] / by["naive"]["images_per_second"]
    per_mode = {m: {r["task"]: r["images_per_second"] for r in rows if r["mode"] == m} for m in MODES}
    distill_cost = {m: v["train"] / v["distill"] for m, v in per_mode.items() if "train" in v and "distill" in v}
    return {"rows": rows, "speedup_sdkit_over_naive": ratios, "distill_epoch_cost_vs_plain": distill_cost}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--model", default="cnn")
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up; the median counts")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes for the naive loop")
    p.add_argument("--device", default="auto")
    p.add_argument("--tasks", default="train,distill,eval")
    p.add_argument("--out", default="benchmarks/results/throughput_cpu.json")
    a = p.parse_args(argv)
    args = vars(a) | {"tasks": [t for t in a.tasks.split(",") if t]}
    bad = [t for t in args["tasks"] if t not in TASKS]
    if bad:
        p.error(f"unknown task(s) {bad}; choose from {list(TASKS)}")
    device = sdkit.pick_device(a.device)
    print(f"{a.dataset}, {a.model} width {a.width}, batch {a.batch_size}, {a.train_size} train images, {device}")
    result = run(args)
    print(f"\n{'task':<9}{'naive img/s':>13}{'sdkit img/s':>13}{'speed-up':>10}")
    for task, ratio in result["speedup_sdkit_over_naive"].items():
        by = {r["mode"]: r for r in result["rows"] if r["task"] == task}
        print(f"{task:<9}{by['naive']['images_per_second']:>13.0f}{by['sdkit']['images_per_second']:>13.0f}"
              f"{ratio:>9.2f}x")  # fmt: skip
    for mode, cost in result["distill_epoch_cost_vs_plain"].items():
        print(f"distillation epoch / plain epoch ({mode}): {cost:.2f}x")
    result |= {
        "config": {k: v for k, v in args.items() if k != "out"},
        "command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": sdkit.machine_info(device),
    }
    sdkit.atomic_write_json(a.out, result)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
