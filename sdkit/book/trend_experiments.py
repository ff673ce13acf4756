"""The experiments of the chapter "Trends and challenges": compression, a tabular domain, choosing T, training cost.

Each ``run_*`` function takes one section of a budget (see :data:`BUDGETS`) and returns a JSON-ready dict. The
command line runs all four and writes one file with the machine, the date, the wall time and the command::

    python -m sdkit.book.trend_experiments --mode full --out book/results/trends_full.json

``quick`` is what the chapter runs live (about two minutes on a 2-core CPU); ``full`` is sized to finish in about
a quarter of an hour on the same CPU (no GPU needed).

Learning rate. Every section trains its multilayer perceptrons with SGD at a peak ``lr`` of 0.05 (one-cycle), half
sdkit's default. At 0.1 the distilled students sat at the edge of stability: with a confident teacher the soft term
``alpha * T^2 * KL`` keeps the loss's curvature up while the student's weights grow, and the largest eigenvalue of
the training loss's Hessian climbed past ``2 / lr`` (measured with power iteration on wine, seed 4: 48 against
21 at epoch 5, when the loss started to rise), so the run diverged at epoch 12; the grid's ``T = 16, alpha = 0.9``
students diverged the same way. Plain training's curvature stays near 3 there. At 0.05 no run of either budget
diverges or sees its training loss rise (``tests/test_trend_stability.py`` checks the tabular budget on every seed).

Seeds. Repetition ``i`` uses seed ``1000 * i`` for a teacher and ``1000 * i + 1`` for its student; the student
"trained alone" uses the student's seed too, so that a distilled student and its plain twin share their
initialisation and data order and differ only in the teacher. Differences are judged with the book's one rule,
:func:`sdkit.book.stats.paired`: the mean paired difference over repetitions with its 95% t-interval, "better" or
"worse" only when the interval excludes 0. ``paired`` and ``verdict`` are :func:`sdkit.book.stats.paired` and
:func:`sdkit.book.stats.verdict`.

The code is split by job: the shared training helpers are in :mod:`sdkit.book.trend_training`, the cost
experiment in :mod:`sdkit.book.trend_cost` (its names are re-exported here), the chapter's tables in
:mod:`sdkit.book.trend_tables`, its verdicts and short printed reports in :mod:`sdkit.book.trend_reports` and its
figures in :mod:`sdkit.book.trend_plots`.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Split
from ..evaluate import evaluate, predict_logits
from ..extras.compress import count_nonzero, prune_global, quantize_dynamic_int8, sparsity, state_dict_bytes
from ..extras.tabular import load_tabular
from ..models import build_model, count_parameters
from ..utils import atomic_write_json, check_seeds, stamped
from .stats import paired, verdict
from .trend_cost import CachedDistill, run_cost, teacher_overhead, view_consistency
from .trend_training import (
    CPU,
    ROLES,
    accuracy_on,
    load_spec_data,
    mean_std_record,
    model_maker,
    summaries,
    teacher_and_students,
    train_timed,
)

__all__ = [
    "BUDGETS",
    "ROLES",
    "CachedDistill",
    "mean_std_record",
    "paired",
    "verdict",
    "expected_range",
    "view_consistency",
    "teacher_overhead",
    "run_compression",
    "run_tabular",
    "run_grid",
    "run_cost",
    "run_all",
    "main",
]

#: The peak SGD learning rate of every trend run (see "Learning rate" above: 0.1 diverged).
LR = 0.05

BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "compression": dict(
            dataset="digits", train_size=None, test_size=None, model="mlp", epochs=15, seeds=(0, 1), lr=LR, T=4.0,
            alpha=0.9, amounts=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98), combined_amount=0.7, augment=False,
        ),
        "tabular": dict(
            datasets=("breast-cancer", "wine"), seeds=tuple(range(5)), epochs=25, batch_size=32, lr=LR, T=4.0,
            alpha=0.9,
        ),
        "grid": dict(
            dataset="digits", train_size=None, test_size=None, val_fraction=0.25, model="mlp", epochs=10, seeds=(0, 1),
            lr=LR, temperatures=(1.0, 2.0, 4.0, 8.0, 16.0), alphas=(0.1, 0.5, 0.9), augment=False,
        ),
        "cost": dict(
            dataset="fashion-mnist-sample", train_size=3000, test_size=2000, model="mlp", epochs=5, seeds=(0,), lr=LR,
            T=4.0, alpha=0.9, pskd_alpha=0.8, benchmark=dict(mlp_steps=20, cnn_steps=6, cnn_width=0.5, repeats=4),
        ),
    },
    "full": {
        "compression": dict(
            dataset="fashion-mnist", train_size=10000, test_size=None, model="mlp", epochs=10, seeds=(0, 1, 2), lr=LR,
            T=4.0, alpha=0.9, amounts=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98), combined_amount=0.7, augment=False,
        ),
        "tabular": dict(
            datasets=("breast-cancer", "wine"), seeds=tuple(range(15)), epochs=30, batch_size=32, lr=LR, T=4.0,
            alpha=0.9,
        ),
        "grid": dict(
            dataset="fashion-mnist", train_size=6000, test_size=None, val_fraction=0.1, model="mlp", epochs=8, lr=LR,
            seeds=(0, 1), temperatures=(1.0, 2.0, 4.0, 8.0, 16.0), alphas=(0.1, 0.5, 0.9), augment=False,
        ),
        "cost": dict(
            dataset="fashion-mnist", train_size=10000, test_size=None, model="mlp", epochs=8, seeds=(0, 1, 2), lr=LR,
            T=4.0, alpha=0.9, pskd_alpha=0.8, benchmark=dict(mlp_steps=40, cnn_steps=15, cnn_width=0.5, repeats=7),
        ),
    },
}  # fmt: skip


def expected_range(m: int, n_draws: int = 200_000, seed: int = 0) -> float:
    """Expected range (max - min) of ``m`` independent standard normal draws (``d_m`` of control charts:
    1.128 for 2, 3.472 for 15), estimated with a seeded Monte Carlo average."""
    if isinstance(m, bool) or not isinstance(m, int) or m < 2:
        raise ValueError(f"m must be an integer >= 2, got m={m!r}")
    z = np.random.default_rng(seed).standard_normal((n_draws, m))
    return float((z.max(1) - z.min(1)).mean())


# ---------------------------------------------------------------------------------------------------- 1. compression


def _inference_ms(model: nn.Module, x: torch.Tensor, repeats: int = 5) -> float:
    """Best-of-``repeats`` CPU time to predict ``x`` in batches of 1024, in milliseconds per 1000 inputs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predict_logits(model, x, device=CPU)
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best * 1000.0 / len(x)


