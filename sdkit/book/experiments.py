"""The applications experiments of the book: compression, generalization, robustness and calibration.

Each ``run_*`` function takes a *budget* (a flat dict, see :data:`BUDGETS` and :func:`budget`) and returns plain,
JSON-ready dicts: one row per seed (and model) plus a mean/std summary. The command line runs all of them and
writes one JSON file::

    python -m sdkit.book.experiments applications --mode full --out book/results/applications_full.json

Budgets. ``quick`` is sized for CI on a 2-core CPU (two seeds; the 8x8 digits for compression, a Fashion-MNIST
subset for the rest). ``full`` on a CPU is what
the book's committed results use: the multilayer perceptron on the whole Fashion-MNIST training set (born-again
generations, robustness, calibration) and the small CNN on a subset (compression), three seeds. ``full`` on a
CUDA GPU scales up: the CNN on the whole training set everywhere, more epochs.

Seeds. A budget lists its seeds (``seeds: [0, 1, 2]``); run ``s`` uses seed ``1000 * s``, and in a born-again run
generation ``g`` is initialised and shuffled with seed ``1000 * s + g``, so no two models of the experiment share an
initialisation. The train/validation/test split is
the same for every seed, so the seed-to-seed spread measures initialisation and data order only.

Verdicts (:func:`sdkit.book.stats.compare_paired`). A candidate (say generation 1) and its baseline (generation 0)
are compared seed by seed with the book's one rule, :func:`sdkit.book.stats.paired`: the mean of the per-seed
differences and its 95% t-interval; "better" or "worse" only when the interval excludes 0, otherwise "within noise".
The statistics (``mean_std``, ``summarize``, ``paired``, ``compare_paired``, ``verdict``) live in
:mod:`sdkit.book.stats`; the results' tables are in :mod:`sdkit.book.application_tables`.
"""

from __future__ import annotations

import argparse
import copy
import io
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..datasets import load_dataset
from ..evaluate import evaluate, predict_logits, reliability_bins
from ..extras.robustness import fgsm_accuracy, gaussian_noise_accuracy
from ..methods import born_again
from ..models import build_model, count_parameters, pick_device
from ..train import train
from ..utils import atomic_write_json, check_seeds, stamped
from .stats import compare_paired, mean_std, summarize, verdict

__all__ = [
    "BUDGETS",
    "budget",
    "model_size",
    "mean_std",
    "summarize",
    "refresh_verdicts",
    "compression_comparisons",
    "verdict",
    "count_runs",
    "run_compression",
    "run_born_again",
    "run_applications",
    "main",
]

_COMMON: dict[str, Any] = {
    "T": 4.0,
    "alpha": 0.9,
    "batch_size": 128,
    # robustness, in pixel units (images in [0, 1]); see sdkit.extras.robustness
    "sigmas": [0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0],
    "epsilons": [0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1],
    "n_bins": 15,
}

EPOCHS_CUDA = 6
BUDGETS: dict[str, dict[str, Any]] = {
    # CI and CPU readers: one to two minutes on a 2-core CPU
    "quick": {
        **_COMMON,
        "seeds": [0, 1],
        "ba_dataset": "fashion-mnist-sample", "comp_dataset": "digits",
        "ba_model": "mlp", "ba_width": 1.0, "ba_generations": 2, "ba_epochs": 8,
        "ba_train_size": 3000, "ba_test_size": 2000, "ba_val_fraction": 0.05,
        "comp_teacher": "cnn", "comp_teacher_width": 1.0, "comp_student": "cnn", "comp_student_width": 0.25,
        "comp_epochs": 15, "comp_train_size": None, "comp_test_size": None, "comp_val_fraction": 0.1,
    },
    # the book's committed results: under half an hour on a shared 2-core CPU, one torch thread
    "full-cpu": {
        **_COMMON,
        "seeds": [0, 1, 2],
        "ba_dataset": "fashion-mnist", "comp_dataset": "fashion-mnist",
        "ba_model": "mlp", "ba_width": 1.0, "ba_generations": 2, "ba_epochs": 10,
        "ba_train_size": None, "ba_test_size": None, "ba_val_fraction": 0.1,
        "comp_teacher": "cnn", "comp_teacher_width": 1.0, "comp_student": "cnn", "comp_student_width": 0.25,
        "comp_epochs": 12, "comp_train_size": 5000, "comp_test_size": None, "comp_val_fraction": 0.03,
    },
}  # fmt: skip
# a CUDA GPU: the CNN on the whole training set everywhere, in batches of 512 (a GPU step costs about the same
# for 128 images as for 512: the batch size is the speed), sized so that the chapter fits three minutes on one
# GPU (sdkit.book.cost; tests/test_cost.py)
BUDGETS["full-cuda"] = {
    **BUDGETS["full-cpu"],
    "ba_model": "cnn", "ba_epochs": EPOCHS_CUDA, "comp_epochs": EPOCHS_CUDA, "comp_train_size": None,
    "comp_val_fraction": 0.1, "batch_size": 512,
}  # fmt: skip


