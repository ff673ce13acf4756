"""The experiments of the chapter "Trends and challenges": compression, a tabular domain, choosing T, training cost.

Each ``run_*`` function takes one section of a budget (see :data:`BUDGETS`) and returns a JSON-ready dict. The
command line runs all four and writes one file with the machine, the date, the wall time and the command::

    python -m sdkit.book.trend_experiments --mode full --out book/results/trends_full.json

``quick`` is what the chapter runs live (about two minutes on a 2-core CPU); ``full`` is sized to finish in about
a quarter of an hour on the same CPU (no GPU needed).

Seeds. Repetition ``i`` uses seed ``1000 * i`` for a teacher and ``1000 * i + 1`` for its student; the student
"trained alone" uses the student's seed too, so that a distilled student and its plain twin share their
initialisation and data order and differ only in the teacher. Differences are judged with the book's one rule,
:func:`sdkit.book.stats.paired`: the mean paired difference over repetitions with its 95% t-interval, "better" or
"worse" only when the interval excludes 0. ``paired`` and ``verdict`` are :func:`sdkit.book.stats.paired` and
:func:`sdkit.book.stats.verdict`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import itertools
import math
import os
import shlex
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import Batch, BatchLoader, Data, Split, augment_batch
from ..datasets import load_dataset
from ..evaluate import evaluate, predict_logits
from ..extras.compress import count_nonzero, prune_global, quantize_dynamic_int8, sparsity, state_dict_bytes
from ..extras.tabular import load_tabular
from ..losses import _distillation_loss_unchecked, check_alpha, check_positive_int, check_temperature
from ..methods import Distill, Method, TrainContext
from ..models import build_model, count_parameters, frozen_copy
from ..self_kd import PSKD
from ..train import train
from ..utils import atomic_write_json, machine_info
from . import stats
from .stats import paired, verdict

__all__ = [
    "BUDGETS",
    "CachedDistill",
    "mean_std",
    "paired",
    "verdict",
    "expected_range",
    "Table",
    "markdown_table",
    "compression_table",
    "pruning_verdicts",
    "safe_sparsity",
    "tabular_table",
    "cost_table",
    "view_consistency",
    "teacher_overhead",
    "run_compression",
    "run_tabular",
    "run_grid",
    "run_cost",
    "run_all",
    "main",
]

BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "compression": dict(
            dataset="digits", train_size=None, test_size=None, model="mlp", epochs=15, seeds=2, T=4.0, alpha=0.9,
            amounts=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98), combined_amount=0.7, augment=False,
        ),
        "tabular": dict(datasets=("breast-cancer", "wine"), seeds=5, epochs=25, batch_size=32, T=4.0, alpha=0.9),
        "grid": dict(
            dataset="digits", train_size=None, test_size=None, val_fraction=0.25, model="mlp", epochs=10, seeds=2,
            temperatures=(1.0, 2.0, 4.0, 8.0, 16.0), alphas=(0.1, 0.5, 0.9), augment=False,
        ),
        "cost": dict(
            dataset="fashion-mnist-sample", train_size=3000, test_size=2000, model="mlp", epochs=5, seeds=1, T=4.0,
            alpha=0.9, pskd_alpha=0.8, benchmark=dict(mlp_steps=20, cnn_steps=6, cnn_width=0.5, repeats=4),
        ),
    },
    "full": {
        "compression": dict(
            dataset="fashion-mnist", train_size=10000, test_size=None, model="mlp", epochs=10, seeds=3, T=4.0,
            alpha=0.9, amounts=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98), combined_amount=0.7, augment=False,
        ),
        "tabular": dict(datasets=("breast-cancer", "wine"), seeds=15, epochs=30, batch_size=32, T=4.0, alpha=0.9),
        "grid": dict(
            dataset="fashion-mnist", train_size=6000, test_size=None, val_fraction=0.1, model="mlp", epochs=8,
            seeds=2, temperatures=(1.0, 2.0, 4.0, 8.0, 16.0), alphas=(0.1, 0.5, 0.9), augment=False,
        ),
        "cost": dict(
            dataset="fashion-mnist", train_size=10000, test_size=None, model="mlp", epochs=8, seeds=3, T=4.0,
            alpha=0.9, pskd_alpha=0.8, benchmark=dict(mlp_steps=40, cnn_steps=15, cnn_width=0.5, repeats=7),
        ),
    },
}  # fmt: skip

CPU = torch.device("cpu")


# ---------------------------------------------------------------------------------------------------- statistics


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value) of ``values``, with their count ``n``
    (see :func:`sdkit.book.stats.mean_std`)."""
    mean, std = stats.mean_std(values, single=0.0)
    return {"mean": mean, "std": std, "n": len(values)}