def _variant_row(base: dict[str, Any], variant: str, amount: float, model: nn.Module, test: Split) -> dict[str, Any]:
    """One compressed variant's test accuracy, sparsity, nonzero parameters and stored size (CSR too, except int8)."""
    return {
        **base,
        "variant": variant,
        "amount": amount,
        "accuracy": accuracy_on(model, test.x, test.y),
        "sparsity": sparsity(model),
        "nonzero": count_nonzero(model),
        "bytes": state_dict_bytes(model),
        "sparse_bytes": state_dict_bytes(model, sparse=True) if variant == "pruned" else float("nan"),
    }


def run_compression(spec: dict[str, Any]) -> dict[str, Any]:
    """Teacher, distilled student and the same student trained alone; each pruned (global L1, several fractions)
    and int8-quantized; test accuracy, stored size and nonzero parameters of every variant, over seeds."""
    data = load_spec_data(spec)
    test_x = data.test.x
    rows, timing = [], []
    for i in check_seeds(spec["seeds"]):
        for role, model in teacher_and_students(spec["model"], data, spec, 1000 * i).items():
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
        "accuracy": summaries(rows, ("model", "variant", "amount"), "accuracy"),
        "inference": timing,
    }


# ---------------------------------------------------------------------------------------------------- 2. tabular


