"""Against a real peer: sdkit and torchdistill on the same distillation job, timed epoch by epoch.

Every configuration trains the same student from the same teacher (``build_job`` of benchmarks/throughput.py: the
same model, width, seeds and data tensors) on the same objective: Hinton's KD with hard labels,
``(1 - alpha) CE + alpha T^2 KL(teacher || student)`` in sdkit's convention, which is torchdistill's ``KDLoss``
with its ``alpha`` (the weight of the hard term) set to ``1 - alpha`` (tests/test_peers.py checks the mapping),
SGD with Nesterov momentum and the same learning rate, weight decay and one-cycle schedule stepped per batch, the
same batch size and the dataset's own augmentation (random crop and flip for Fashion-MNIST):

(1) naive: throughput.py's tutorial loop (per-sample transforms, a DataLoader, the teacher's forward in the loop).
(2) torchdistill: as its examples run it (examples/torchvision/image_classification.py): a torchvision-style
    dataset (a PIL image made per sample, torchvision transforms), the DataLoader, distillation box, optimizer and
    scheduler that ``get_distillation_box`` builds from a config, the teacher in eval mode, and the example's loop
    (``pre_epoch_process``, ``forward_process``, ``post_forward_process``, ``loss.item()`` for its logger).
(3) torchdistill-fed: the same box fed sdkit's device-resident batches (``sdkit.BatchLoader``, crop and flip on
    whole batches), so that (2) -> (3) is the data pipeline and (3) -> (4) the training step's own overhead;
    torchdistill-fed-cl: the same, with both models and the batches in the channels_last memory format, as
    ``sdkit.train`` converts convolutional models, which splits that overhead into memory layout and loop.
(4) sdkit: ``sdkit.train(student, data, teacher=teacher, T=..., alpha=...)``, given as ``method=`` the ``Distill``
    that ``teacher=`` builds, subclassed only to read the CPU clock at the end of each epoch.

Operators per step (``benchmarks/step_ops.py``: the top-level ATen operators torch.profiler records per training
step) of sdkit and of the box fed the same batches, in both memory formats and with each optimizer default, are
counted with every run and stored under ``ops_per_step``: on a GPU, where this small model is launch-bound, they
are what a step costs. ``device_memory`` accounts for the device memory the two loops hold, in numbers computed
here (see :func:`device_memory`): on an H200 (``--device cuda --train-size 20000``) sdkit's peak was 648 MB and the
box's 161 MB.

One warm-up epoch, then ``--epochs`` timed epochs, timed by the wall clock and by this process' CPU time (which
other jobs on a shared machine move far less; with ``--workers 0``, the default, it covers all the work), each
mode in a fresh process with its peak memory measured over the training only (throughput.py's ``run_isolated``,
``reset_peak_memory``). ``--rounds R`` runs all modes R times, interleaved, and takes the median of every timed
epoch of a mode: on a shared machine a burst of load then falls on every mode alike. ``--threads 1`` keeps torch
from spin-waiting for a second thread that another job holds. Prints a table and writes JSON atomically, with the
machine and its load average before and after.

    pip install -e ".[peers]"                     # torchdistill, for modes (2) and (3)
    python benchmarks/peers.py --rounds 3 --epochs 2 --threads 1 --out benchmarks/results/peers_cpu.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import sdkit
from sdkit.book import performance

if str(Path(__file__).resolve().parent) not in sys.path:  # throughput.py, also when loaded by path (tests, book)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput as tp  # noqa: E402

MODES = ("naive", "torchdistill", "torchdistill-fed", "torchdistill-fed-cl", "sdkit")
LABELS = {
    "naive": "naive loop (tutorial)",
    "torchdistill": "torchdistill, as its examples run it",
    "torchdistill-fed": "torchdistill fed sdkit's batches",
    "torchdistill-fed-cl": "  + models in channels_last",
    "sdkit": "sdkit.train",
}
PEERS_EXTRA = 'pip install -e ".[peers]"'
# sdkit.train's defaults, passed to every loop explicitly so that all of them optimise the same way
LR, MOMENTUM, WEIGHT_DECAY, WARMUP = 0.1, 0.9, 5e-4, 0.25


def torchdistill_available() -> bool:
    """Whether the peer is installed (modes 2 and 3 need it; the others and the helpers here do not)."""
    return importlib.util.find_spec("torchdistill") is not None


class TorchvisionStyleDataset(torch.utils.data.Dataset):
    """A training split the way torchvision's MNIST/FashionMNIST/CIFAR10 datasets hold and serve it: uint8 pixels
    (channels last), a PIL image made in ``__getitem__``, then the transforms of the config, one sample at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.data = images.permute(0, 2, 3, 1).numpy()
        if self.data.shape[-1] == 1:  # grey images are 2-D arrays in torchvision (PIL mode "L")
            self.data = self.data[..., 0]
        self.targets = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(np.ascontiguousarray(self.data[i]))), self.targets[i]