def expected_range(m: int, n_draws: int = 200_000, seed: int = 0) -> float:
    """Expected range (max - min) of ``m`` independent standard normal draws (``d_m`` of control charts:
    1.128 for 2, 3.472 for 15), estimated with a seeded Monte Carlo average."""
    if isinstance(m, bool) or not isinstance(m, int) or m < 2:
        raise ValueError(f"m must be an integer >= 2, got m={m!r}")
    z = np.random.default_rng(seed).standard_normal((n_draws, m))
    return float((z.max(1) - z.min(1)).mean())


# ---------------------------------------------------------------------------------------------------- helpers


class CachedDistill(Method):
    """Distillation from teacher logits computed ONCE, before training, on the un-augmented training inputs.

    Same loss as :class:`sdkit.methods.Distill`, ``(1 - alpha) * CE + alpha * T^2 * KL(teacher || student)``, but
    the teacher's logits for sample ``i`` are looked up by index instead of being recomputed on the augmented view
    the student sees. It saves one teacher forward pass per batch; with augmentation the teacher then labels a
    different view (the clean image) from the one the student is trained on. ``cache_seconds`` is the time of the
    one pass over the training split.
    """

    name = "kd-cached"

    def __init__(self, teacher: nn.Module, T: float = 4.0, alpha: float = 0.9) -> None:
        super().__init__()
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be an nn.Module, got {type(teacher).__name__}")
        self.T, self.alpha = check_temperature(T), check_alpha(alpha)
        self.teacher = frozen_copy(teacher)
        self.cache_seconds = float("nan")

    def setup(self, model: nn.Module, ctx: TrainContext) -> None:
        super().setup(model, ctx)
        start = time.perf_counter()
        self.teacher.to(ctx.device)
        self.cached = predict_logits(self.teacher, ctx.loader.x, device=ctx.device).to(ctx.device)
        self.cache_seconds = time.perf_counter() - start

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        return _distillation_loss_unchecked(logits, self.cached[batch.index], batch.y, self.T, self.alpha)


def _load(spec: dict[str, Any]) -> Data:
    kwargs = {k: spec[k] for k in ("train_size", "test_size") if spec.get(k) is not None}
    if "val_fraction" in spec:
        kwargs["val_fraction"] = spec["val_fraction"]
    return load_dataset(spec["dataset"], **kwargs)


def _maker(name: str, data: Data, width: float = 1.0):
    """``make(seed)`` -> a fresh model ``name`` for ``data``, initialised from ``seed``."""

    def make(seed: int) -> nn.Module:
        return build_model(name, data.input_shape, data.num_classes, width=width, seed=seed)

    return make


def _train(model: nn.Module, data: Data, spec: dict[str, Any], seed: int, **kwargs: Any):
    start = time.perf_counter()
    history = train(
        model,
        data,
        epochs=spec["epochs"],
        batch_size=spec.get("batch_size", 128),
        augment=spec.get("augment", True),
        device=CPU,
        seed=seed,
        progress=False,
        **kwargs,
    )
    return history, time.perf_counter() - start


ROLES = ("teacher", "distilled student", "student alone")