def run_tabular(spec: dict[str, Any]) -> dict[str, Any]:
    """Born-again on bundled tables: per seed a fresh stratified split, a teacher, its distilled student and the
    student's plain twin (same seed); test accuracy and NLL of each."""
    out: dict[str, Any] = {"spec": spec, "datasets": {}}
    for name in spec["datasets"]:
        rows = []
        for i in check_seeds(spec["seeds"]):
            data = load_tabular(name, seed=i)
            for role, model in teacher_and_students("mlp", data, spec, 1000 * i).items():
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
            "accuracy": {r: mean_std_record(v) for r, v in acc.items()},
            "nll": {r: mean_std_record(v) for r, v in nll.items()},
            "student_vs_teacher": paired(acc["distilled student"], acc["teacher"]),
            "student_vs_alone": paired(acc["distilled student"], acc["student alone"]),
            "nll_student_vs_alone": paired(nll["distilled student"], nll["student alone"]),
        }
    return out


# ---------------------------------------------------------------------------------------------------- 3. T and alpha


def run_grid(spec: dict[str, Any]) -> dict[str, Any]:
    """Born-again students over a grid of temperatures and soft weights, one student per seed of ``spec["seeds"]``
    in each cell (the same student seeds in every cell), one teacher. The cell with the best mean VALIDATION
    accuracy is chosen and only its students are evaluated on the test split, next to the teacher and plain
    students (alpha = 0).

    Noise: ``seed_std`` is the median over cells of the seed-to-seed standard deviation within a cell (a median,
    so that one unstable cell does not set the noise level of all). If the cells did not differ at all, the range
    (max - min) of the ``m`` cell means, each an average of ``k`` seeds, would be about
    ``noise_range = d_m * seed_std / sqrt(k)`` (:func:`expected_range`); ``grid_range`` is compared with it.
    """
    if len(check_seeds(spec["seeds"])) < 2:
        raise ValueError(f"the grid needs at least 2 seeds per cell to measure seed noise, got seeds={spec['seeds']!r}")
    data = load_spec_data(spec)
    make = model_maker(spec["model"], data)
    start = time.perf_counter()
    teacher = make(0)
    teacher_history, _ = train_timed(teacher, data, spec, 0)
    seeds = [1000 * j + 1 for j in spec["seeds"]]
    plain_models, plain_val = [], []
    for s in seeds:
        model = make(s)
        history, _ = train_timed(model, data, spec, s)
        plain_models.append(model)
        plain_val.append(max(history["val_accuracy"]))
    temperatures, alphas = list(spec["temperatures"]), list(spec["alphas"])
    val = np.zeros((len(alphas), len(temperatures), len(seeds)))
    models: dict[tuple[int, int], list[nn.Module]] = {}
    for a, alpha in enumerate(alphas):
        for t, T in enumerate(temperatures):
            for k, s in enumerate(seeds):
                model = make(s)
                history, _ = train_timed(model, data, spec, s, teacher=teacher, T=T, alpha=alpha)
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
            "val": mean_std_record(plain_val),
            "test": mean_std_record([evaluate(m, data.test, device=CPU)["accuracy"] for m in plain_models]),
        },
        "chosen": {
            "T": temperatures[t_best],
            "alpha": alphas[a_best],
            "val": mean_std_record(val[a_best, t_best].tolist()),
            "test": mean_std_record(chosen_test),
        },
        "grid_range": float(means.max() - means.min()),
        "seed_std": seed_std,
        "cell_std": cell_std.tolist(),
        "most_variable_cell": {"T": temperatures[t_worst], "alpha": alphas[a_worst], "std": float(cell_std.max())},
        "noise_range": expected_range(n_cells) * seed_std / math.sqrt(len(seeds)),
        "seconds": time.perf_counter() - start,
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
    result = run_all(args.mode, args.sections)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    result = stamped(result, seconds=time.perf_counter() - start,
                     command="python -m sdkit.book.trend_experiments " + shlex.join(argv_list))  # fmt: skip
    atomic_write_json(args.out, result)
    print(f"wrote {args.out} in {result['wall_seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()
