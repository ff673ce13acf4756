"""The Applications chapter's tables: its budget in words, where a committed result comes from, the results of
every experiment (mean ± sample std over seeds) and the verdicts of paired comparisons.

The results are what :func:`sdkit.book.experiments.run_applications` returns (or the JSON its command line writes);
the comparisons are :func:`sdkit.book.stats.compare_paired`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..evaluate import Table
from . import stats

__all__ = ["all_tables", "verdict_table", "budget_table", "provenance_table"]


def _pm(mean: float, std: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _cells(entry: dict[str, Any], metrics: Sequence[str]) -> list[str]:
    """``mean ± std`` of each metric of a :func:`summarize` entry."""
    return [_pm(entry[f"{m}_mean"], entry[f"{m}_std"]) for m in metrics]


def all_tables(results: dict[str, Any]) -> dict[str, Table]:
    """The tables of the results of :func:`~sdkit.book.experiments.run_applications` (or the JSON the command line
    writes), as :class:`~sdkit.evaluate.Table` (HTML in a notebook, Markdown as text): ``compression``,
    ``generalization``, ``noise``, ``fgsm`` and ``calibration``. Cells are mean ± sample std over seeds; the
    robustness tables add each student's difference from generation 0 with its verdict, ``-0.0036 (worse)``."""
    out: dict[str, Table] = {}
    comp = results["compression"]
    size = {"teacher": comp["teacher"], "alone": comp["student"], "distilled": comp["student"]}
    rows = []
    test = ("accuracy", "nll", "ece")
    for r in comp["summary"]:
        info = size[r["role"]]
        rows.append([f"{r['role']} ({info['model']} x{info['width']:g})", f"{info['parameters']:,}",
                     f"{info['state_dict_bytes'] / 1024:.1f}", *_cells(r, test), r["n"]])  # fmt: skip
    out["compression"] = Table(["model", "params", "KiB", "test acc", "test NLL", "test ECE", "seeds"], rows)
    rows = [
        [f"gen {r['generation']}" + (" (teacher)" if r["generation"] == 0 else ""), *_cells(r, test),
         f"{r['seconds_mean']:.1f}", r["n"]]
        for r in results["generalization"]["summary"]
    ]  # fmt: skip
    out["generalization"] = Table(["model", "test acc", "test NLL", "test ECE", "train s", "seeds"], rows)
    rob = results["robustness"]
    for name, points, symbol in (("noise", rob["sigmas"], "sigma"), ("fgsm", rob["epsilons"], "eps")):
        summary, comparisons = rob["summary"], rob[f"{name}_comparisons"]
        header = [symbol] + [f"gen {r['generation']}" for r in summary]
        header += [f"gen {c['candidate']} - gen 0" for c in comparisons[0]]
        rows = []
        for i, point in enumerate(points):
            row = [f"{point:g}"] + [_pm(r[f"{name}_mean"][i], r[f"{name}_std"][i], 3) for r in summary]
            rows.append(row + [f"{c['diff']:+.4f} ({c['verdict']})" for c in comparisons[i]])
        out[name] = Table(header, rows)
    cal = results["calibration"]
    verdicts = {c["candidate"]: c["verdict"] for c in cal["comparisons"]}
    rows = [[f"gen {r['generation']}", *_cells(r, ("ece", "nll")), verdicts.get(r["generation"], "(baseline)")]
            for r in cal["summary"]]  # fmt: skip
    out["calibration"] = Table(["model", "test ECE", "test NLL", "ECE vs gen 0"], rows)
    return out


def _side(value: Any) -> str:
    """How a table names one side of a comparison: born-again generations (ints) as ``gen k``."""
    return f"gen {value}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


_METRIC_NAMES = {"accuracy": "accuracy", "nll": "NLL", "ece": "ECE"}