def torchvision_transform(data: sdkit.Dataset):
    """The per-sample transforms an example config lists for this dataset: sdkit's augmentation (crop with padding,
    flip), ``ToTensor`` and ``Normalize`` with the dataset's statistics."""
    import torchvision.transforms as T

    steps = []
    if data.augment.crop_padding:
        steps.append(T.RandomCrop(data.input_shape[-1], padding=data.augment.crop_padding))
    if data.augment.flip:
        steps.append(T.RandomHorizontalFlip(p=0.5))
    return T.Compose([*steps, T.ToTensor(), T.Normalize(list(data.mean), list(data.std))])


def torchdistill_train_config(
    *, T: float, alpha: float, batch_size: int, steps: int, epochs: int, workers: int = 0, data_loader: bool = True
) -> dict[str, Any]:
    """The ``train`` section of a torchdistill config (what its YAML loads to) for Hinton KD with hard labels.

    ``alpha`` is sdkit's (the weight of the soft term); torchdistill's ``KDLoss`` takes the weight of the hard
    term, so it gets ``1 - alpha`` and weights the soft term with its default ``beta = 1 - (1 - alpha)``.
    ``steps``: optimizer steps in the whole run, for the one-cycle schedule stepped per batch
    (``scheduling_step: 1``). ``data_loader=False`` leaves the loader out (the box is then fed batches).
    """
    kd = {"student_module_path": ".", "student_module_io": "output", "teacher_module_path": ".",
          "teacher_module_io": "output", "temperature": T, "alpha": 1.0 - alpha, "reduction": "batchmean"}  # fmt: skip
    config = {
        "num_epochs": epochs,
        # torchdistill 1.1.5 has no default forward_proc (get_forward_proc_func(None) raises): name the plain one
        "teacher": {"forward_proc": "forward_batch_only", "requires_grad": False},
        "student": {"forward_proc": "forward_batch_only", "requires_grad": True},
        "optimizer": {
            "key": "SGD",
            "kwargs": {"lr": LR, "momentum": MOMENTUM, "nesterov": True, "weight_decay": WEIGHT_DECAY},
        },
        "scheduler": {
            "key": "OneCycleLR",
            "kwargs": {"max_lr": LR, "total_steps": steps, "pct_start": WARMUP},
            "scheduling_step": 1,
        },
        "criterion": {
            "key": "WeightedSumLoss",
            "kwargs": {"sub_terms": {"kd": {"criterion": {"key": "KDLoss", "kwargs": kd}, "weight": 1.0}}},
        },
    }
    if data_loader:
        config["train_data_loader"] = {
            "dataset_id": "train",
            "sampler": {"class_or_func": torch.utils.data.RandomSampler, "kwargs": None},
            "kwargs": {"batch_size": batch_size, "num_workers": workers, "drop_last": False},
        }
    return config


def distillation_box(teacher, student, train_config: dict, device: torch.device, dataset: Any = None):
    """torchdistill's ``get_distillation_box`` as its example script calls it (single process, no accelerator)."""
    from torchdistill.core.distillation import get_distillation_box

    datasets = {} if dataset is None else {"train": dataset}
    return get_distillation_box(teacher, student, datasets, train_config, device, None, False, 1)


def torchdistill_epoch(box, batches, device: torch.device, epoch: int) -> None:
    """One epoch of torchdistill's example loop (``train_one_epoch`` between the box's pre/post-epoch hooks),
    without its text logger; ``batches`` yields ``(images, labels, supp_dict)`` like the box's own loader."""
    box.pre_epoch_process(epoch=epoch)
    for sample_batch, targets, supp_dict in batches:
        sample_batch, targets = sample_batch.to(device), targets.to(device)
        loss = box.forward_process(sample_batch, targets, supp_dict)
        box.post_forward_process(loss=loss)
        loss.item()  # the example logs the loss every step
    box.post_epoch_process()