def _teacher_and_students(model: str, data: Data, spec: dict[str, Any], s: int) -> dict[str, nn.Module]:
    """The three models of one repetition, trained in this order: a teacher (seed ``s``), its distilled student
    (seed ``s + 1``) and the student's plain twin (seed ``s + 1``: same initialisation and data order), by role."""
    make = _maker(model, data)
    teacher = make(s)
    _train(teacher, data, spec, s)
    student = make(s + 1)
    _train(student, data, spec, s + 1, teacher=teacher, T=spec["T"], alpha=spec["alpha"])
    alone = make(s + 1)
    _train(alone, data, spec, s + 1)
    return dict(zip(ROLES, (teacher, student, alone), strict=True))


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict_logits(model, x, device=CPU).argmax(-1) == y).float().mean())


def _inference_ms(model: nn.Module, x: torch.Tensor, repeats: int = 5) -> float:
    """Best-of-``repeats`` CPU time to predict ``x`` in batches of 1024, in milliseconds per 1000 inputs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predict_logits(model, x, device=CPU)
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best * 1000.0 / len(x)


def _summaries(rows: list[dict[str, Any]], keys: Sequence[str], value: str) -> dict[str, dict[str, float]]:
    """Group ``rows`` by the values of ``keys`` (joined by ``|``) and summarise ``value`` with :func:`mean_std`."""
    groups = stats.group(rows, lambda row: "|".join(str(row[k]) for k in keys))
    return {k: mean_std([row[value] for row in members]) for k, members in groups.items()}


# ---------------------------------------------------------------------------------------------------- 1. compression


def _variant_row(base: dict[str, Any], variant: str, amount: float, model: nn.Module, test: Split) -> dict[str, Any]:
    """One compressed variant's test accuracy, sparsity, nonzero parameters and stored size (CSR too, except int8)."""
    return {
        **base,
        "variant": variant,
        "amount": amount,
        "accuracy": _accuracy(model, test.x, test.y),
        "sparsity": sparsity(model),
        "nonzero": count_nonzero(model),
        "bytes": state_dict_bytes(model),
        "sparse_bytes": state_dict_bytes(model, sparse=True) if variant == "pruned" else float("nan"),
    }


