"""What each chapter's mode costs: the training images it processes and the expected time on a GPU and on a
2-core CPU, computed from the chapter's budget and from committed measurements (never typed in).

:func:`chapter_runs` lists the training runs a chapter does in a mode, read from the budgets the chapter runs
with (:mod:`sdkit.book.chapter_budgets`, :data:`sdkit.book.experiments.BUDGETS`, :data:`sdkit.book.regimes.BUDGETS`,
:data:`sdkit.book.trend_experiments.BUDGETS`). :func:`device_models` fits the time model of
:mod:`sdkit.book.cost_model` per device: the CPU to ``benchmarks/results/throughput_cpu.json`` and one measured
cell of the regime grid (``book/results/regimes/n1000.json``), the GPU to the ``references`` of the GPU result
files, those that ``benchmarks/gpu_check.sh`` writes (``gpu_check*.json``) before the issue-19 reference
(``gpu_reference.json``). :func:`describe` is the line each chapter prints near its top.
"""

from __future__ import annotations

import functools
import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import chapter_budgets, experiments, regimes, trend_experiments
from .cost_model import DEFAULT_PASSES_PER_STEP, DeviceModel, Run, fit_device

__all__ = ["CHAPTERS", "MODES", "RESULTS", "ChapterCost", "split_sizes", "chapter_runs", "device_models",
           "gpu_result_files", "estimate", "describe", "format_seconds"]  # fmt: skip

CHAPTERS = ("01_background", "02_concepts", "03_algorithm", "04_math", "05_pytorch", "06_applications",
            "07_trends", "08_faq")  # fmt: skip
MODES = ("quick", "full")
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
REGIME_CELL = ROOT / "book" / "results" / "regimes" / "n1000.json"

#: Official training and test set sizes and image shapes (sdkit.load_dataset splits validation off the training set).
DATASETS: dict[str, tuple[int, int, tuple[int, int, int]]] = {
    "digits": (1438, 359, (1, 8, 8)),  # 1,797 images, 20% held out as test
    "fashion-mnist": (60000, 10000, (1, 28, 28)),
    "fashion-mnist-sample": (8000, 2000, (1, 28, 28)),
}


