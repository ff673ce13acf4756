"""The result tables of the chapter "Trends and challenges": what each experiment measured, one row per model,
method or benchmark, as :class:`~sdkit.evaluate.Table` (HTML in the book, aligned text elsewhere).

Each function takes the dict that one ``run_*`` function of :mod:`sdkit.book.trend_experiments` returns (or its
entry in the committed ``book/results/trends_full.json``) and only formats it: the numbers are computed by the
experiments. Accuracies are shown in percent as ``mean ± std`` over seeds (sample std), or the single value with
"(one seed)" when there is one. The verdicts (paired comparisons) are in :mod:`sdkit.book.trend_verdicts`.

>>> row = {"seed": 0, "model": "teacher", "variant": "pruned", "amount": 0.0, "accuracy": 0.9,
...        "bytes": 4096, "sparse_bytes": 8192, "nonzero": 1000}
>>> print(compression_table({"spec": {"amounts": [0.0], "combined_amount": 0.5}, "rows": [row]}))
model    variant  test accuracy (%)  state_dict (KiB)  as CSR (KiB)  nonzero
-------  -------  -----------------  ----------------  ------------  -------
teacher  float32    90.0 (one seed)                 4             8    1,000
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..evaluate import Table
from .trend_training import ROLES, mean_std_record

__all__ = [
    "check_result",
    "mean_pm_std",
    "compression_table",
    "inference_table",
    "tabular_table",
    "cost_table",
    "benchmark_table",
    "epoch_ratio_table",
    "method_cost_table",
]

PLAIN = "plain (one run)"  # the baseline method of the cost experiment


def check_result(result: Any, keys: Iterable[str], name: str, source: str) -> None:
    """Raise a ValueError naming ``name`` unless ``result`` is a dict holding every one of ``keys``.

    ``source`` says where such a dict comes from, so that the message tells the reader what to pass instead.

    >>> check_result({"spec": {}}, ["spec", "rows"], "result", "te.run_compression")
    Traceback (most recent call last):
    ...
    ValueError: result must be the dict returned by te.run_compression; it lacks ['rows']
    """
    if not isinstance(result, Mapping):
        raise ValueError(f"{name} must be the dict returned by {source}, got {type(result).__name__}")
    missing = [k for k in keys if k not in result]
    if missing:
        raise ValueError(f"{name} must be the dict returned by {source}; it lacks {missing}")


def mean_pm_std(stat: Mapping[str, float], scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` of a :func:`~sdkit.book.trend_training.mean_std` dict, times ``scale`` (percent by default);
    the mean alone, marked "(one seed)", when it summarises a single value.

    >>> mean_pm_std({"mean": 0.8567, "std": 0.0123, "n": 3}), mean_pm_std({"mean": 0.5, "std": 0.0, "n": 1})
    ('85.7 ± 1.2', '50.0 (one seed)')
    """
    if stat.get("n", 2) < 2:
        return f"{stat['mean'] * scale:.{digits}f} (one seed)"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def _variant_name(variant: str, amount: float) -> str:
    if variant == "pruned":
        return "float32" if amount == 0 else f"pruned {amount:.0%}"
    return "int8" if amount == 0 else f"pruned {amount:.0%} + int8"


def compression_table(result: dict[str, Any], amounts: Sequence[float] | None = None) -> Table:
    """Test accuracy (mean ± std over seeds, %), stored size (dense ``state_dict`` and CSR, KiB) and nonzero
    parameters of each model and variant: pruned at each of ``amounts`` (all of the run's by default), int8, and
    pruned + int8. Sizes and counts are the first seed's (they do not depend on the seed)."""
    check_result(result, ["spec", "rows"], "result", "te.run_compression")
    spec = result["spec"]
    amounts = list(amounts if amounts is not None else spec["amounts"])
    rows = []
    for role in ROLES:
        variants = [("pruned", a) for a in amounts] + [("int8", 0.0), ("int8", spec["combined_amount"])]
        for variant, amount in variants:
            sel = [r for r in result["rows"] if (r["model"], r["variant"], r["amount"]) == (role, variant, amount)]
            if not sel:
                continue
            sparse = sel[0]["sparse_bytes"]
            rows.append([
                role, _variant_name(variant, amount), mean_pm_std(mean_std_record([r["accuracy"] for r in sel])),
                f"{sel[0]['bytes'] / 1024:.0f}", f"{sparse / 1024:.0f}" if math.isfinite(sparse) else "-",
                f"{sel[0]['nonzero']:,}",
            ])  # fmt: skip
    header = ["model", "variant", "test accuracy (%)", "state_dict (KiB)", "as CSR (KiB)", "nonzero"]
    return Table(header, rows)