def budget(mode: str = "quick", device: str | torch.device | None = "auto", **overrides: Any) -> dict[str, Any]:
    """A copy of the budget for ``mode`` (``quick`` or ``full``; ``full`` picks ``full-cuda`` when ``device``
    resolves to a CUDA GPU, else ``full-cpu``), with ``overrides`` applied (unknown keys are rejected)."""
    if mode == "full":
        on_cuda = device is not None and pick_device(device).type == "cuda"
        mode = "full-cuda" if on_cuda else "full-cpu"
    if mode not in BUDGETS:
        raise ValueError(f"mode must be 'quick' or 'full' (or one of {list(BUDGETS)}), got mode={mode!r}")
    out = copy.deepcopy(BUDGETS[mode])
    unknown = sorted(set(overrides) - set(out))
    if unknown:
        raise ValueError(f"unknown budget key(s) {unknown}; valid keys: {sorted(out)}")
    out.update(overrides)
    out["name"] = mode
    out["seeds"] = check_seeds(out["seeds"])
    return out


def _model_seeds(cfg: dict[str, Any]) -> list[int]:
    return [
        1000 * seed for seed in cfg["seeds"]
    ]  # far apart: the seeds derived from one (seed + 1) never meet another's


# ---------------------------------------------------------------------------------------------------- statistics


def count_runs(cfg: dict[str, Any]) -> int:
    """How many models :func:`run_applications` trains under ``cfg``, which is how many lines it logs: the
    compression teacher, two students per seed, and every born-again generation of every seed.

    >>> count_runs(budget("quick"))  # 1 + 2 * 2 seeds + 2 seeds * 3 generations
    11
    """
    n_seeds = len(cfg["seeds"])
    return 1 + 2 * n_seeds + n_seeds * (cfg["ba_generations"] + 1)


def model_size(model: nn.Module) -> dict[str, int]:
    """Parameter count, bytes of parameters and buffers as stored (float32: 4 bytes each), and the size of the
    serialised ``state_dict`` (what ``torch.save`` writes, including its small container overhead)."""
    tensors = list(model.parameters()) + list(model.buffers())
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return {
        "parameters": count_parameters(model),
        "tensor_bytes": sum(t.numel() * t.element_size() for t in tensors),
        "state_dict_bytes": buffer.getbuffer().nbytes,
    }


# ---------------------------------------------------------------------------------------------------- experiments

Log = Callable[[str], None] | None