def split_sizes(dataset: str, train_size: int | None = None, val_fraction: float = 0.1) -> tuple[int, int, int]:
    """``(train, val, test)`` image counts of ``sdkit.load_dataset(dataset, train_size=..., val_fraction=...)``,
    without loading it (the same rule: validation is ``round(val_fraction * n)`` of the official training set)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset={dataset!r} has no known size; choose one of {sorted(DATASETS)}")
    n, n_test, _ = DATASETS[dataset]
    n_val = max(1, int(round(val_fraction * n)))
    n_train = n - n_val if train_size is None else min(train_size, n - n_val)
    return n_train, n_val, n_test


def _runs(label: str, model: str, dataset: str, epochs: int, train_size: int | None = None,
          val_fraction: float = 0.1, **kw: Any) -> Run:  # fmt: skip
    n_train, n_val, _ = split_sizes(dataset, train_size, val_fraction)
    width = kw.pop("width", 1.0)
    return Run(label, model, width, DATASETS[dataset][2], n_train, epochs, n_val=n_val, **kw)


def _concepts(mode: str, on_gpu: bool) -> list[Run]:
    b = chapter_budgets.CONCEPTS[mode]
    return [_runs("digits teacher", "cnn", "digits", b["digits_epochs"]),
            _runs("Fashion-MNIST teacher", b["fashion_model"], b["fashion_dataset"], b["fashion_epochs"])]  # fmt: skip


def _algorithm(mode: str, on_gpu: bool) -> list[Run]:
    b = chapter_budgets.ALGORITHM[mode]
    return [_runs("teacher", b["model"], "digits", b["epochs"]),
            _runs("students, one per T", b["model"], "digits", b["epochs"], teacher=(b["model"], 1.0),
                  repeats=len(b["temperatures"]))]  # fmt: skip


def _pytorch(mode: str, on_gpu: bool) -> list[Run]:
    # the chapter's own two-convolution Net is costed as sdkit's CNN at width 0.5 (16 and 32 channels, like it);
    # the plain-PyTorch loop never moves its tensors off the CPU; the student learns from stored soft labels
    b = chapter_budgets.PYTORCH[mode]
    n_train = split_sizes("digits")[0]
    plain = dict(width=0.5, batch_size=b["batch_size"], repeats=len(b["seeds"]), on_cpu=True)
    kit = dict(width=0.5, batch_size=b["batch_size"], repeats=len(b["seeds"]))
    return [_runs("plain PyTorch teacher", "cnn", "digits", b["epochs"], **plain),
            _runs("plain PyTorch student", "cnn", "digits", b["epochs"], forward_images=n_train, **plain),
            _runs("sdkit teacher", "cnn", "digits", b["epochs"], **kit),
            _runs("sdkit student", "cnn", "digits", b["epochs"], teacher=("cnn", 0.5), **kit)]  # fmt: skip


#: The regime grid's methods that train on two batches a step (a partner batch, the previous batch).
TWO_BATCH = ("cskd", "dlb")


def regime_runs(cell: str, budget: str, seeds: int | None = None, on_cpu: bool = True,
                methods: tuple[str, ...] | None = None) -> list[Run]:  # fmt: skip
    """The runs of :func:`sdkit.book.regimes.run_cell` on ``cell`` (every method, each seed: ``repeats``; on the
    CPU, run_cell's default, unless ``on_cpu=False``). ``plain-es`` trains nothing (the plain run's early-stopped
    weights)."""
    spec, cfg = {**regimes.CELL_DEFAULTS, **regimes.CELLS[cell]}, regimes.BUDGETS[budget]
    n_train, n_val, _ = split_sizes(cfg["dataset"], spec["n"], cfg["val_fraction"])
    epochs = math.ceil(cfg["steps"] / max(1, n_train // 128))
    seeds = len(cfg["seeds"]) if seeds is None else seeds
    common = dict(width=spec["width"], n_train=n_train, epochs=epochs, n_val=n_val, on_cpu=on_cpu,
                  shape=DATASETS[cfg["dataset"]][2])  # fmt: skip
    teacher = (cfg["model"], spec["width"])
    methods = regimes.METHODS if methods is None else methods
    one, two = [m for m in methods if m in ("plain", *regimes.SINGLE_RUN)], [m for m in methods if m in TWO_BATCH]
    one = [m for m in one if m not in TWO_BATCH]
    ban = [m for m in methods if m in ("ban", "ban-es")]
    if "plain" not in one and (ban or "plain-es" in methods):
        one.append("plain")  # the teacher of ban / ban-es and the weights of plain-es
    groups = [(one, {}), (two, dict(passes=2)), (ban, dict(teacher=teacher))]
    return [Run(f"{cell}: {', '.join(names)}", cfg["model"], repeats=len(names) * seeds, **kw, **common)
            for names, kw in groups if names]  # fmt: skip


def _applications(mode: str, on_gpu: bool) -> list[Run]:
    cfg = experiments.BUDGETS["quick" if mode == "quick" else "full-cuda" if on_gpu else "full-cpu"]
    seeds, bs, gens = len(cfg["seeds"]), cfg["batch_size"], cfg["ba_generations"]
    comp = dict(train_size=cfg["comp_train_size"], val_fraction=cfg["comp_val_fraction"], batch_size=bs)
    student = (cfg["comp_student"], cfg["comp_student_width"])
    n_test = split_sizes(cfg["ba_dataset"])[2]
    # per model: noise (one forward pass per sigma), FGSM (forward + backward per epsilon), the test predictions
    attacks = n_test * (len(cfg["sigmas"]) + DEFAULT_PASSES_PER_STEP * len(cfg["epsilons"]) + 1)
    ba = dict(train_size=cfg["ba_train_size"], val_fraction=cfg["ba_val_fraction"], batch_size=bs,
              width=cfg["ba_width"], forward_images=int(attacks))  # fmt: skip
    runs = [
        _runs("compression teacher", cfg["comp_teacher"], cfg["comp_dataset"], cfg["comp_epochs"],
              width=cfg["comp_teacher_width"], **comp),
        _runs("compression students alone", student[0], cfg["comp_dataset"], cfg["comp_epochs"], width=student[1],
              repeats=seeds, **comp),
        _runs("compression students distilled", student[0], cfg["comp_dataset"], cfg["comp_epochs"],
              width=student[1], teacher=(cfg["comp_teacher"], cfg["comp_teacher_width"]), repeats=seeds, **comp),
        _runs("born-again generation 0", cfg["ba_model"], cfg["ba_dataset"], cfg["ba_epochs"], repeats=seeds, **ba),
        _runs("born-again later generations", cfg["ba_model"], cfg["ba_dataset"], cfg["ba_epochs"],
              teacher=(cfg["ba_model"], cfg["ba_width"]), repeats=seeds * gens, **ba),
    ]  # fmt: skip
    live = regimes.BUDGETS[mode]  # the chapter's live grid: its cells and seeds, on its device
    on_cpu = live["live_device"] == "cpu" or not on_gpu
    seeds = len(live["live_seeds"])
    return runs + [run for cell in live["live"] for run in regime_runs(cell, mode, seeds, on_cpu, live["live_methods"])]


def _tabular_sizes(name: str, seed: int = 0) -> tuple[int, int, tuple[int, int, int]]:
    from ..extras.tabular import load_tabular

    data = load_tabular(name, seed=seed)
    return len(data.train), len(data.val), tuple(data.input_shape)


#: Chapters whose live runs are the quick budget in both modes, and where their full size comes from.
LIVE_ONLY_QUICK = {"07_trends": "the full size is the committed book/results/trends_full.json"}


def _trends(mode: str, on_gpu: bool) -> list[Run]:
    # chapter 07 runs the quick budget live in both modes; its full size is the committed trends_full.json
    b = trend_experiments.BUDGETS["quick"]
    cpu = dict(on_cpu=True)  # trend_training.CPU: timings readers can reproduce without a GPU
    comp, grid, cost = b["compression"], b["grid"], b["cost"]
    n_test = split_sizes(comp["dataset"])[2] if comp.get("test_size") is None else comp["test_size"]
    variants = len(comp["amounts"]) + 3  # pruned at each amount, int8, int8 of the pruned model, the model itself
    seeds = len(comp["seeds"])
    kw = dict(train_size=comp["train_size"], forward_images=n_test * variants, **cpu)
    runs = [_runs("compression teacher, student alone", comp["model"], comp["dataset"], comp["epochs"],
                  repeats=2 * seeds, **kw),
            _runs("compression student distilled", comp["model"], comp["dataset"], comp["epochs"],
                  teacher=(comp["model"], 1.0), repeats=seeds, **kw)]  # fmt: skip
    tab = b["tabular"]
    for name in tab["datasets"]:
        n_train, n_val, shape = _tabular_sizes(name)
        kw = dict(n_train=n_train, n_val=n_val, epochs=tab["epochs"], batch_size=tab["batch_size"], shape=shape)
        runs += [Run(f"{name}: teacher, student alone", "mlp", 1.0, repeats=2 * len(tab["seeds"]), **kw, **cpu),
                 Run(f"{name}: student distilled", "mlp", 1.0, teacher=("mlp", 1.0), repeats=len(tab["seeds"]),
                     **kw, **cpu)]  # fmt: skip
    kw = dict(train_size=grid["train_size"], val_fraction=grid["val_fraction"], **cpu)
    students = len(grid["temperatures"]) * len(grid["alphas"]) * len(grid["seeds"])
    runs += [_runs("grid teacher, plain students", grid["model"], grid["dataset"], grid["epochs"],
                   repeats=1 + len(grid["seeds"]), **kw),
             _runs("grid students, one per (T, alpha)", grid["model"], grid["dataset"], grid["epochs"],
                   teacher=(grid["model"], 1.0), repeats=students, **kw)]  # fmt: skip
    n_train = split_sizes(cost["dataset"], cost["train_size"])[0]
    kw = dict(train_size=cost["train_size"], repeats=len(cost["seeds"]), **cpu)
    bench = cost["benchmark"]
    return runs + [
        _runs("cost: plain, PS-KD", cost["model"], cost["dataset"], cost["epochs"], train_size=cost["train_size"],
              repeats=2 * len(cost["seeds"]), **cpu),
        _runs("cost: born-again student", cost["model"], cost["dataset"], cost["epochs"],
              teacher=(cost["model"], 1.0), **kw),
        _runs("cost: cached teacher", cost["model"], cost["dataset"], cost["epochs"], forward_images=n_train, **kw),
        # teacher_overhead: three objectives, a warm-up round and the repeats, on the mlp and a small CNN
        _runs("cost: step benchmark (mlp)", cost["model"], cost["dataset"], bench["repeats"] + 1,
              train_size=bench["mlp_steps"] * 128, repeats=3, **cpu),
        _runs("cost: step benchmark (cnn)", "cnn", cost["dataset"], bench["repeats"] + 1, width=bench["cnn_width"],
              train_size=bench["cnn_steps"] * 128, repeats=3, **cpu),
    ]  # fmt: skip


_CHAPTER_RUNS = {"02_concepts": _concepts, "03_algorithm": _algorithm, "05_pytorch": _pytorch,
                 "06_applications": _applications, "07_trends": _trends}  # fmt: skip


def _check(chapter: str, mode: str) -> None:
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter={chapter!r}; pass a notebook name of book/ such as {CHAPTERS[1]!r} "
                         f"(one of {list(CHAPTERS)})")  # fmt: skip
    if mode not in MODES:
        raise ValueError(f"unknown mode={mode!r}; pass 'quick' or 'full' (sdkit.run_mode())")


def chapter_runs(chapter: str, mode: str, on_gpu: bool = True) -> list[Run]:
    """The training runs ``chapter`` (a notebook name, e.g. ``"06_applications"``) does in ``mode``, on a machine
    with a GPU or without one (chapter 06's full budget differs); empty for chapters that train nothing."""
    _check(chapter, mode)
    make = _CHAPTER_RUNS.get(chapter)
    return make(mode, on_gpu) if make else []


def gpu_result_files(results: Path = RESULTS) -> list[Path]:
    """The GPU result files the time model reads: those ``benchmarks/gpu_check.sh`` wrote, else the reference."""
    measured = sorted(p for p in results.glob("gpu_*.json") if p.name != "gpu_reference.json")
    measured = [p for p in measured if "references" in json.loads(p.read_text())]
    return measured or [results / "gpu_reference.json"]


def _reference_runs(ref: dict[str, Any]) -> tuple[list[Run], float]:
    n = int(ref["images_per_epoch"])
    teacher = (ref["model"], float(ref["width"])) if ref["task"] == "distill" else None
    run = Run(ref["label"], ref["model"], float(ref["width"]), tuple(ref["input_shape"]), n, 1,
              batch_size=int(ref["batch_size"]), teacher=teacher)  # fmt: skip
    return [run], n / float(ref["images_per_second"])


def _cpu_references(results: Path) -> tuple[list[tuple[list[Run], float]], float]:
    path = results / "throughput_cpu.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python benchmarks/throughput.py --out {path}`")
    result = json.loads(path.read_text())
    cfg, rows = result["config"], {(r["mode"], r["task"]): r for r in result["rows"]}
    common = dict(model=cfg["model"], width=cfg["width"], input_shape=DATASETS[cfg["dataset"]][2],
                  batch_size=cfg["batch_size"])  # fmt: skip
    refs = [_reference_runs({**rows[("sdkit", task)], "label": f"throughput.py {task}", **common})
            for task in ("train", "distill") if ("sdkit", task) in rows]  # fmt: skip
    train = rows[("sdkit", "train")]["images_per_second"]
    passes = rows[("sdkit", "eval")]["images_per_second"] / train if ("sdkit", "eval") in rows else None
    if REGIME_CELL.exists():  # a measured experiment of many short epochs of the MLP: the price of a batch
        cell = json.loads(REGIME_CELL.read_text())
        refs.append((regime_runs(cell["cell"], cell["budget"], len(cell["seeds"])), cell["wall_seconds"]))
    return refs, passes or DEFAULT_PASSES_PER_STEP


