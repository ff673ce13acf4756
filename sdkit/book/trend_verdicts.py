"""The verdicts of the chapter "Trends and challenges": paired comparisons over seeds, and the tables that show them.

Every verdict follows the book's one rule, :func:`sdkit.book.stats.paired`: the mean of the per-seed differences
with its 95% t-interval, "better" or "worse" only when the interval excludes 0, "within noise" otherwise. A
difference is shown as ``diff [low, high]``, in accuracy points (or nats for NLL).

>>> format_interval({"diff": -0.0028, "low": -0.109, "high": 0.1034, "n": 2})
'-0.28 [-10.90, +10.34]'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..evaluate import Table
from . import stats
from .stats import paired
from .trend_experiments import expected_range
from .trend_tables import PLAIN, check_result
from .trend_training import ROLES

__all__ = [
    "format_interval",
    "per_seed",
    "pruning_verdicts",
    "safe_sparsity",
    "pruning_verdict_table",
    "pruning_summary",
    "tabular_verdict_table",
    "grid_alpha_table",
    "cost_verdict_table",
    "summary_table",
]

STUDENT, TWIN = "distilled student", "student alone"


def format_interval(p: Mapping[str, Any], scale: float = 100.0) -> str:
    """``diff [low, high]`` of a :func:`~sdkit.book.stats.paired` result, times ``scale`` (accuracy points by
    default), signed; the difference alone when one seed gives no interval."""
    if p["n"] < 2:
        return f"{scale * p['diff']:+.2f}"
    return f"{scale * p['diff']:+.2f} {stats.interval(p, scale=scale, digits=2)}"


def per_seed(d: Mapping[str, Any], role: str, metric: str = "accuracy") -> list[float]:
    """``metric`` of the model ``role`` in each seed's row of ``d["rows"]``, in seed order (ready for pairing)."""
    return [r[metric] for r in sorted(d["rows"], key=lambda r: r["seed"]) if r["model"] == role]


def _pruned_accuracies(result: dict[str, Any], role: str, amount: float) -> np.ndarray:
    rows = [r for r in result["rows"] if (r["model"], r["variant"], r["amount"]) == (role, "pruned", amount)]
    return np.array(per_seed({"rows": rows}, role))


