"""Statistics over seeds, shared by the experiments (:mod:`sdkit.experiments`, :mod:`sdkit.trend_experiments`,
:mod:`sdkit.compare`): mean and sample standard deviation, paired differences, and the verdict rule.

The rule. A candidate (say a distilled student) and its baseline are run with the same seeds and compared seed by
seed: ``diff`` is the mean over seeds of ``candidate_s - baseline_s``, and the *noise* is the baseline's
seed-to-seed sample standard deviation. ``|diff| <= noise`` is "within noise", otherwise the candidate is "better"
or "worse". With a handful of seeds this is a coarse rule of thumb, not a significance test; with one seed there is
no spread to compare with, and no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

__all__ = ["NO_VERDICT", "mean_std", "verdict", "paired", "group", "summarize"]

#: The verdict when fewer than two seeds give no seed-to-seed spread to compare a difference with.
NO_VERDICT = "one seed: no verdict"


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


def verdict(diff: float, noise: float, n: int | None = None, *, higher_is_better: bool = True) -> str:
    """The rule's word for a paired difference ``diff`` against the seed-to-seed ``noise``: ``"better"`` or
    ``"worse"`` when ``|diff| > noise``, ``"within noise"`` otherwise, and :data:`NO_VERDICT` when there are fewer
    than two seeds (``n < 2``, or a NaN ``noise``, the std of one value).

    >>> verdict(0.02, 0.01), verdict(-0.01, 0.01), verdict(-0.02, 0.01, higher_is_better=False)  # a lower ECE
    ('better', 'within noise', 'better')
    >>> verdict(0.5, float("nan"), 1)
    'one seed: no verdict'
    """
    if (n is not None and n < 2) or math.isnan(noise):
        return NO_VERDICT
    if not math.isfinite(diff) or math.isinf(noise) or noise < 0:
        raise ValueError(f"diff and noise must be finite and noise >= 0, got diff={diff!r}, noise={noise!r}")
    if abs(diff) <= noise:
        return "within noise"
    return "better" if (diff > 0) == higher_is_better else "worse"


def paired(candidate: Sequence[float], baseline: Sequence[float]) -> dict[str, float]:
    """Paired comparison over seeds (``candidate[i]`` and ``baseline[i]`` share seed ``i``): the mean ``diff`` of
    the per-seed differences ``candidate[i] - baseline[i]``, its standard error ``se = std(differences) / sqrt(n)``,
    the baseline's seed-to-seed standard deviation ``noise`` (both NaN for one seed) and ``n``.

    >>> p = paired([0.83, 0.87, 0.81], [0.80, 0.84, 0.82])
    >>> round(p["diff"], 4), round(p["noise"], 4), p["n"], verdict(p["diff"], p["noise"])
    (0.0167, 0.02, 3, 'within noise')
    """
    if len(candidate) != len(baseline) or len(baseline) == 0:
        raise ValueError(
            f"candidate and baseline need the same, nonzero length; got {len(candidate)} and {len(baseline)}"
        )
    diff, spread = mean_std([c - b for c, b in zip(candidate, baseline, strict=True)])
    n = len(baseline)
    return {"diff": diff, "se": spread / math.sqrt(n), "noise": mean_std(baseline)[1], "n": n}


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