@functools.lru_cache(maxsize=8)
def device_models(results: Path = RESULTS) -> dict[str, Any]:
    """``{"cpu": DeviceModel, "gpu": DeviceModel, "gpu_name": str, "gpu_files": [names]}`` fitted to the committed
    measurements in ``results`` (see the module docstring)."""
    cpu_refs, cpu_passes = _cpu_references(results)
    files = gpu_result_files(results)
    gpu_refs, gpu_passes, names = [], [], []
    for path in files:
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run `bash benchmarks/gpu_check.sh` on a GPU machine")
        result = json.loads(path.read_text())
        gpu_refs += [_reference_runs(ref) for ref in result["references"]]
        gpu_passes += [result["passes_per_step"]] if result.get("passes_per_step") else []
        names.append(result["machine"].get("gpu", "GPU"))
    return {
        "cpu": fit_device("cpu", cpu_refs, cpu_passes),
        "gpu": fit_device("gpu", gpu_refs, gpu_passes[0] if gpu_passes else DEFAULT_PASSES_PER_STEP),
        "gpu_name": names[0],
        "gpu_files": [p.name for p in files],
    }


@dataclass(frozen=True)
class ChapterCost:
    """A chapter's cost in one mode: training images and estimated seconds on a GPU machine and on a CPU."""

    chapter: str
    mode: str
    gpu_images: int
    cpu_images: int
    gpu_seconds: float
    cpu_seconds: float
    gpu_name: str


