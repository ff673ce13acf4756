"""Numbers into text and tables: what the chapters show of their results, kept out of the chapters' code.

A chapter computes; these functions only decide how the numbers look. Every table is a
:class:`~sdkit.evaluate.Table`, which a notebook (and the built book) shows as an HTML table and
plain Python prints as aligned text, so that no printed line has to be lined up by hand (or scroll sideways).

- :func:`format_vector`, :func:`format_metrics`, :func:`format_mean_std`: one value per call, as text.
- :func:`records_table`: a list of result dicts as a table, one column per chosen key.
- :func:`paired_table`: paired comparisons (:func:`sdkit.book.stats.paired`) as a table of verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..evaluate import Table
from .stats import mean_std

__all__ = ["format_vector", "format_metrics", "format_mean_std", "records_table", "paired_table"]

#: How :func:`records_table` fills a column: a key of the record, a ``(key, format spec)`` pair, or a function of
#: the whole record.
Column = str | tuple[str, str] | Callable[[Mapping[str, Any]], Any]

#: What a missing value (``None`` or an absent key) shows as: an empty cell reads as a forgotten number.
MISSING = "-"


def _check_digits(digits: int) -> int:
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be an integer >= 0, got digits={digits!r}")
    return digits


def format_vector(values: Sequence[float] | Any, digits: int = 4) -> str:
    """A vector (a list, or a 1-D tensor or array) as ``[a, b, c]`` with ``digits`` decimals each.

    >>> format_vector([0.8, 0.1, 0.1])
    '[0.8000, 0.1000, 0.1000]'
    >>> import torch
    >>> format_vector(torch.tensor([0.67, 0.16]), digits=2)
    '[0.67, 0.16]'
    """
    _check_digits(digits)
    shape = getattr(values, "shape", None)
    if shape is not None and len(shape) != 1:
        raise ValueError(f"values must be one vector (1-D), got shape {tuple(shape)}; pass one row at a time")
    return "[" + ", ".join(f"{float(v):.{digits}f}" for v in values) + "]"


def format_metrics(metrics: Mapping[str, float], digits: int = 4) -> str:
    """``{"accuracy": 0.98, "nll": 0.07}`` as ``"accuracy 0.9800, nll 0.0700"`` (the order of ``metrics``).

    >>> format_metrics({"accuracy": 0.98891, "nll": 0.0863, "ece": 0.05268})
    'accuracy 0.9889, nll 0.0863, ece 0.0527'
    """
    _check_digits(digits)
    if not metrics:
        raise ValueError("metrics is empty; pass a dict such as sdkit.evaluate(model, data.test)")
    return ", ".join(f"{name} {float(value):.{digits}f}" for name, value in metrics.items())


def format_mean_std(values: Sequence[float], digits: int = 4) -> str:
    """Mean ± sample standard deviation of ``values`` (one value per seed), e.g. ``"0.9898 ± 0.0016"``.

    One value has no spread and shows as ``"0.9898 ± -"``.

    >>> format_mean_std([0.98, 0.99, 1.00])
    '0.9900 ± 0.0100'
    >>> format_mean_std([1.2, 0.9], digits=1)
    '1.1 ± 0.2'
    """
    _check_digits(digits)
    if len(values) == 0:
        raise ValueError("values is empty; format_mean_std needs one number per seed")
    mean, std = mean_std([float(v) for v in values])
    spread = MISSING if math.isnan(std) else f"{std:.{digits}f}"
    return f"{mean:.{digits}f} ± {spread}"


def _cell(record: Mapping[str, Any], column: Column, header: str) -> str:
    if callable(column):
        value = column(record)
        return MISSING if value is None else str(value)
    if isinstance(column, tuple):
        if len(column) != 2 or not all(isinstance(part, str) for part in column):
            raise ValueError(
                f"column {header!r} must be a key, a (key, format spec) pair or a function, got {column!r}"
            )
        key, spec = column
    elif isinstance(column, str):
        key, spec = column, ""
    else:
        raise ValueError(f"column {header!r} must be a key, a (key, format spec) pair or a function, got {column!r}")
    value = record.get(key)
    return MISSING if value is None else format(value, spec)


def records_table(records: Sequence[Mapping[str, Any]], columns: Mapping[str, Column]) -> Table:
    """One row per record and one column per entry ``header: column`` of ``columns``.

    A column is a key (the cell is ``str(record[key])``), a ``(key, format spec)`` pair (the cell is
    ``format(record[key], spec)``, e.g. ``("accuracy", ".4f")``), or a function of the record. A missing key or a
    ``None`` value shows as ``"-"``.

    >>> rows = [{"role": "teacher", "T": None, "accuracy": 0.96657}, {"role": "student", "T": 4, "accuracy": 0.9}]
    >>> print(records_table(rows, {"model": "role", "T": ("T", "g"), "test acc": ("accuracy", ".4f")}))
    model    T  test acc
    -------  -  --------
    teacher  -    0.9666
    student  4    0.9000
    """
    if not columns:
        raise ValueError("columns is empty; map each header to a key, e.g. {'test acc': ('accuracy', '.4f')}")
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise ValueError(f"records must hold dicts, got records[{i}]={record!r}")
    rows = [[_cell(record, column, header) for header, column in columns.items()] for record in records]
    return Table(list(columns), rows)


def paired_table(
    comparisons: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    scale: float = 1.0,
    digits: int = 4,
    unit: str = "",
    label: str = "comparison",
) -> Table:
    """Paired comparisons as a table: the label, the mean difference, its 95% interval, the seeds won (when the
    comparison says) and the verdict.

    Each comparison is ``(label, p)`` with ``p`` from :func:`sdkit.book.stats.paired` (or
    :func:`sdkit.book.stats.compare_paired`): keys ``diff``, ``low``, ``high``, ``verdict`` and, for the
    "won" column, ``wins`` and ``n``. Numbers are multiplied by ``scale`` (100 for percentage points) and shown
    with ``digits`` decimals and a sign; ``unit`` goes into the header.

    >>> from sdkit.book.stats import paired
    >>> p = paired([0.83, 0.87, 0.81], [0.80, 0.84, 0.82])
    >>> print(paired_table([("B vs A", p)], scale=100, digits=2, unit="points"))
    comparison  difference (points)    95% interval  won       verdict
    ----------  -------------------  --------------  ---  ------------
    B vs A                    +1.67  -4.07 to +7.40  2/3  within noise
    """
    _check_digits(digits)
    if not comparisons:
        raise ValueError("comparisons is empty; pass (label, stats.paired(...)) pairs")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0 (100 for percentage points), got scale={scale!r}")
    needed = ("diff", "low", "high", "verdict")
    for name, p in comparisons:
        missing = [k for k in needed if k not in p]
        if missing:
            raise ValueError(f"comparison {name!r} lacks {missing}; pass the dict from stats.paired or compare_paired")
    with_wins = all("wins" in p and "n" in p for _, p in comparisons)
    rows = []
    for name, p in comparisons:
        low, high = scale * p["low"], scale * p["high"]
        interval = MISSING if math.isnan(low) else f"{low:+.{digits}f} to {high:+.{digits}f}"
        row = [name, f"{scale * p['diff']:+.{digits}f}", interval]
        row += [f"{p['wins']}/{p['n']}"] if with_wins else []
        rows.append([*row, p["verdict"]])
    difference = f"difference ({unit})" if unit else "difference"
    header = [label, difference, "95% interval", *(["won"] if with_wins else []), "verdict"]
    return Table(header, rows)