def pruning_verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per pruning fraction, the distilled student against its plain twin, paired over seeds: ``diff`` (accuracy
    minus the twin's) with its interval ``low``/``high`` and ``verdict``; and the same for the accuracy *lost to
    pruning* (pruned minus unpruned, so that a student that starts lower is not blamed for it) as ``drop_diff``,
    ``drop_low``, ``drop_high`` and ``drop_verdict``."""
    check_result(result, ["spec", "rows"], "result", "te.run_compression")
    base = {role: _pruned_accuracies(result, role, 0.0) for role in (STUDENT, TWIN)}
    out = []
    for amount in result["spec"]["amounts"]:
        acc = {role: _pruned_accuracies(result, role, amount) for role in base}
        p = paired(acc[STUDENT], acc[TWIN])
        drop = paired(acc[STUDENT] - base[STUDENT], acc[TWIN] - base[TWIN])
        row = {"amount": amount, **p}
        row.update({f"drop_{k}": drop[k] for k in ("diff", "low", "high", "verdict", "n")})
        out.append(row)
    return out


def safe_sparsity(result: dict[str, Any], role: str, tolerance: float = 0.01) -> float:
    """The largest pruning fraction whose mean accuracy is within ``tolerance`` of the unpruned mean."""
    check_result(result, ["spec", "accuracy"], "result", "te.run_compression")
    if role not in ROLES:
        raise ValueError(f"role must be one of {list(ROLES)}, got role={role!r}")
    acc = result["accuracy"]
    base = acc[f"{role}|pruned|0.0"]["mean"]
    return max(a for a in result["spec"]["amounts"] if acc[f"{role}|pruned|{a}"]["mean"] >= base - tolerance)


def pruning_verdict_table(result: dict[str, Any]) -> Table:
    """One row per pruning fraction: the distilled student minus its twin trained alone, in test accuracy and in
    accuracy lost to pruning (points, with 95% intervals over seeds), each with its verdict."""
    rows = []
    for v in pruning_verdicts(result):
        drop = {k: v[f"drop_{k}"] for k in ("diff", "low", "high", "n")}
        rows.append([f"{v['amount']:.0%}", format_interval(v), v["verdict"], format_interval(drop), v["drop_verdict"]])
    return Table(["pruned", "accuracy: student - twin", "verdict", "lost to pruning: student - twin", "verdict"], rows)


def pruning_summary(result: dict[str, Any]) -> str:
    """How many pruning fractions (beyond 0%) the distilled student loses less accuracy at than its twin, the same
    within noise, or more; and per model the largest fraction pruned within 1 point of its unpruned accuracy."""
    drops = [v["drop_verdict"] for v in pruning_verdicts(result)[1:]]
    lines = [
        "accuracy lost to pruning, distilled student vs its twin, over the pruning fractions:",
        f"  less at {drops.count('better')}, the same within noise at {drops.count('within noise')}, "
        f"more at {drops.count('worse')}",
        "largest fraction pruned within 1 point of the unpruned accuracy:",
        "  " + ", ".join(f"{role} {safe_sparsity(result, role):.0%}" for role in ROLES),
    ]
    return "\n".join(lines)


COMPARISONS = (("accuracy", "teacher", True), ("accuracy", TWIN, True), ("nll", TWIN, False))


def tabular_verdict_table(result: dict[str, Any]) -> Table:
    """Per data set, the distilled student minus its teacher and minus its twin in test accuracy (points), and
    minus its twin in test NLL (nats; lower is better), paired over seeds, with verdicts."""
    check_result(result, ["datasets"], "result", "te.run_tabular")
    rows = []
    for name, d in result["datasets"].items():
        for metric, base, higher_is_better in COMPARISONS:
            p = paired(per_seed(d, STUDENT, metric), per_seed(d, base, metric), higher_is_better=higher_is_better)
            unit, scale = ("points", 100.0) if metric == "accuracy" else ("nats", 1.0)
            rows.append([name, f"{metric} ({unit})", base, format_interval(p, scale), p["verdict"]])
    return Table(["data set", "metric", "student minus", "difference [95% CI]", "verdict"], rows)


def grid_alpha_table(g: dict[str, Any]) -> Table:
    """Per soft weight alpha: the range of the mean validation accuracies over the temperatures (points) next to
    the range that seed noise alone gives to that many cells, ``d_m * sigma / sqrt(k)``, and what it says."""
    check_result(g, ["val_mean", "temperatures", "alphas", "seed_std", "spec"], "g", "te.run_grid")
    means = np.asarray(g["val_mean"])
    row_noise = expected_range(len(g["temperatures"])) * g["seed_std"] / np.sqrt(len(g["spec"]["seeds"]))
    rows = []
    for alpha, row in zip(g["alphas"], means, strict=True):
        spread = row.max() - row.min()
        word = "T matters" if spread > row_noise else "no wider than seed noise"
        rows.append([f"{alpha:g}", f"{100 * spread:.2f}", f"{100 * row_noise:.2f}", word])
    return Table(["alpha", "range over T (points)", "seed noise alone (points)", "verdict"], rows)


def _method_accuracies(result: dict[str, Any]) -> dict[str, list[float]]:
    return {m: [r["accuracy"] for r in sorted(result["runs"], key=lambda r: r["seed"]) if r["method"] == m]
            for m in result["summary"]}  # fmt: skip


def cost_verdict_table(result: dict[str, Any]) -> Table:
    """Test accuracy of every method minus plain training, and of the cached teacher's student minus the online
    teacher's (points, paired over seeds), with verdicts."""
    check_result(result, ["runs", "summary"], "result", "te.run_cost")
    acc = _method_accuracies(result)
    if PLAIN not in acc:
        raise ValueError(f"result['summary'] needs the baseline {PLAIN!r}; it has {list(acc)}")
    pairs = [(m, PLAIN) for m in acc if m != PLAIN]
    if {"born-again, cached teacher", "born-again (teacher + student)"} <= set(acc):
        pairs.append(("born-again, cached teacher", "born-again (teacher + student)"))
    rows = []
    for name, base in pairs:
        p = paired(acc[name], acc[base])
        rows.append([name, base, format_interval(p), p["verdict"]])
    return Table(["test accuracy of", "minus", "difference (points)", "verdict"], rows)


def summary_table(full: dict[str, Any]) -> Table:
    """The seed's four statements and what the committed full-size run measured for each (``full`` is the whole
    ``trends_full.json``)."""
    check_result(full, ["compression", "tabular", "grid", "cost"], "full", "te.run_all (trends_full.json)")
    comp, tab, grid, cost = (full[k] for k in ("compression", "tabular", "grid", "cost"))
    drops = [v["drop_verdict"] for v in pruning_verdicts(comp)[1:]]
    acc = comp["accuracy"]
    int8 = max(abs(acc[f"{r}|int8|0.0"]["mean"] - acc[f"{r}|pruned|0.0"]["mean"]) for r in ROLES)
    size = {(r["variant"], r["amount"]): r["bytes"] for r in comp["rows"] if (r["seed"], r["model"]) == (0, "teacher")}
    tabular = [f"{n}: {paired(per_seed(d, STUDENT), per_seed(d, TWIN))['verdict']}" for n, d in tab["datasets"].items()]
    loop = {m: s["loop"]["mean"] / cost["summary"][PLAIN]["loop"]["mean"] for m, s in cost["summary"].items()}
    rows = [
        ["combine with pruning and quantization",
         f"int8: {size[('pruned', 0.0)] / size[('int8', 0.0)]:.1f} x smaller file, accuracy change at most "
         f"{100 * int8:.2f} points; pruning: the distilled student loses less than its twin at "
         f"{drops.count('better')} of {len(drops)} fractions, more at {drops.count('worse')}"],
        ["beyond images (tabular)", "born-again student vs alone: " + "; ".join(tabular)],
        ["T matters a lot",
         f"grid range {100 * grid['grid_range']:.2f} points = {grid['grid_range'] / grid['noise_range']:.1f} x "
         f"seed-noise range; chosen T = {grid['chosen']['T']:g}, alpha = {grid['chosen']['alpha']:g}"],
        ["two training runs", f"born-again {loop['born-again (teacher + student)']:.2f} x plain training time; "
         f"PS-KD {loop['PS-KD (one run)']:.2f} x"],
    ]  # fmt: skip
    return Table(["seed's statement", "measured (full run)"], rows)