def _seconds(runs: list[Run], models: dict[str, Any], on_gpu: bool) -> float:
    cpu: DeviceModel = models["cpu"]
    if not on_gpu:
        return cpu.seconds(runs)
    return models["gpu"].seconds([r for r in runs if not r.on_cpu]) + cpu.seconds([r for r in runs if r.on_cpu])


def estimate(chapter: str, mode: str, results: Path = RESULTS) -> ChapterCost:
    """The cost of ``chapter`` in ``mode`` (see :class:`ChapterCost`); runs a chapter keeps on the CPU count at
    the CPU's price on the GPU machine too."""
    models = device_models(results)
    gpu_runs, cpu_runs = chapter_runs(chapter, mode, True), chapter_runs(chapter, mode, False)
    images = lambda runs: sum(r.training_images for r in runs)  # noqa: E731
    return ChapterCost(chapter, mode, images(gpu_runs), images(cpu_runs), _seconds(gpu_runs, models, True),
                       _seconds(cpu_runs, models, False), models["gpu_name"])  # fmt: skip


def format_seconds(seconds: float) -> str:
    """``"8 s"``, ``"4 min"``, ``"1.5 h"``: a duration to one or two significant figures."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def describe(chapter: str, mode: str, results: Path = RESULTS) -> str:
    """The line a chapter prints near its top, e.g. ``quick mode: 0.4 M training images; about 1 min on a 2-core
    CPU, 5 s on one NVIDIA H200-class GPU``, wrapped at 88 columns."""
    gpu_images, cpu_images = (sum(r.training_images for r in chapter_runs(chapter, mode, g)) for g in (True, False))
    if gpu_images == cpu_images == 0:
        return f"{mode} mode: no training; seconds on any machine"
    images = f"{cpu_images / 1e6:.2g} M training images"
    if gpu_images != cpu_images:
        images += f" ({gpu_images / 1e6:.2g} M on a GPU machine: its own budget)"
    try:
        c = estimate(chapter, mode, results)
    except FileNotFoundError:  # an installed sdkit (Colab, Binder) without the repository's measurements
        return f"{mode} mode: {images}; the time estimates need benchmarks/results/ of the repository"
    line = (f"{mode} mode: {images}; about {format_seconds(c.cpu_seconds)} on a 2-core CPU, "
            f"{format_seconds(c.gpu_seconds)} on one {c.gpu_name}-class GPU")  # fmt: skip
    if chapter in LIVE_ONLY_QUICK:
        line += f" (the live runs in both modes; {LIVE_ONLY_QUICK[chapter]})"
    return textwrap.fill(line, width=88, subsequent_indent="  ")  # a chapter's output width
