"""Summaries of :func:`sdkit.compare`'s rows, for the CLI's table and the book's result files."""

from __future__ import annotations

from typing import Any

from . import stats

__all__ = ["summarize"]


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over seeds of each method's test metrics and wall time, one entry per
    method: ``{"method", "seeds", "test_accuracy_mean", "test_accuracy_std", ...}`` (std 0 for a single seed).

    >>> rows = [{"method": "plain", "seed": seed, "test_accuracy": acc, "test_nll": 0.3, "test_ece": 0.02,
    ...          "seconds": 10.0} for seed, acc in ((0, 0.90), (1, 0.92))]
    >>> entry = summarize(rows)[0]
    >>> entry["method"], entry["seeds"], round(entry["test_accuracy_mean"], 4), round(entry["test_accuracy_std"], 4)
    ('plain', 2, 0.91, 0.0141)
    """
    return stats.summarize(rows, "method", ("test_accuracy", "test_nll", "test_ece", "seconds"), count="seeds",
                           single=0.0)  # fmt: skip