def _torchdistill_run(mode: str, args: dict, student, teacher, data: sdkit.Dataset, device, cpu: list) -> list[float]:
    bs, epochs, runs = args["batch_size"], args["epochs"], 1 + args["epochs"]
    if mode == "torchdistill":
        split = data.train
        dataset = TorchvisionStyleDataset(tp.uint8_images(split, data), split.y, torchvision_transform(data))
        steps = runs * -(-len(dataset) // bs)
        config = torchdistill_train_config(T=args["T"], alpha=args["alpha"], batch_size=bs, steps=steps,
                                           epochs=runs, workers=args["workers"])  # fmt: skip
        box = distillation_box(teacher, student, config, device, dataset)
        batches = lambda: box.train_data_loader
    else:
        channels_last = mode == "torchdistill-fed-cl"
        if channels_last:
            student.to(memory_format=torch.channels_last)
            teacher.to(memory_format=torch.channels_last)
        # drop_last as sdkit.train sets it, so that (3) and (4) run the same steps on the same batches
        loader = sdkit.BatchLoader(data.train, bs, augment=data.augment, device=device,
                                   drop_last=len(data.train) > bs, channels_last=channels_last)  # fmt: skip
        config = torchdistill_train_config(
            T=args["T"], alpha=args["alpha"], batch_size=bs, steps=runs * len(loader), epochs=runs, data_loader=False
        )
        box = distillation_box(teacher, student, config, device)
        batches = lambda: ((b.x, b.y, {}) for b in loader)
    epoch = iter(range(runs))
    return tp.time_epochs(lambda: torchdistill_epoch(box, batches(), device, next(epoch)), epochs, device, cpu)


class _CPUTimedDistill(sdkit.Distill):
    """``sdkit.train(teacher=...)``'s own method (``Distill``, what ``teacher=`` builds), noting the CPU clock in
    ``end_epoch``, which train calls right after an epoch's last step: from the ``on_epoch_end`` callback of the
    epoch before (after its validation) to there is the epoch's training CPU time, validation left out as it is
    from History's wall seconds."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.marks: list[tuple[float, float]] = []  # (start, end) process time of each epoch's training
        self.start = time.process_time()

    def end_epoch(self, model, epoch: int) -> None:
        self.marks.append((self.start, time.process_time()))
        super().end_epoch(model, epoch)

    def next_epoch(self, epoch: int, history) -> None:
        self.start = time.process_time()


def _sdkit_run(args: dict, student, teacher, data: sdkit.Dataset, device, cpu: list) -> list[float]:
    method = _CPUTimedDistill(teacher, T=args["T"], alpha=args["alpha"])
    history = sdkit.train(
        student, data, method=method, epochs=1 + args["epochs"], batch_size=args["batch_size"], lr=LR,
        momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, device=device, progress=False, on_epoch_end=method.next_epoch,
    )  # fmt: skip
    cpu.extend(end - start for start, end in method.marks[1:])
    return history["seconds"][1:]  # each epoch's training time, validation excluded


def _run_one(mode: str, args: dict, results) -> None:
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    device, data, student, teacher = tp.build_job(args)
    tp.reset_peak_memory(device)
    cpu: list[float] = []  # CPU seconds of each timed epoch: less moved by other jobs than wall time
    if mode == "naive":
        epoch_seconds = tp.naive_loop("distill", student, teacher, data, data.train, args["batch_size"],
                                      args["epochs"], device, args["workers"], args["T"], args["alpha"],
                                      cpu_seconds=cpu)  # fmt: skip
    elif mode == "sdkit":
        epoch_seconds = _sdkit_run(args, student, teacher, data, device, cpu)
    else:
        epoch_seconds = _torchdistill_run(mode, args, student, teacher, data, device, cpu)
    results.put(tp.measured_row(epoch_seconds, len(data.train), device, cpu, mode=mode))


def merge_rounds(rows: list[dict]) -> list[dict]:
    """One row per mode (first-seen order) from the rows of several rounds: all their timed epochs, images/second
    of the median epoch, the highest peak memory."""
    merged: dict[str, dict] = {}
    for r in rows:
        m = merged.setdefault(r["mode"], r | {"epoch_seconds": [], "epoch_cpu_seconds": [], "peak_memory_mb": 0.0})
        m["epoch_seconds"] = m["epoch_seconds"] + r["epoch_seconds"]
        m["epoch_cpu_seconds"] = m["epoch_cpu_seconds"] + r["epoch_cpu_seconds"]
        m["peak_memory_mb"] = max(m["peak_memory_mb"], r["peak_memory_mb"])
    for m in merged.values():
        m["images_per_second"] = m["images_per_epoch"] / statistics.median(m["epoch_seconds"])
        m["images_per_cpu_second"] = m["images_per_epoch"] / statistics.median(m["epoch_cpu_seconds"])
    return list(merged.values())


def speedups(rows: list[dict], key: str = "images_per_second") -> dict[str, float]:
    """sdkit's ``key`` (images per wall second, or ``images_per_cpu_second``) over each other mode's."""
    ips = {r["mode"]: r[key] for r in rows}
    return {m: ips["sdkit"] / v for m, v in ips.items() if m != "sdkit"} if "sdkit" in ips else {}


def format_table(result: dict) -> str:
    """The result as a plain-text table (:func:`sdkit.book.performance.peers_table`), then the workload and the
    machine's load averages."""
    table = performance.peers_table(result, LABELS)
    c, m = result["config"], result["machine"]
    return (
        f"{table}\n{c['dataset']}, {c['model']} width {c['width']}, batch {c['batch_size']}, {c['train_size']} "
        f"images, T={c['T']}, alpha={c['alpha']}, median of {c['epochs'] * c.get('rounds', 1)} timed epochs; "
        f"{m['cpu_model']}, {m['torch_threads']} torch threads, load average {result['load_average_before']} before, "
        f"{m['load_average']} after"
    )


# (2) -> (3) -> (3 in channels_last) -> (4): what each step from torchdistill's example to sdkit.train changes
STEPS = (
    ("torchdistill", "torchdistill-fed", "data: per-sample PIL transforms + DataLoader -> sdkit.BatchLoader"),
    ("torchdistill-fed", "torchdistill-fed-cl", "memory layout: NCHW -> channels_last"),
    ("torchdistill-fed-cl", "sdkit", "the loop: torchdistill's box -> sdkit.train"),
)


def breakdown(result: dict) -> str:
    """Where the difference between torchdistill's example and sdkit.train goes
    (:func:`sdkit.book.performance.peers_breakdown`): CPU microseconds per image of each mode, and what each step
    of :data:`STEPS` saves."""
    return str(performance.peers_breakdown(result, LABELS, STEPS))


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _ops_per_step(modes: list[str]) -> dict[str, float]:
    """Operators per step (benchmarks/step_ops.py) of sdkit and of the box, where both are measured."""
    if "sdkit" not in modes or not torchdistill_available():
        return {}
    import step_ops

    return step_ops.all_counts()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(sdkit.DATASETS))
    p.add_argument("--model", default="cnn", choices=sorted(sdkit.MODELS))
    p.add_argument("--width", type=_positive(float), default=0.5)
    p.add_argument("--train-size", type=_positive(int), default=10000)
    p.add_argument("--batch-size", type=_positive(int), default=128)
    p.add_argument("--epochs", type=_positive(int), default=3, help="timed epochs after one warm-up; median counts")
    p.add_argument("--T", type=_positive(float), default=4.0, help="distillation temperature")
    p.add_argument("--alpha", type=float, default=0.9, help="weight of the soft (teacher) term, sdkit's convention")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes for (1) and (2)")
    p.add_argument("--threads", type=_positive(int), default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--rounds", type=_positive(int), default=1, help="interleaved repetitions of all modes")
    p.add_argument("--device", default="auto")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {','.join(MODES)}")
    p.add_argument("--out", default="benchmarks/results/peers_cpu.json")
    a = p.parse_args(argv)
    modes = [m for m in a.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        p.error(f"--modes {a.modes!r}: choose one or more of {list(MODES)}")
    # torchdistill's KDLoss returns its KL term alone, without T^2, when its alpha (our 1 - alpha) is 0
    if not 0.0 <= a.alpha < 1.0:
        p.error(f"--alpha must lie in [0, 1) (torchdistill cannot express alpha=1), got --alpha={a.alpha}")
    if a.workers < 0:
        p.error(f"--workers must be 0 or more, got --workers={a.workers}")
    if any(m.startswith("torchdistill") for m in modes) and not torchdistill_available():
        p.error(f"modes {[m for m in modes if m.startswith('torchdistill')]} need torchdistill: {PEERS_EXTRA}")
    args = vars(a) | {"modes": modes}
    if a.threads:
        torch.set_num_threads(a.threads)  # here too, so that machine_info records it
    device = sdkit.pick_device(a.device)
    load_before = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    print(f"{a.dataset}, {a.model} width {a.width}, batch {a.batch_size}, {a.train_size} train images, {device}")
    rows = []
    for round_ in range(a.rounds):
        for mode in modes[round_ % len(modes) :] + modes[: round_ % len(modes)]:  # each round starts elsewhere
            rows.append(tp.run_isolated(_run_one, mode, args))
            print(f"  round {round_ + 1}  {mode:<20} {rows[-1]['images_per_second']:>7.0f} img/s  "
                  f"peak {rows[-1]['peak_memory_mb']:.0f} MB", flush=True)  # fmt: skip
    rows = sorted(merge_rounds(rows), key=lambda r: modes.index(r["mode"]))
    result = {
        "rows": rows,
        "speedup_sdkit_over": speedups(rows),
        "speedup_sdkit_over_cpu_time": speedups(rows, "images_per_cpu_second"),
        "config": {k: v for k, v in args.items() if k != "out"},
        "command": "python benchmarks/peers.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average_before": load_before,
        "machine": sdkit.machine_info(device),
        "torchdistill": _version("torchdistill"),
        "ops_per_step": _ops_per_step(modes),
        "ops_definition": "top-level ATen operators per training step, counted with torch.profiler on the CPU "
        "(benchmarks/step_ops.py)",
        "device_memory": device_memory(args),
    }
    print("\n" + format_table(result))
    print("\n" + breakdown(result))
    sdkit.atomic_write_json(a.out, result)
    print(f"wrote {a.out}")
    return 0


def _mb(*tensors: torch.Tensor) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def _activation_mb(model: torch.nn.Module, x: torch.Tensor, train: bool) -> tuple[float, float]:
    """(all module outputs of one forward pass, the largest two consecutive ones) in MB: what a training step's
    autograd keeps (roughly), and the peak of an inference pass, where each output frees the one before."""
    sizes: list[float] = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(_mb(o))) for m in model.modules()
             if not list(m.children())]  # fmt: skip
    model.train(train)
    with torch.set_grad_enabled(train):
        model(x)
    for h in hooks:
        h.remove()
    return sum(sizes), max(a + b for a, b in zip(sizes, sizes[1:], strict=False))