def _train_kwargs(cfg: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {"batch_size": cfg["batch_size"], "device": device, "progress": False}


def run_compression(cfg: dict[str, Any], device: str | torch.device = "auto", log: Log = print) -> dict[str, Any]:
    """Classic distillation into a smaller model: one teacher (``comp_teacher`` at ``comp_teacher_width``,
    seed 0), then for every seed a small student (``comp_student`` at ``comp_student_width``) trained alone with
    cross-entropy and the *same* student (same initialisation and data order) distilled from the teacher, both for
    ``comp_epochs`` epochs. Rows: ``role`` in {teacher, alone, distilled} with test accuracy, NLL, ECE, seconds."""
    device = pick_device(device)
    started = time.perf_counter()
    data = load_dataset(cfg["comp_dataset"], train_size=cfg["comp_train_size"], test_size=cfg["comp_test_size"],
                        val_fraction=cfg["comp_val_fraction"])  # fmt: skip
    kw = _train_kwargs(cfg, device)

    def make(name: str, width: float, seed: int) -> nn.Module:
        return build_model(name, data.input_shape, data.num_classes, width=width, seed=seed)

    def fit(model: nn.Module, seed: int, role: str, **extra: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        history = train(model, data, epochs=cfg["comp_epochs"], seed=seed, **kw, **extra)
        seconds = time.perf_counter() - t0
        row = {"role": role, "seed": seed, **evaluate(model, data.test), "seconds": seconds,
               "best_epoch": history.best_epoch}  # fmt: skip
        if log:
            log(f"compression {role:>9} seed {seed:>4}: acc {row['accuracy']:.4f} NLL {row['nll']:.4f} "
                f"ECE {row['ece']:.4f} ({seconds:.1f} s)")  # fmt: skip
        return row

    teacher = make(cfg["comp_teacher"], cfg["comp_teacher_width"], 0)
    rows = [fit(teacher, 0, "teacher")]
    for seed in _model_seeds(cfg):
        student = make(cfg["comp_student"], cfg["comp_student_width"], seed + 1)
        rows.append(fit(student, seed, "alone"))
        student = make(cfg["comp_student"], cfg["comp_student_width"], seed + 1)  # the same initial weights
        rows.append(fit(student, seed, "distilled", teacher=teacher, T=cfg["T"], alpha=cfg["alpha"]))
    metrics = ("accuracy", "nll", "ece", "seconds")
    comparisons = compression_comparisons(rows)
    return {
        "data": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "teacher": {"model": cfg["comp_teacher"], "width": cfg["comp_teacher_width"], **model_size(teacher)},
        "student": {"model": cfg["comp_student"], "width": cfg["comp_student_width"], **model_size(student)},
        "rows": rows,
        "summary": summarize(rows, "role", metrics),
        "comparisons": comparisons,
        "wall_seconds": time.perf_counter() - started,
    }


def compression_comparisons(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The distilled student against the student trained alone (same seeds): accuracy, NLL, ECE."""
    students = [r for r in rows if r["role"] != "teacher"]
    return [
        compare_paired(students, m, key="role", candidate="distilled", baseline="alone", higher_is_better=hib)
        for m, hib in (("accuracy", True), ("nll", False), ("ece", False))
    ]


def _versus(rows: Sequence[dict[str, Any]]) -> Callable[..., list[dict[str, Any]]]:
    """``versus(metric, higher, index)``: every born-again generation against generation 0, on ``rows``."""
    students = sorted({r["generation"] for r in rows} - {0})

    def versus(metric: str, higher: bool, index: int | None = None) -> list[dict[str, Any]]:
        return [compare_paired(rows, metric, key="generation", candidate=g, baseline=0, higher_is_better=higher,
                               index=index) for g in students]  # fmt: skip

    return versus


def refresh_verdicts(result: dict[str, Any]) -> dict[str, Any]:
    """A copy of an applications result (:func:`run_applications`) whose comparisons are recomputed from its
    per-seed rows with the current verdict rule, so that results committed under an earlier rule are judged like
    new ones. The rows themselves are untouched."""
    out = copy.deepcopy(result)
    out["compression"]["comparisons"] = compression_comparisons(out["compression"]["rows"])
    gen, rob = out["generalization"], out["robustness"]
    versus = _versus(gen["rows"])
    gen["comparisons"] = versus("accuracy", True) + versus("nll", False) + versus("ece", False)
    out["calibration"]["comparisons"] = versus("ece", False)
    rows = [{**g, **r} for g, r in zip(gen["rows"], rob["rows"], strict=True)]
    curve = _versus(rows)
    for name, points in (("noise", rob["sigmas"]), ("fgsm", rob["epsilons"])):
        rob[f"{name}_comparisons"] = [curve(name, True, i) for i in range(len(points))]
    return out


def run_born_again(cfg: dict[str, Any], device: str | torch.device = "auto", log: Log = print) -> dict[str, Any]:
    """Born-again generations (Furlanello et al. 2018) for every seed, and on each generation's test predictions:
    accuracy, NLL, ECE (generalization), accuracy under Gaussian noise and FGSM (robustness, pixel units), and
    reliability bins pooled over seeds (calibration). Returns the sections ``generalization``, ``robustness`` and
    ``calibration``, each with per-seed rows, a summary by generation and the comparisons of every generation
    with generation 0."""
    device = pick_device(device)
    started = time.perf_counter()
    data = load_dataset(cfg["ba_dataset"], train_size=cfg["ba_train_size"], test_size=cfg["ba_test_size"],
                        val_fraction=cfg["ba_val_fraction"])  # fmt: skip
    std = list(data.std)
    gens_n = cfg["ba_generations"]

    def make(seed: int) -> nn.Module:
        return build_model(cfg["ba_model"], data.input_shape, data.num_classes, width=cfg["ba_width"], seed=seed)

    rows: list[dict[str, Any]] = []
    probs: dict[int, list[torch.Tensor]] = {g: [] for g in range(gens_n + 1)}
    for seed in _model_seeds(cfg):
        gens = born_again(make, data, gens_n, T=cfg["T"], alpha=cfg["alpha"], seed=seed, epochs=cfg["ba_epochs"],
                          **_train_kwargs(cfg, device))  # fmt: skip
        for g, gen in enumerate(gens):
            t0 = time.perf_counter()
            noise = gaussian_noise_accuracy(gen.model, data.test, cfg["sigmas"], seed=seed, input_std=std)
            fgsm = fgsm_accuracy(gen.model, data.test, cfg["epsilons"], input_std=std)
            probs[g].append(predict_logits(gen.model, data.test.x).softmax(-1))
            row = {"seed": seed, "generation": g, **gen.metrics, "seconds": gen.history.seconds,
                   "best_epoch": gen.history.best_epoch, "noise": noise, "fgsm": fgsm,
                   "attack_seconds": time.perf_counter() - t0}  # fmt: skip
            rows.append(row)
            if log:
                # <= 88 characters, a chapter's width (NLL is in the tables); noise, FGSM at the largest step
                log(f"born-again seed {seed:>4} gen {g}: acc {row['accuracy']:.4f} ECE {row['ece']:.4f} "
                    f"noise {noise[-1]:.4f} FGSM {fgsm[-1]:.4f} ({row['seconds']:.1f} s)")  # fmt: skip
    targets = data.test.y.repeat(len(cfg["seeds"]))
    bins = {str(g): reliability_bins(torch.cat(p), targets, cfg["n_bins"]) for g, p in probs.items()}
    versus = _versus(rows)

    def curve(metric: str, points: Sequence[float]) -> list[list[dict[str, Any]]]:
        return [versus(metric, True, i) for i in range(len(points))]

    keep = ("seed", "generation", "accuracy", "nll", "ece", "seconds", "best_epoch")
    return {
        "data": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "model": {"model": cfg["ba_model"], "width": cfg["ba_width"], **model_size(make(0))},
        "generalization": {
            "rows": [{k: r[k] for k in keep} for r in rows],
            "summary": summarize(rows, "generation", ("accuracy", "nll", "ece", "seconds")),
            "comparisons": versus("accuracy", True) + versus("nll", False) + versus("ece", False),
        },
        "robustness": {
            "units": "pixel (images in [0, 1]); noise and FGSM steps are divided by the dataset's std",
            "sigmas": list(cfg["sigmas"]),
            "epsilons": list(cfg["epsilons"]),
            "rows": [{k: r[k] for k in ("seed", "generation", "noise", "fgsm", "attack_seconds")} for r in rows],
            "summary": summarize(rows, "generation", ("noise", "fgsm")),
            "noise_comparisons": curve("noise", cfg["sigmas"]),
            "fgsm_comparisons": curve("fgsm", cfg["epsilons"]),
        },
        "calibration": {
            "n_bins": cfg["n_bins"],
            "bins": bins,
            "summary": summarize(rows, "generation", ("ece", "nll")),
            "comparisons": versus("ece", False),
        },
        "wall_seconds": time.perf_counter() - started,
    }


#: The two experiments of :func:`run_applications`, in the order they run.
SECTIONS = ("compression", "born_again")


def run_applications(cfg: dict[str, Any], device: str | torch.device = "auto", log: Log = print,
                     sections: Sequence[str] = SECTIONS) -> dict[str, Any]:  # fmt: skip
    """The applications experiments under one budget: ``{"compression": ..., **run_born_again(...)}``, or only
    those in ``sections`` (a slice: the reproduction check re-runs one of them)."""
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    started = time.perf_counter()
    out: dict[str, Any] = {}
    if "compression" in sections:
        out["compression"] = run_compression(cfg, device, log)
    if "born_again" in sections:
        born = run_born_again(cfg, device, log)
        born_wall = born.pop("wall_seconds")
        out["born_again"] = {"data": born.pop("data"), "model": born.pop("model"), "wall_seconds": born_wall}
        out.update(born)
    return {**out, "wall_seconds": time.perf_counter() - started}


# ---------------------------------------------------------------------------------------------------- command line


def _parse_override(text: str) -> tuple[str, Any]:
    import json

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(
            f"--set expects KEY=VALUE (VALUE as JSON, e.g. seeds=[0,1] or dataset='\"digits\"'), got {text!r}"
        )
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare string such as dataset=digits


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sdkit.book.experiments applications --mode {quick,full} --out FILE [--device D] [--threads N]
    [--set KEY=VALUE ...]``: run every applications experiment and write the results as JSON (atomically)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m sdkit.book.experiments", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="experiment", required=True)
    app = sub.add_parser("applications", help="compression, born-again generalization, robustness, calibration")
    app.add_argument("--mode", choices=["quick", "full"], default="quick")
    app.add_argument("--out", required=True, help="JSON file to write")
    app.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    app.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    app.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a budget entry")
    app.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run only these")
    args = parser.parse_args(argv)
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be a positive integer, got {args.threads}")
            torch.set_num_threads(args.threads)
        device = pick_device(args.device)
        cfg = budget(args.mode, device, **dict(_parse_override(s) for s in args.set))
    except ValueError as err:
        print(f"sdkit.book.experiments: error: {err}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results = run_applications(cfg, device, log=print, sections=args.sections)
    out = {"device": str(device), "config": cfg, **{k: v for k, v in results.items() if k != "wall_seconds"}}
    out = stamped(out, seconds=time.perf_counter() - started, device=device,
                  command="python -m sdkit.book.experiments " + shlex.join(argv))  # fmt: skip
    atomic_write_json(args.out, out)
    print(f"wrote {args.out} ({out['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