def run_compression(spec: dict[str, Any]) -> dict[str, Any]:
    """Teacher, distilled student and the same student trained alone; each pruned (global L1, several fractions)
    and int8-quantized; test accuracy, stored size and nonzero parameters of every variant, over seeds."""
    data = _load(spec)
    test_x = data.test.x
    rows, timing = [], []
    for i in range(spec["seeds"]):
        for role, model in _teacher_and_students(spec["model"], data, spec, 1000 * i).items():
            base = {"seed": i, "model": role}
            for amount in spec["amounts"]:
                rows.append(_variant_row(base, "pruned", amount, prune_global(model, amount), data.test))
            for amount in (0.0, spec["combined_amount"]):
                int8 = quantize_dynamic_int8(prune_global(model, amount))
                rows.append(_variant_row(base, "int8", amount, int8, data.test))
            if i == 0:
                q = quantize_dynamic_int8(model)
                timing.append(
                    {
                        "model": role,
                        "float_ms_per_1000": _inference_ms(model, test_x),
                        "int8_ms_per_1000": _inference_ms(q, test_x),
                    }
                )
    return {
        "spec": spec,
        "dataset": {"name": data.name, "train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "parameters": count_parameters(build_model(spec["model"], data.input_shape, data.num_classes)),
        "engine": torch.backends.quantized.engine,
        "rows": rows,
        "accuracy": _summaries(rows, ("model", "variant", "amount"), "accuracy"),
        "inference": timing,
    }


# ---------------------------------------------------------------------------------------------------- 2. tabular


def run_tabular(spec: dict[str, Any]) -> dict[str, Any]:
    """Born-again on bundled tables: per seed a fresh stratified split, a teacher, its distilled student and the
    student's plain twin (same seed); test accuracy and NLL of each."""
    out: dict[str, Any] = {"spec": spec, "datasets": {}}
    for name in spec["datasets"]:
        rows = []
        for i in range(spec["seeds"]):
            data = load_tabular(name, seed=i)
            for role, model in _teacher_and_students("mlp", data, spec, 1000 * i).items():
                metrics = evaluate(model, data.test, device=CPU)
                rows.append({"seed": i, "model": role, "accuracy": metrics["accuracy"], "nll": metrics["nll"]})
        acc = {r: [row["accuracy"] for row in rows if row["model"] == r] for r in ROLES}
        nll = {r: [row["nll"] for row in rows if row["model"] == r] for r in ROLES}
        out["datasets"][name] = {
            "sizes": {
                "train": len(data.train),
                "val": len(data.val),
                "test": len(data.test),
                "features": data.num_features,
                "classes": data.num_classes,
            },
            "rows": rows,
            "accuracy": {r: mean_std(v) for r, v in acc.items()},
            "nll": {r: mean_std(v) for r, v in nll.items()},
            "student_vs_teacher": paired(acc["distilled student"], acc["teacher"]),
            "student_vs_alone": paired(acc["distilled student"], acc["student alone"]),
            "nll_student_vs_alone": paired(nll["distilled student"], nll["student alone"]),
        }
    return out


# ---------------------------------------------------------------------------------------------------- 3. T and alpha


def run_grid(spec: dict[str, Any]) -> dict[str, Any]:
    """Born-again students over a grid of temperatures and soft weights, ``spec["seeds"]`` students per cell
    (the same student seeds in every cell), one teacher. The cell with the best mean VALIDATION accuracy is chosen
    and only its students are evaluated on the test split, next to the teacher and plain students (alpha = 0).

    Noise: ``seed_std`` is the median over cells of the seed-to-seed standard deviation within a cell (a median,
    so that one unstable cell does not set the noise level of all). If the cells did not differ at all, the range
    (max - min) of the ``m`` cell means, each an average of ``k`` seeds, would be about
    ``noise_range = d_m * seed_std / sqrt(k)`` (:func:`expected_range`); ``grid_range`` is compared with it.
    """
    if spec["seeds"] < 2:
        raise ValueError(f"the grid needs seeds >= 2 per cell to measure seed noise, got seeds={spec['seeds']!r}")
    data = _load(spec)
    make = _maker(spec["model"], data)
    start = time.perf_counter()
    teacher = make(0)
    teacher_history, _ = _train(teacher, data, spec, 0)
    seeds = [1000 * j + 1 for j in range(spec["seeds"])]
    plain_models, plain_val = [], []
    for s in seeds:
        model = make(s)
        history, _ = _train(model, data, spec, s)
        plain_models.append(model)
        plain_val.append(max(history["val_accuracy"]))
    temperatures, alphas = list(spec["temperatures"]), list(spec["alphas"])
    val = np.zeros((len(alphas), len(temperatures), len(seeds)))
    models: dict[tuple[int, int], list[nn.Module]] = {}
    for a, alpha in enumerate(alphas):
        for t, T in enumerate(temperatures):
            for k, s in enumerate(seeds):
                model = make(s)
                history, _ = _train(model, data, spec, s, teacher=teacher, T=T, alpha=alpha)
                val[a, t, k] = max(history["val_accuracy"])  # the restored (best-val) epoch's accuracy
                models.setdefault((a, t), []).append(model)
    means = val.mean(-1)
    a_best, t_best = np.unravel_index(int(np.argmax(means)), means.shape)  # first maximum in (alpha, T) order
    chosen_test = [evaluate(m, data.test, device=CPU)["accuracy"] for m in models[(a_best, t_best)]]
    cell_std = val.std(axis=-1, ddof=1)
    seed_std = float(np.median(cell_std))  # robust: one unstable cell does not set the noise level of all
    a_worst, t_worst = np.unravel_index(int(np.argmax(cell_std)), cell_std.shape)
    n_cells = means.size
    return {
        "spec": spec,
        "dataset": {"name": data.name, "train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "temperatures": temperatures,
        "alphas": alphas,
        "val_accuracy": val.tolist(),
        "val_mean": means.tolist(),
        "teacher": {"val": max(teacher_history["val_accuracy"]), "test": evaluate(teacher, data.test)["accuracy"]},
        "plain": {
            "val": mean_std(plain_val),
            "test": mean_std([evaluate(m, data.test, device=CPU)["accuracy"] for m in plain_models]),
        },
        "chosen": {
            "T": temperatures[t_best],
            "alpha": alphas[a_best],
            "val": mean_std(val[a_best, t_best].tolist()),
            "test": mean_std(chosen_test),
        },
        "grid_range": float(means.max() - means.min()),
        "seed_std": seed_std,
        "cell_std": cell_std.tolist(),
        "most_variable_cell": {"T": temperatures[t_worst], "alpha": alphas[a_worst], "std": float(cell_std.max())},
        "noise_range": expected_range(n_cells) * seed_std / math.sqrt(len(seeds)),
        "seconds": time.perf_counter() - start,
    }


# ---------------------------------------------------------------------------------------------------- 4. cost


def _epoch_seconds(history) -> list[float]:
    return [r["seconds"] for r in history.records]


def _overhead(distill_history, plain_history) -> float:
    """(fastest distillation epoch) / (fastest plain epoch), the first epoch (warm-up) left out when there are more.

    The fastest epoch is the usual benchmark estimate on a shared machine: other processes can only add time."""
    d, p = _epoch_seconds(distill_history), _epoch_seconds(plain_history)
    return min(d[1:] or d) / min(p[1:] or p)


@torch.no_grad()
def view_consistency(teacher: nn.Module, data: Data, T: float, seed: int = 0) -> dict[str, float]:
    """How different the teacher's soft labels are on the clean training images (what a cache stores) and on one
    randomly augmented view of each (what the student sees): argmax disagreement, mean KL(clean || view) at ``T``
    (times ``T^2``, as in the loss) and the teacher's accuracy on each."""
    generator = torch.Generator().manual_seed(seed)
    clean = predict_logits(teacher, data.train.x, device=CPU)
    views = augment_batch(data.train.x, data.augment, generator)
    view = predict_logits(teacher, views, device=CPU)
    kl = F.kl_div(F.log_softmax(view / T, -1), F.log_softmax(clean / T, -1), reduction="batchmean", log_target=True)
    return {
        "disagreement": float((clean.argmax(-1) != view.argmax(-1)).float().mean()),
        "kl_T2": float(kl) * T**2,
        "teacher_acc_clean": float((clean.argmax(-1) == data.train.y).float().mean()),
        "teacher_acc_view": float((view.argmax(-1) == data.train.y).float().mean()),
    }


def teacher_overhead(
    model_name: str,
    data: Data,
    *,
    width: float = 1.0,
    batch_size: int = 128,
    steps: int = 10,
    repeats: int = 5,
    T: float = 4.0,
    alpha: float = 0.9,
    seed: int = 0,
) -> dict[str, Any]:
    """How much an online teacher slows training down: the time of ``steps`` training steps (forward, loss,
    backward, optimizer step) with plain cross-entropy, with :class:`sdkit.methods.Distill` (one extra teacher
    forward pass per batch) and with :class:`CachedDistill` (teacher logits looked up), alternated ``repeats``
    times on the same augmented batches after one warm-up round.

    ``ratio`` = (fastest distillation repeat) / (fastest plain repeat), ``cached_ratio`` the same for the cache
    (whose one-off pass over the training split, ``cache_seconds``, is not included). On a shared machine other
    processes can only add time, so the fastest repeat is the best estimate of the true cost, and alternating the
    objectives exposes all of them to the same conditions. Since an epoch is ``N / batch_size`` such steps, these
    are also the per-epoch ratios.
    """
    check_positive_int(steps, "steps")
    check_positive_int(repeats, "repeats")
    make = _maker(model_name, data, width)
    teacher, student = make(seed), make(seed + 1)
    channels_last = any(isinstance(m, nn.Conv2d) for m in student.modules())
    if channels_last:
        student.to(memory_format=torch.channels_last)
    loader = BatchLoader(data.train, batch_size, augment=data.augment, seed=seed, drop_last=True,
                         channels_last=channels_last)  # fmt: skip
    batches = list(itertools.islice(iter(loader), steps))
    methods = {"plain": Method(), "kd": Distill(teacher, T, alpha), "cached": CachedDistill(teacher, T, alpha)}
    ctx = TrainContext(loader, data.num_classes, epochs=1, device=CPU)
    for method in methods.values():
        method.setup(student, ctx)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
    student.train()
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    for r in range(repeats + 1):
        for name, method in methods.items():
            start = time.perf_counter()
            for batch in batches:
                loss = method.loss(student, batch, student(batch.x), 0)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if r > 0:  # round 0 is the warm-up
                seconds[name].append(time.perf_counter() - start)
    return {
        "plain_seconds": seconds["plain"],
        "kd_seconds": seconds["kd"],
        "cached_seconds": seconds["cached"],
        "ratio": min(seconds["kd"]) / min(seconds["plain"]),
        "cached_ratio": min(seconds["cached"]) / min(seconds["plain"]),
        "cache_seconds": methods["cached"].cache_seconds,
        "images_per_repeat": len(batches) * batch_size,
    }


def run_cost(spec: dict[str, Any]) -> dict[str, Any]:
    """Wall time and test accuracy of plain training (= the teacher's run), born-again (teacher + student: two
    runs), born-again with cached teacher outputs, and PS-KD (one run); the per-epoch time ratios of those runs;
    the overhead of the online teacher's forward pass measured by :func:`teacher_overhead` (the mlp, and a small
    CNN); and the consistency cost of caching under augmentation (:func:`view_consistency`)."""
    data = _load(spec)
    runs, overhead = [], []
    consistency: dict[str, float] = {}
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    for i in range(spec["seeds"]):
        s = 1000 * i
        make = _maker(spec["model"], data)
        teacher = make(s)
        h_plain, w_plain = _train(teacher, data, spec, s)
        student = make(s + 1)
        h_kd, w_kd = _train(student, data, spec, s + 1, teacher=teacher, T=spec["T"], alpha=spec["alpha"])
        cached = make(s + 1)
        method = CachedDistill(teacher, spec["T"], spec["alpha"])
        h_cache, w_cache = _train(cached, data, spec, s + 1, method=method)
        pskd = make(s + 1)
        h_pskd, w_pskd = _train(pskd, data, spec, s + 1, method=PSKD(alpha_T=spec["pskd_alpha"]))
        acc = {
            k: evaluate(m, data.test, device=CPU)["accuracy"]
            for k, m in (("plain", teacher), ("kd", student), ("cached", cached), ("pskd", pskd))
        }
        runs += [
            {
                "seed": i,
                "method": "plain (one run)",
                "wall": w_plain,
                "loop": h_plain.seconds,
                "accuracy": acc["plain"],
            },
            {
                "seed": i,
                "method": "born-again (teacher + student)",
                "wall": w_plain + w_kd,
                "loop": h_plain.seconds + h_kd.seconds,
                "accuracy": acc["kd"],
            },
            {
                "seed": i,
                "method": "born-again, cached teacher",
                "wall": w_plain + w_cache,
                "loop": h_plain.seconds + h_cache.seconds + method.cache_seconds,
                "accuracy": acc["cached"],
            },
            {"seed": i, "method": "PS-KD (one run)", "wall": w_pskd, "loop": h_pskd.seconds, "accuracy": acc["pskd"]},
        ]
        overhead.append(
            {
                "seed": i,
                "model": spec["model"],
                "kd_over_plain": _overhead(h_kd, h_plain),
                "cached_over_plain": _overhead(h_cache, h_plain),
                "pskd_over_plain": _overhead(h_pskd, h_plain),
                "cache_seconds": method.cache_seconds,
                "plain_epoch_seconds": float(np.median(_epoch_seconds(h_plain))),
                "epoch_seconds": {
                    "plain": _epoch_seconds(h_plain),
                    "kd": _epoch_seconds(h_kd),
                    "cached": _epoch_seconds(h_cache),
                    "pskd": _epoch_seconds(h_pskd),
                },  # fmt: skip
            }
        )
        if i == 0:
            consistency = view_consistency(teacher, data, spec["T"])
    bench = spec["benchmark"]
    common = dict(repeats=bench["repeats"], T=spec["T"], alpha=spec["alpha"])
    cnn = teacher_overhead("cnn", data, width=bench["cnn_width"], steps=bench["cnn_steps"], **common)
    benchmark = [
        {"model": spec["model"], **teacher_overhead(spec["model"], data, steps=bench["mlp_steps"], **common)},
        {"model": f"cnn (width {bench['cnn_width']})", **cnn},
    ]
    methods = [r["method"] for r in runs[:4]]
    return {
        "spec": spec,
        "dataset": {"name": data.name, "train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "runs": runs,
        "summary": {
            m: {k: mean_std([r[k] for r in runs if r["method"] == m]) for k in ("wall", "loop", "accuracy")}
            for m in methods
        },
        "overhead": overhead,
        "benchmark": benchmark,
        "consistency": consistency,
        "load_average": list(load),
        "threads": torch.get_num_threads(),
    }


# ---------------------------------------------------------------------------------------------------- driver

SECTIONS = {"compression": run_compression, "tabular": run_tabular, "grid": run_grid, "cost": run_cost}


def run_all(mode: str = "quick", sections: Sequence[str] | None = None) -> dict[str, Any]:
    """Every section of the budget ``mode`` (or only ``sections``), with per-section wall times."""
    if mode not in BUDGETS:
        raise ValueError(f"mode must be one of {list(BUDGETS)}, got mode={mode!r}")
    sections = list(sections or SECTIONS)
    for name in sections:
        if name not in SECTIONS:
            raise ValueError(f"unknown section {name!r}; choose from {list(SECTIONS)}")
    result: dict[str, Any] = {"mode": mode, "section_seconds": {}}
    for name in sections:
        start = time.perf_counter()
        result[name] = SECTIONS[name](BUDGETS[mode][name])
        result["section_seconds"][name] = time.perf_counter() - start
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m sdkit.book.trend_experiments", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=list(BUDGETS), default="full")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: small models, shared CPU)")
    parser.add_argument("--sections", nargs="*", choices=list(SECTIONS), default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    started = dt.datetime.now(dt.timezone.utc)
    result = run_all(args.mode, args.sections)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    result.update(
        command="python -m sdkit.book.trend_experiments " + shlex.join(argv_list),
        date=started.isoformat(timespec="seconds"),
        wall_seconds=time.perf_counter() - start,
        machine=machine_info(),
    )
    atomic_write_json(args.out, result)
    print(f"wrote {args.out} in {result['wall_seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------------------------------------------- tables


def _pm(stat: dict[str, float], scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` of a :func:`mean_std` dict, scaled (percent by default); just the mean for one value."""
    if stat.get("n", 2) < 2:
        return f"{stat['mean'] * scale:.{digits}f} (one seed)"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


class Table:
    """A small table that shows as HTML in a notebook (and in the built book) and as Markdown text elsewhere."""

    def __init__(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.header = [str(h) for h in header]
        self.rows = [[str(c) for c in row] for row in rows]
        if any(len(row) != len(self.header) for row in self.rows):
            raise ValueError(f"every row needs {len(self.header)} cells (one per header entry)")

    @property
    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in self.rows])

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        return self.markdown

    __str__ = __repr__


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A :class:`Table` (HTML in a notebook, Markdown as text)."""
    return Table(header, rows)


def compression_table(result: dict[str, Any], amounts: Sequence[float] | None = None) -> Table:
    """Accuracy (mean ± std over seeds, %), stored size and nonzero parameters of each model and variant."""
    spec = result["spec"]
    amounts = list(amounts if amounts is not None else spec["amounts"])
    rows = []
    for role in ROLES:
        variants = [("pruned", a) for a in amounts] + [("int8", 0.0), ("int8", spec["combined_amount"])]
        for variant, amount in variants:
            sel = [
                r for r in result["rows"] if r["model"] == role and r["variant"] == variant and r["amount"] == amount
            ]
            if not sel:
                continue
            if variant == "pruned":
                name = "float32" if amount == 0 else f"pruned {amount:.0%}"
            else:
                name = "int8" if amount == 0 else f"pruned {amount:.0%} + int8"
            sparse = sel[0]["sparse_bytes"]
            rows.append([
                role, name, _pm(mean_std([r["accuracy"] for r in sel])), f"{sel[0]['bytes'] / 1024:.0f}",
                "-" if not math.isfinite(sparse) else f"{sparse / 1024:.0f}", f"{sel[0]['nonzero']:,}",
            ])  # fmt: skip
    header = ["model", "variant", "test accuracy (%)", "state_dict (KiB)", "as CSR (KiB)", "nonzero parameters"]
    return markdown_table(header, rows)


def pruning_verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per pruning fraction, the distilled student against its plain twin, :func:`sdkit.book.stats.paired` over seeds:
    ``diff`` (accuracy minus the twin's) with its interval ``low``/``high`` and ``verdict``; and the same for the
    accuracy *lost to pruning* (pruned minus unpruned, so that a student that starts lower is not blamed for it)
    as ``drop_diff``, ``drop_low``, ``drop_high`` and ``drop_verdict``."""

    def accuracies(role: str, amount: float) -> list[float]:
        sel = [r for r in result["rows"] if r["model"] == role and r["variant"] == "pruned" and r["amount"] == amount]
        return [r["accuracy"] for r in sorted(sel, key=lambda r: r["seed"])]

    base = {role: np.array(accuracies(role, 0.0)) for role in ("distilled student", "student alone")}
    out = []
    for amount in result["spec"]["amounts"]:
        acc = {role: np.array(accuracies(role, amount)) for role in base}
        p = paired(acc["distilled student"], acc["student alone"])
        drop = paired(
            acc["distilled student"] - base["distilled student"], acc["student alone"] - base["student alone"]
        )
        row = {"amount": amount, **p}
        row.update({f"drop_{k}": drop[k] for k in ("diff", "low", "high", "verdict")})
        out.append(row)
    return out


def safe_sparsity(result: dict[str, Any], role: str, tolerance: float = 0.01) -> float:
    """The largest pruning fraction whose mean accuracy is within ``tolerance`` of the unpruned mean."""
    acc = result["accuracy"]
    base = acc[f"{role}|pruned|0.0"]["mean"]
    ok = [a for a in result["spec"]["amounts"] if acc[f"{role}|pruned|{a}"]["mean"] >= base - tolerance]
    return max(ok)


def tabular_table(result: dict[str, Any]) -> Table:
    """Test accuracy and NLL per dataset and model, and the paired differences of the distilled student."""
    rows = []
    for name, d in result["datasets"].items():
        for role in ROLES:
            rows.append([name, role, _pm(d["accuracy"][role]), _pm(d["nll"][role], 1.0, 3)])
    return markdown_table(["dataset", "model", "test accuracy (%)", "test NLL (nats)"], rows)


def cost_table(result: dict[str, Any]) -> Table:
    """Wall time (with validation), training-loop time and test accuracy of each method, relative to plain."""
    summary = result["summary"]
    plain = summary["plain (one run)"]
    rows = []
    for method, s in summary.items():
        rows.append([
            method, f"{s['wall']['mean']:.1f}", f"{s['wall']['mean'] / plain['wall']['mean']:.2f}",
            f"{s['loop']['mean']:.1f}", f"{s['loop']['mean'] / plain['loop']['mean']:.2f}", _pm(s["accuracy"]),
        ])  # fmt: skip
    header = ["method", "wall (s)", "x plain", "training loop (s)", "x plain", "test accuracy (%)"]
    return markdown_table(header, rows)