def verdict_table(
    comparisons: Sequence[dict[str, Any]],
    *,
    metrics: Sequence[str] | None = None,
    claims: Sequence[str] | None = None,
) -> Table:
    """One row per comparison of :func:`sdkit.book.stats.compare_paired`: the two sides, the metric, the mean paired
    difference, its 95% interval, the seeds won and the verdict. The same numbers as each comparison's ``text``, as
    a table.

    ``metrics`` renames the metric column (one entry per comparison; by default the comparison's own metric);
    ``claims`` adds a first column naming what each comparison tests.

    >>> rows = [{"seed": s, "model": m, "acc": a} for s, m, a in [(0, "A", 0.80), (1, "A", 0.84), (0, "B", 0.83),
    ...         (1, "B", 0.86)]]
    >>> from sdkit.book.stats import compare_paired
    >>> table = verdict_table([compare_paired(rows, "acc", key="model", candidate="B", baseline="A")])
    >>> table.rows
    [['B vs A', 'acc', '+0.0250', '[-0.0385, +0.0885]', '2/2', 'within noise']]
    """
    for name, labels in (("metrics", metrics), ("claims", claims)):
        if labels is not None and len(labels) != len(comparisons):
            raise ValueError(f"{name} needs one label per comparison ({len(comparisons)}), got {len(labels)}; "
                             f"pass None to leave the column as it is")  # fmt: skip
    rows = []
    for i, c in enumerate(comparisons):
        metric = metrics[i] if metrics is not None else _METRIC_NAMES.get(c["metric"], c["metric"])
        ci = stats.interval(c) if c["n"] > 1 else "-"
        row = [f"{_side(c['candidate'])} vs {_side(c['baseline'])}", metric, f"{c['diff']:+.4f}", ci,
               f"{c['wins']}/{c['n']}", c["verdict"]]  # fmt: skip
        rows.append(([claims[i]] if claims is not None else []) + row)
    header = ["compared", "metric", "diff", "95% interval", "won", "verdict"]
    return Table((["claim"] if claims is not None else []) + header, rows)


def budget_table(cfg: dict[str, Any]) -> Table:
    """A budget (:func:`sdkit.book.experiments.budget`) as one row per experiment, in words: what is trained, on
    what, for how long.

    >>> from sdkit.book.experiments import budget
    >>> [row[0] for row in budget_table(budget("quick")).rows]
    ['every experiment', 'compression', 'born-again', 'robustness']
    """

    def images(size: int | None) -> str:
        return "all" if size is None else f"{size:,}"

    def grid(values: Sequence[float]) -> str:
        return ", ".join(f"{v:g}" for v in values)

    teacher = f"{cfg['comp_teacher']} x{cfg['comp_teacher_width']:g}"
    student = f"{cfg['comp_student']} x{cfg['comp_student_width']:g}"
    rows = [
        ["every experiment", f"{len(cfg['seeds'])} seeds, T={cfg['T']:g}, alpha={cfg['alpha']:g}, "
         f"batch {cfg['batch_size']}, ECE over {cfg['n_bins']} bins"],
        ["compression", f"{cfg['comp_dataset']}: teacher {teacher}, student {student}, {cfg['comp_epochs']} "
         f"epochs; training images {images(cfg['comp_train_size'])}, validation {cfg['comp_val_fraction']:.0%}, "
         f"test images {images(cfg['comp_test_size'])}"],
        ["born-again", f"{cfg['ba_dataset']}: {cfg['ba_model']} x{cfg['ba_width']:g}, generations 0 to "
         f"{cfg['ba_generations']} of {cfg['ba_epochs']} epochs each; training images "
         f"{images(cfg['ba_train_size'])}, validation {cfg['ba_val_fraction']:.0%}, test images "
         f"{images(cfg['ba_test_size'])}"],
        ["robustness", f"noise sigma {grid(cfg['sigmas'])}; FGSM epsilon {grid(cfg['epsilons'])} (pixel units)"],
    ]  # fmt: skip
    return Table(["experiment", f"budget {cfg.get('name', '')!s}".strip()], rows)


def provenance_table(result: dict[str, Any]) -> Table:
    """Where a committed applications result (the JSON of :func:`main`) comes from: the command, the date, the
    machine, the wall time, the size of each experiment's data."""

    def split(data: dict[str, int]) -> str:
        return ", ".join(f"{n:,} {part}" for part, n in data.items())

    m = result["machine"]
    rows = [
        ["command", result["command"]],
        ["date", result["date"]],
        ["machine", f"{m['processor']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch thread(s), "
                    f"torch {m['torch']}"],
        ["wall time", f"{result['wall_seconds'] / 60:.1f} min on device {result['device']}, "
                      f"budget {result['config']['name']}"],
        ["compression data", split(result["compression"]["data"])],
        ["born-again data", split(result["born_again"]["data"])],
    ]  # fmt: skip
    return Table(["run", "value"], rows)
