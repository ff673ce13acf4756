"""The short printed reports of the chapter "Trends and challenges": where a run came from, what it trained, and
the few numbers that the tables do not hold (a size ratio, a speed verdict, the grid's noise check).

Every function returns a string of lines no longer than :data:`WIDTH` characters (the book's code box), so that
no output block scrolls sideways; the chapter prints it. Longer lines are wrapped with an indent of two.

>>> print(describe_run("tabular", {"spec": {"datasets": ["wine"], "seeds": range(5), "epochs": 25}}, "live run", 4.6))
live run: wine
  5 seeds per data set, 25 epochs: 5 s
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .trend_tables import PLAIN, check_result

__all__ = [
    "WIDTH",
    "wrap_lines",
    "describe_dataset",
    "provenance",
    "describe_run",
    "int8_summary",
    "accuracy_resolution",
    "grid_choice",
    "grid_noise",
    "cost_summary",
    "compare_header",
    "method_cost_summary",
]

#: The width of the book's code and output boxes, in characters.
WIDTH = 88


def wrap_lines(lines: Sequence[str], width: int = WIDTH) -> str:
    """``lines`` joined by newlines, each longer than ``width`` wrapped at spaces with an indent of two.

    >>> print(wrap_lines(["short", "a b c d e f"], width=7))
    short
    a b c d
      e f
    """
    out = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip(" ")) + 2)
        out.extend(textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False) or [""])
    return "\n".join(out)


def describe_dataset(sizes: Mapping[str, Any]) -> str:
    """``name (N train, N val, N test)`` from a result's ``dataset`` entry.

    >>> describe_dataset({"name": "digits", "train": 1294, "val": 144, "test": 359})
    'digits (1,294 train, 144 val, 359 test)'
    """
    return f"{sizes['name']} ({sizes['train']:,} train, {sizes['val']:,} val, {sizes['test']:,} test)"


def provenance(full: dict[str, Any]) -> str:
    """Where the committed results come from: the command, the date, the machine and the wall times."""
    check_result(full, ["command", "date", "machine", "wall_seconds", "section_seconds"], "full", "te.main")
    m = full["machine"]
    sections = ", ".join(f"{k} {v:.0f}" for k, v in full["section_seconds"].items())
    return wrap_lines([
        "committed full-size results, made by", f"  {full['command']}", f"  on {full['date']}, {m['platform']}",
        f"  {m['cpu_count']} CPUs, torch {m['torch']}; wall time {full['wall_seconds'] / 60:.1f} min",
        f"  per section (s): {sections}",
    ])  # fmt: skip


SECTIONS = ("compression", "tabular", "grid", "cost")


def describe_run(section: str, result: dict[str, Any], label: str, seconds: float | None = None) -> str:
    """Two lines on what a ``section`` run trained: its data, then models, seeds and epochs (and ``seconds``, the
    wall time of the live run, when given)."""
    if section not in SECTIONS:
        raise ValueError(f"section must be one of {list(SECTIONS)}, got section={section!r}")
    check_result(result, ["spec"], "result", f"te.run_{section}")
    spec = result["spec"]
    n_seeds = len(spec["seeds"])
    data = ", ".join(spec["datasets"]) if section == "tabular" else describe_dataset(result["dataset"])
    if section == "compression":
        what = f"{spec['model']} with {result['parameters']:,} parameters, {n_seeds} seeds, {spec['epochs']} epochs"
    elif section == "tabular":
        what = f"{n_seeds} seeds per data set, {spec['epochs']} epochs"
    elif section == "grid":
        cells = len(result["temperatures"]) * len(result["alphas"])
        what = (f"{cells} cells x {n_seeds} seeds = {cells * n_seeds} students, {n_seeds} plain, "
                f"1 teacher; {spec['epochs']} epochs each")  # fmt: skip
    else:
        what = f"{spec['epochs']} epochs, {n_seeds} seed(s), {result['threads']} torch thread(s)"
    lines = [f"{label}: {data}", f"  {what}" + ("" if seconds is None else f": {seconds:.0f} s")]
    if section == "cost":  # timings depend on what else the machine was doing
        lines.append(f"  CPU load average at the start {result['load_average'][0]:.1f}")
    return wrap_lines(lines)


def int8_summary(result: dict[str, Any]) -> str:
    """The int8 file's size against float32 (the teacher's, first seed) and whether int8 inference was faster."""
    check_result(result, ["rows", "inference"], "result", "te.run_compression")
    size = {
        (r["variant"], r["amount"]): r["bytes"] for r in result["rows"] if (r["seed"], r["model"]) == (0, "teacher")
    }
    dense, int8 = size[("pruned", 0.0)], size[("int8", 0.0)]
    ratios = [t["int8_ms_per_1000"] / t["float_ms_per_1000"] for t in result["inference"]]
    if max(ratios) < 0.9:
        speed = "int8 is clearly faster for every model"
    elif min(ratios) >= 1.0:
        speed = "int8 is slower for every model"
    else:
        speed = "no consistent speed-up from int8"
    return wrap_lines([
        f"int8 state_dict: {int8:,} bytes vs {dense:,} float32 bytes ({dense / int8:.2f} times smaller)",
        f"speed verdict: {speed}",
    ])  # fmt: skip


def accuracy_resolution(result: dict[str, Any]) -> str:
    """What one test row is worth in accuracy points, per tabular data set."""
    check_result(result, ["datasets"], "result", "te.run_tabular")
    parts = [f"{100 / d['sizes']['test']:.1f} points on {name} ({d['sizes']['test']} rows)"
             for name, d in result["datasets"].items()]  # fmt: skip
    return wrap_lines(["one test row = " + ", ".join(parts)])


def grid_choice(g: dict[str, Any]) -> str:
    """The cell chosen on validation, its test accuracy (evaluated once) next to the teacher's and the plain
    students', the winner's curse (validation minus test) and the gain over plain training."""
    check_result(g, ["chosen", "plain", "teacher", "spec"], "g", "te.run_grid")
    c, plain = g["chosen"], g["plain"]
    diff = c["test"]["mean"] - plain["test"]["mean"]
    return wrap_lines([
        f"chosen on validation: T = {c['T']:g}, alpha = {c['alpha']:g}, validation {100 * c['val']['mean']:.2f}%",
        f"test (evaluated once): chosen {100 * c['test']['mean']:.2f}%, teacher {100 * g['teacher']['test']:.2f}%,",
        f"  plain students (alpha = 0) {100 * plain['test']['mean']:.2f}% ± {100 * plain['test']['std']:.2f}",
        f"winner's curse: chosen cell's validation minus test accuracy = "
        f"{100 * (c['val']['mean'] - c['test']['mean']):+.2f} points",
        f"chosen distillation minus plain training on test: {100 * diff:+.2f} points "
        f"(means over {len(g['spec']['seeds'])} seeds)",
        "  no verdict: the grid keeps per-cell means, not the per-seed pairs the rule needs",
    ])  # fmt: skip


def grid_noise(g: dict[str, Any]) -> str:
    """The whole grid's range against the range seed noise alone would give it, and the verdict on (T, alpha)."""
    check_result(g, ["val_mean", "grid_range", "noise_range", "seed_std", "most_variable_cell"], "g", "te.run_grid")
    means = np.asarray(g["val_mean"])
    m, k = means.size, len(g["spec"]["seeds"])
    mv, ratio = g["most_variable_cell"], g["grid_range"] / g["noise_range"]
    near = int((means >= means.max() - g["noise_range"]).sum())
    if ratio > 1:
        word = f"(T, alpha) matters here: the grid's range is {ratio:.1f} times the range seed noise gives"
    else:
        word = f"the grid's range is only {ratio:.1f} times what seed noise gives: T and alpha do not matter"
    return wrap_lines([
        f"range of the {m} cell means: {100 * g['grid_range']:.2f} points; "
        f"seed noise within a cell (median std): {100 * g['seed_std']:.2f}",
        f"most variable cell: T = {mv['T']:g}, alpha = {mv['alpha']:g} (std {100 * mv['std']:.2f} points)",
        f"range expected from seed noise alone (d_{m} * sigma / sqrt({k})): {100 * g['noise_range']:.2f} points",
        f"cells whose mean is within that noise range of the best cell: {near} of {m}",
        word,
    ])  # fmt: skip