def device_memory(args: dict) -> dict[str, Any]:
    """Where the device memory of each loop goes, in MB computed on this machine for ``args``' job (the sizes do
    not depend on the device): both hold the training split (``sdkit.BatchLoader`` keeps it on the device) and a
    training step's activations; only sdkit.train also holds the validation split and validates after every epoch
    (``predict`` runs batches of 1024 on a GPU), and turns on cuDNN's autotuner, whose trial workspaces the caching
    allocator counts into ``max_memory_allocated`` and which no CPU can measure: the rest of the difference."""
    _, data, student, teacher = tp.build_job(args | {"device": "cpu"})
    bs, shape = args["batch_size"], data.input_shape
    step_all, _ = _activation_mb(student, torch.zeros(bs, *shape), train=True)
    teacher_all, teacher_peak = _activation_mb(teacher, torch.zeros(bs, *shape), train=False)
    _, val_peak = _activation_mb(student, torch.zeros(min(1024, len(data.val)), *shape), train=False)
    params = _mb(*student.parameters())
    both = {
        "training split on the device (images + labels)": _mb(data.train.x, data.train.y),
        "student weights, gradients and momentum": 3 * params,
        "teacher weights": _mb(*teacher.parameters()),
        "student activations of one training step (all module outputs)": step_all,
        "teacher forward pass, no_grad (peak of two consecutive outputs)": teacher_peak,
        "one batch's crop padding (padded copy)": _mb(torch.zeros(bs, shape[0], shape[1] + 4, shape[2] + 4)),
    }
    sdkit_only = {
        "validation split on the device": _mb(data.val.x, data.val.y),
        "validation forward pass at batch 1024 (peak of two consecutive outputs)": val_peak,
        "best weights kept (state_dict copy)": params,
    }
    explained = sum(both.values()) + sum(sdkit_only.values())
    note = (
        f"both loops hold about {sum(both.values()):.0f} MB (of it the training split, {len(data.train)} images, "
        f"{both['training split on the device (images + labels)']:.0f} MB); sdkit.train holds another "
        f"{sum(sdkit_only.values()):.0f} MB for validation ({len(data.val)} images and a batch of 1024 in "
        f"flight), {explained:.0f} MB in all. The rest of a CUDA peak is not computable on a CPU: cuDNN's "
        "autotuner (on in sdkit.train only) tries each convolution algorithm with its own workspace, which "
        "the caching allocator counts into max_memory_allocated, and the allocator rounds blocks up"
    )
    return {"both_mb": both, "sdkit_only_mb": sdkit_only, "train_size": len(data.train), "val_size": len(data.val),
            "explanation": note}  # fmt: skip


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
