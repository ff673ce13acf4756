"""Statistics over seeds: mean and sample standard deviation, and the book's one verdict rule.

The rule. A candidate (say a self-distilled model) and its baseline (plain training) are run with the same seeds,
so they can be compared seed by seed. With the per-seed differences ``d_s = candidate_s - baseline_s`` over ``n``
seeds, their mean ``diff`` and sample standard deviation ``sd``, the 95% confidence interval of the mean
difference is the Student-t interval

    diff ± t_{0.975, n-1} * sd / sqrt(n).

The candidate is "better" (or "worse") only when the whole interval lies above (or below) zero; an interval that
contains zero is "within noise", whatever the sign of ``diff``. Fewer than two seeds give no interval and no verdict.
Pairing removes what the two runs of a seed share (the data order, the initialisation of a shared teacher); the
t-interval assumes the differences are roughly normal, which is the usual working assumption for a handful of seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

__all__ = [
    "NO_VERDICT", "CONFIDENCE", "mean_std", "t_quantile", "paired", "compare_paired", "verdict", "interval", "group",
    "summarize",
]  # fmt: skip

#: The verdict when fewer than two seeds give no interval.
NO_VERDICT = "one seed: no verdict"
#: The confidence level of every interval in the book.
CONFIDENCE = 0.95


def mean_std(values: Sequence[float], *, single: float = math.nan) -> tuple[float, float]:
    """Mean and sample standard deviation (``n - 1`` in the denominator) of ``values``.

    One value has no measurable spread: its std is ``single`` (NaN unless a table prefers to show 0).

    >>> mean_std([1.0, 2.0, 3.0])
    (2.0, 1.0)
    >>> mean_std([0.5])
    (0.5, nan)
    >>> mean_std([0.5], single=0.0)
    (0.5, 0.0)
    """
    n = len(values)
    if n == 0:
        raise ValueError("values is empty; mean_std needs at least one number")
    mean = float(sum(values)) / n
    if n == 1:
        return mean, single
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def t_quantile(q: float, dof: int) -> float:
    """The ``q`` quantile of Student's t distribution with ``dof`` degrees of freedom (scipy's ``t.ppf``).

    >>> round(t_quantile(0.975, 4), 4), round(t_quantile(0.975, 2), 4)  # 5 and 3 seeds
    (2.7764, 4.3027)
    """
    from scipy.stats import t  # scipy comes with scikit-learn; imported here to keep `import sdkit` light

    if dof < 1:
        raise ValueError(f"dof must be >= 1, got dof={dof!r}")
    return float(t.ppf(q, dof))


def verdict(low: float, high: float, n: int, *, higher_is_better: bool = True) -> str:
    """The rule's word for a confidence interval ``[low, high]`` of a paired mean difference over ``n`` seeds:
    ``"better"`` or ``"worse"`` when the interval excludes 0, ``"within noise"`` when it contains 0, and
    :data:`NO_VERDICT` for fewer than two seeds.

    >>> verdict(0.002, 0.010, 5), verdict(-0.01, 0.02, 5), verdict(-0.03, -0.01, 5, higher_is_better=False)
    ('better', 'within noise', 'better')
    >>> verdict(float("nan"), float("nan"), 1)
    'one seed: no verdict'
    """
    if n < 2:
        return NO_VERDICT
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"the interval must be finite with low <= high, got low={low!r}, high={high!r}")
    if low <= 0.0 <= high:
        return "within noise"
    return "better" if (low > 0) == higher_is_better else "worse"


def paired(candidate: Sequence[float], baseline: Sequence[float], *, higher_is_better: bool = True) -> dict[str, Any]:
    """Paired comparison over seeds (``candidate[i]`` and ``baseline[i]`` share seed ``i``): the mean ``diff`` of
    the per-seed differences, its standard error ``se``, the :data:`CONFIDENCE` t-interval ``[low, high]``, how
    many seeds the candidate won (``wins``: strictly better on that seed), ``n``, the baseline's seed-to-seed
    standard deviation ``baseline_std`` (for display) and the :func:`verdict`. NaN interval for one seed.

    >>> p = paired([0.83, 0.87, 0.81], [0.80, 0.84, 0.82])
    >>> round(p["diff"], 4), round(p["low"], 4), round(p["high"], 4), p["wins"], p["verdict"]
    (0.0167, -0.0407, 0.074, 2, 'within noise')
    >>> paired([0.90, 0.91, 0.92, 0.90, 0.91], [0.88, 0.88, 0.90, 0.89, 0.89])["verdict"]
    'better'
    """
    if len(candidate) != len(baseline) or len(baseline) == 0:
        raise ValueError(
            f"candidate and baseline need the same, nonzero length; got {len(candidate)} and {len(baseline)}"
        )
    n = len(baseline)
    diffs = [c - b for c, b in zip(candidate, baseline, strict=True)]
    diff, sd = mean_std(diffs)
    if n >= 2:
        se = sd / math.sqrt(n)
        half = t_quantile(0.5 + CONFIDENCE / 2, n - 1) * se
        low, high = diff - half, diff + half
    else:
        se = low = high = math.nan
    wins = sum((d > 0) == higher_is_better and d != 0 for d in diffs)
    return {
        "diff": diff, "se": se, "low": low, "high": high, "n": n, "wins": wins,
        "baseline_std": mean_std(baseline)[1], "verdict": verdict(low, high, n, higher_is_better=higher_is_better),
    }  # fmt: skip


def compare_paired(
    rows: Sequence[dict[str, Any]],
    metric: str,
    *,
    key: str,
    candidate: Any,
    baseline: Any,
    higher_is_better: bool = True,
    index: int | None = None,
) -> dict[str, Any]:
    """Compare ``candidate`` with ``baseline`` (values of ``rows[i][key]``) on ``metric``, paired by ``seed``.

    ``index`` picks one point of a list-valued metric (e.g. one noise level). Returns the per-seed differences
    ``diffs`` and everything :func:`paired` gives (``diff``, the interval ``low``/``high``, ``wins``,
    ``n``, ``baseline_std``, ``verdict``), plus ``text``, a one-line sentence built from those numbers.

    >>> rows = [{"seed": s, "model": m, "acc": a} for s, m, a in [(0, "A", 0.80), (1, "A", 0.84), (0, "B", 0.83),
    ...         (1, "B", 0.86)]]
    >>> print(compare_paired(rows, "acc", key="model", candidate="B", baseline="A")["text"])
    acc of B vs A: +0.0250 (mean over 2 seeds, better in 2 of 2; 95% interval -0.0385 to +0.0885) -> within noise
    """
    pick = (lambda r: r[metric]) if index is None else (lambda r: r[metric][index])
    base = {r["seed"]: pick(r) for r in rows if r[key] == baseline}
    cand = {r["seed"]: pick(r) for r in rows if r[key] == candidate}
    seeds = [s for s in base if s in cand]
    if not seeds:
        raise ValueError(f"no seed has both {key}={candidate!r} and {key}={baseline!r} in rows")
    p = paired([cand[s] for s in seeds], [base[s] for s in seeds], higher_is_better=higher_is_better)

    def name(value: Any) -> str:
        return f"{key} {value}" if isinstance(value, int) else str(value)

    interval = f"95% interval {p['low']:+.4f} to {p['high']:+.4f}" if p["n"] > 1 else "one seed, no interval"
    text = (
        f"{metric} of {name(candidate)} vs {name(baseline)}: {p['diff']:+.4f} (mean over {p['n']} seeds, "
        f"better in {p['wins']} of {p['n']}; {interval}) -> {p['verdict']}"
    )
    return {"metric": metric, "candidate": candidate, "baseline": baseline,
            "diffs": [cand[s] - base[s] for s in seeds], **p, "n_better": p["wins"], "text": text}  # fmt: skip


def interval(p: dict[str, Any], *, scale: float = 1.0, digits: int = 4) -> str:
    """The 95% interval of a :func:`paired` result as ``[low, high]``, signed, times ``scale`` (100 for points).

    >>> interval({"low": -0.0123, "high": 0.0456}, scale=100, digits=2)
    '[-1.23, +4.56]'
    """
    return f"[{scale * p['low']:+.{digits}f}, {scale * p['high']:+.{digits}f}]"


def group(rows: Sequence[dict[str, Any]], by: str | Callable[[dict[str, Any]], Hashable]) -> dict[Any, list[dict]]:
    """``rows`` grouped by the value of key ``by`` (or of ``by(row)``), groups in order of first appearance.

    >>> group([{"g": 1, "x": 0.5}, {"g": 0, "x": 0.1}, {"g": 1, "x": 0.7}], "g")
    {1: [{'g': 1, 'x': 0.5}, {'g': 1, 'x': 0.7}], 0: [{'g': 0, 'x': 0.1}]}
    """
    key = by if callable(by) else (lambda row: row[by])
    out: dict[Any, list[dict]] = {}
    for row in rows:
        out.setdefault(key(row), []).append(row)
    return out


def summarize(
    rows: Sequence[dict[str, Any]],
    by: str,
    metrics: Sequence[str],
    *,
    count: str = "n",
    single: float = math.nan,
) -> list[dict[str, Any]]:
    """One entry per value of key ``by`` (in order of first appearance): ``{by: value, count: group size,
    "{metric}_mean": ..., "{metric}_std": ...}`` over the group's rows, std as in :func:`mean_std`. A list-valued
    metric (a curve) is summarised point by point into lists.

    >>> rows = [{"g": 0, "acc": 0.8, "curve": [1.0, 0.4]}, {"g": 0, "acc": 0.9, "curve": [1.0, 0.6]}]
    >>> entry = summarize(rows, "g", ["acc", "curve"])[0]
    >>> entry["n"], round(entry["acc_mean"], 4), entry["curve_mean"], [round(s, 4) for s in entry["curve_std"]]
    (2, 0.85, [1.0, 0.5], [0.0, 0.1414])
    """
    if not rows:
        raise ValueError("rows is empty; nothing to summarise")
    out = []
    for value, members in group(rows, by).items():
        entry: dict[str, Any] = {by: value, count: len(members)}
        for m in metrics:
            first = members[0][m]
            if isinstance(first, (list, tuple)):
                points = [mean_std([r[m][i] for r in members], single=single) for i in range(len(first))]
                entry[f"{m}_mean"], entry[f"{m}_std"] = [p[0] for p in points], [p[1] for p in points]
            else:
                entry[f"{m}_mean"], entry[f"{m}_std"] = mean_std([r[m] for r in members], single=single)
        out.append(entry)
    return out