def inference_table(result: dict[str, Any]) -> Table:
    """Per model: the int8 model's test accuracy minus the float32 model's (points, mean over seeds), and the CPU
    inference time of each (ms per 1000 test inputs, fastest of several repeats) with their ratio."""
    check_result(result, ["accuracy", "inference"], "result", "te.run_compression")
    acc = result["accuracy"]
    rows = []
    for t in result["inference"]:
        role = t["model"]
        change = acc[f"{role}|int8|0.0"]["mean"] - acc[f"{role}|pruned|0.0"]["mean"]
        ratio = t["int8_ms_per_1000"] / t["float_ms_per_1000"]
        rows.append([role, f"{100 * change:+.2f}", f"{t['float_ms_per_1000']:.1f}", f"{t['int8_ms_per_1000']:.1f}",
                     f"{ratio:.2f}"])  # fmt: skip
    header = ["model", "int8 - float32 (points)", "float32 (ms)", "int8 (ms)", "int8 / float32 time"]
    return Table(header, rows)


def tabular_table(result: dict[str, Any]) -> Table:
    """Test accuracy (%) and test NLL (nats), mean ± std over seeds, per data set and model."""
    check_result(result, ["datasets"], "result", "te.run_tabular")
    rows = []
    for name, d in result["datasets"].items():
        for role in ROLES:
            rows.append([name, role, mean_pm_std(d["accuracy"][role]), mean_pm_std(d["nll"][role], 1.0, 3)])
    return Table(["data set", "model", "test accuracy (%)", "test NLL (nats)"], rows)


def cost_table(result: dict[str, Any]) -> Table:
    """Wall time (training with validation) and training-loop time of each method, in seconds and relative to
    plain training, and its test accuracy; means over seeds."""
    check_result(result, ["summary"], "result", "te.run_cost")
    summary = result["summary"]
    if PLAIN not in summary:
        raise ValueError(f"result['summary'] needs the baseline {PLAIN!r}; it has {list(summary)}")
    plain = summary[PLAIN]
    rows = []
    for method, s in summary.items():
        rows.append([
            method, f"{s['wall']['mean']:.1f}", f"{s['wall']['mean'] / plain['wall']['mean']:.2f}",
            f"{s['loop']['mean']:.1f}", f"{s['loop']['mean'] / plain['loop']['mean']:.2f}", mean_pm_std(s["accuracy"]),
        ])  # fmt: skip
    return Table(["method", "wall (s)", "x plain", "training loop (s)", "x plain", "test accuracy (%)"], rows)


def benchmark_table(result: dict[str, Any]) -> Table:
    """The step-time benchmark of :func:`~sdkit.book.trend_cost.teacher_overhead` per model: a training step with
    an online teacher, and with cached teacher logits, divided by a plain step (fastest of the alternating
    repeats), next to the cost model's 4/3 (one extra forward pass on top of forward + backward = 3)."""
    check_result(result, ["benchmark"], "result", "te.run_cost")
    rows = [[b["model"], f"{b['ratio']:.2f}", f"{4 / 3:.2f}", f"{b['cached_ratio']:.2f}", str(len(b["kd_seconds"]))]
            for b in result["benchmark"]]  # fmt: skip
    return Table(["model", "online teacher", "cost model", "cached logits", "repeats"], rows)


def epoch_ratio_table(result: dict[str, Any]) -> Table:
    """Per seed of the training runs, the fastest epoch of each method divided by the fastest plain epoch (the
    warm-up epoch left out), the caching pass and a plain epoch in seconds; then the medians over seeds."""
    check_result(result, ["overhead"], "result", "te.run_cost")
    keys = ("kd_over_plain", "cached_over_plain", "pskd_over_plain")
    rows = []
    for o in result["overhead"]:
        ratios = [f"{o[k]:.2f}" if k in o else "-" for k in keys]
        seconds = [f"{o[k]:.2f}" if k in o else "-" for k in ("cache_seconds", "plain_epoch_seconds")]
        rows.append([f"{o['model']}, seed {o['seed']}", *ratios, *seconds])
    complete = [o for o in result["overhead"] if all(k in o for k in keys)]
    if len(complete) > 1:  # one seed is its own median
        rows.append(["median", *(f"{np.median([o[k] for o in complete]):.2f}" for k in keys), "", ""])
    header = ["run", "online teacher", "cached teacher", "PS-KD", "caching pass (s)", "plain epoch (s)"]
    return Table(header, rows)


def method_cost_table(compare: dict[str, Any]) -> Table:
    """Wall time per run (mean ± std over seeds), relative to plain training, and test accuracy of every method of
    a head-to-head comparison (the JSON file that ``python -m sdkit compare`` writes)."""
    check_result(compare, ["summary"], "compare", "the comparison's JSON file (its 'summary' list)")
    family = {r["method"]: r for r in compare["summary"]}
    if "plain" not in family:
        raise ValueError(f"compare['summary'] needs the method 'plain' as the baseline; it has {list(family)}")
    plain = family["plain"]["seconds_mean"]
    rows = [[name, f"{r['seconds_mean']:.1f} ± {r['seconds_std']:.1f}", f"{r['seconds_mean'] / plain:.2f}",
             f"{100 * r['test_accuracy_mean']:.2f} ± {100 * r['test_accuracy_std']:.2f}"]
            for name, r in family.items()]  # fmt: skip
    return Table(["method", "wall time (s)", "x plain", "test accuracy (%)"], rows)