def cost_summary(result: dict[str, Any]) -> str:
    """What caching gets wrong under augmentation (the teacher on clean vs augmented images), and the total cost
    of born-again training against one plain run."""
    check_result(result, ["consistency", "summary"], "result", "te.run_cost")
    c, s = result["consistency"], result["summary"]
    ratio = s["born-again (teacher + student)"]["loop"]["mean"] / s[PLAIN]["loop"]["mean"]
    return wrap_lines([
        "teacher on clean vs augmented training images:",
        f"  its top class differs on {100 * c['disagreement']:.1f}% of them; "
        f"mean T^2 KL(clean || augmented) = {c['kl_T2']:.3f}",
        f"  its accuracy: {100 * c['teacher_acc_clean']:.1f}% (clean) "
        f"vs {100 * c['teacher_acc_view']:.1f}% (augmented)",
        f"born-again costs {ratio:.2f} times a plain run's training loop (the seed's 'two runs': 2.00)",
    ])  # fmt: skip


def compare_header(compare: dict[str, Any]) -> str:
    """The data, model, budget and machine of a head-to-head comparison (``python -m sdkit compare``)."""
    check_result(compare, ["config", "machine"], "compare", "the comparison's JSON file")
    cfg, m = compare["config"], compare["machine"]
    return wrap_lines([
        f"{cfg['dataset']}, {cfg['model']} width {cfg['width']}, {cfg['epochs']} epochs, {len(cfg['seeds'])} seeds",
        f"{m['cpu_model']}, {m['torch_threads']} torch thread(s), load average at the end {m['load_average']}",
    ])  # fmt: skip


TWO_RUN_METHODS = ("kd", "ban")  # the methods that train a teacher first


def method_cost_summary(compare: dict[str, Any]) -> str:
    """The range of wall time over the single-run methods, and each two-run method's, relative to plain."""
    check_result(compare, ["summary"], "compare", "the comparison's JSON file")
    family = {r["method"]: r["seconds_mean"] for r in compare["summary"]}
    ratio = {name: seconds / family["plain"] for name, seconds in family.items() if name != "plain"}
    single = {n: v for n, v in ratio.items() if n not in TWO_RUN_METHODS}
    two = ", ".join(f"{n} {ratio[n]:.2f} x" for n in reversed(TWO_RUN_METHODS) if n in ratio)
    return wrap_lines([
        f"single-run methods ({', '.join(single)}): {min(single.values()):.2f} to {max(single.values()):.2f} x plain",
        f"two-run methods: {two}",
    ])  # fmt: skip
