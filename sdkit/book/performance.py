"""Tables and the figure of the book's Performance page, from the JSON files the benchmarks write.

``benchmarks/throughput.py`` measures the tutorial loop against ``sdkit`` (``benchmarks/results/throughput_*.json``);
``benchmarks/peers.py`` measures the same distillation job in torchdistill (``benchmarks/results/peers_cpu.json``).
The benchmarks are scripts, not part of the package, so the page passes their mode labels in (``peers.LABELS``,
``peers.STEPS``) rather than this module copying them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..evaluate import Table

__all__ = [
    "MODES", "throughput_provenance", "throughput_table", "plot_throughput", "peers_provenance", "peers_table",
    "peers_breakdown", "peers_ops_table",
]  # fmt: skip

#: The two loops of the throughput benchmark, in the order they are shown.
MODES = ("naive", "sdkit")


def _row(result: dict[str, Any], task: str, mode: str) -> dict[str, Any]:
    for r in result["rows"]:
        if r["task"] == task and r["mode"] == mode:
            return r
    raise ValueError(f"the result has no row for task={task!r}, mode={mode!r}; pass a throughput.py result")


def throughput_provenance(result: dict[str, Any]) -> Table:
    """The command, the machine (CPU or GPU, threads, torch, load average), the date and the workload of a
    throughput result."""
    m, cfg = result["machine"], result["config"]
    gpu = f", GPU {m['gpu']}" if "gpu" in m else ""
    rows = [
        ["command", result["command"]],
        ["machine", f"{m.get('cpu_model', m['processor'])}, {m['cpu_count']} CPUs, {m['torch_threads']} torch "
                    f"threads{gpu}, torch {m['torch']}; load average {m.get('load_average')}"],
        ["date", result["date"][:10]],
        ["workload", f"{cfg['dataset']}, {cfg['model']} width {cfg['width']}, batch {cfg['batch_size']}, "
                     f"{cfg['train_size']} training images, median of {cfg['epochs']} timed epochs"],
    ]  # fmt: skip
    return Table(["run", "value"], rows)


def throughput_table(result: dict[str, Any]) -> Table:
    """One row per task (train, distill, eval): images per second of the naive loop and of sdkit (median epoch),
    sdkit's speed-up, and the peak memory of each.

    >>> rows = [{"task": "train", "mode": m, "images_per_second": ips, "peak_memory_mb": 900.0}
    ...         for m, ips in (("naive", 1000.0), ("sdkit", 2500.0))]
    >>> throughput_table({"rows": rows, "speedup_sdkit_over_naive": {"train": 2.5}}).rows
    [['train', '1,000', '2,500', '2.50x', '900', '900']]
    """
    rows = []
    for task, ratio in result["speedup_sdkit_over_naive"].items():
        by = {mode: _row(result, task, mode) for mode in MODES}
        ips = [f"{by[mode]['images_per_second']:,.0f}" for mode in MODES]
        peak = [f"{by[mode]['peak_memory_mb']:,.0f}" for mode in MODES]
        rows.append([task, *ips, f"{ratio:.2f}x", *peak])
    return Table(["task", "naive img/s", "sdkit img/s", "speed-up", "naive peak MB", "sdkit peak MB"], rows)


def plot_throughput(result: dict[str, Any], title: str) -> Figure:
    """Images per second of the naive loop and of sdkit, side by side for every task, each bar labelled."""
    tasks = list(result["speedup_sdkit_over_naive"])
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=90)
    for k, mode in enumerate(MODES):
        ips = [_row(result, task, mode)["images_per_second"] for task in tasks]
        bars = ax.bar([i + 0.38 * k for i in range(len(tasks))], ips, width=0.38, label=mode)
        ax.bar_label(bars, fmt="{:,.0f}", fontsize=7)
    ax.set_xticks([i + 0.19 for i in range(len(tasks))], tasks)
    ax.set_ylabel("images per second (median epoch)")
    ax.set_title(title, fontsize=10)
    ax.legend()
    return fig


def peers_provenance(result: dict[str, Any]) -> Table:
    """The command, torchdistill's version, the date, the workload and the machine of a ``peers.py`` result,
    with the load average before and after (the jobs that shared the machine)."""
    c, m = result["config"], result["machine"]
    rows = [
        ["command", result["command"]],
        ["torchdistill, date", f"{result['torchdistill']}, {result['date'][:10]}"],
        ["workload", f"{c['dataset']}, {c['model']} width {c['width']}, batch {c['batch_size']}, "
                     f"{c['train_size']} images, T={c['T']}, alpha={c['alpha']}, median of "
                     f"{c['epochs'] * c.get('rounds', 1)} timed epochs"],
        ["machine", f"{m['cpu_model']}, {m['torch_threads']} torch threads, load average "
                    f"{result['load_average_before']} before, {m['load_average']} after"],
    ]  # fmt: skip
    return Table(["run", "value"], rows)


def _check_labels(result: dict[str, Any], labels: Mapping[str, str]) -> None:
    missing = sorted({r["mode"] for r in result["rows"]} - set(labels))
    if missing:
        raise ValueError(f"labels has no entry for mode(s) {missing}; pass peers.LABELS from benchmarks/peers.py")


def peers_table(result: dict[str, Any], labels: Mapping[str, str]) -> Table:
    """One row per mode, in the order measured: images per wall second and per CPU-second of the median epoch,
    sdkit's speed-up over the mode by each, and peak memory. ``labels`` names the modes (``peers.LABELS``).

    >>> rows = [{"mode": m, "images_per_second": ips, "images_per_cpu_second": ips, "peak_memory_mb": 800.0}
    ...         for m, ips in (("naive", 1000.0), ("sdkit", 2000.0))]
    >>> result = {"rows": rows, "speedup_sdkit_over": {"naive": 2.0}, "speedup_sdkit_over_cpu_time": {"naive": 2.0}}
    >>> peers_table(result, {"naive": "tutorial", "sdkit": "sdkit.train"}).rows[0]
    ['tutorial', '1,000', '1,000', '2.00x', '2.00x', '800']
    """
    _check_labels(result, labels)
    rows = []
    for r in result["rows"]:
        ratios = [result[key].get(r["mode"]) for key in ("speedup_sdkit_over", "speedup_sdkit_over_cpu_time")]
        rows.append([labels[r["mode"]], f"{r['images_per_second']:,.0f}", f"{r['images_per_cpu_second']:,.0f}",
                     *("" if x is None else f"{x:.2f}x" for x in ratios), f"{r['peak_memory_mb']:,.0f}"])  # fmt: skip
    return Table(["distillation epoch", "img/s", "img/CPU-s", "sdkit speed-up", "(CPU time)", "peak MB"], rows)


def peers_breakdown(result: dict[str, Any], labels: Mapping[str, str], steps: Sequence[tuple[str, str, str]]) -> Table:
    """Where the difference between torchdistill's example and sdkit.train goes: CPU microseconds per image of
    each mode (the median epoch's CPU time over its images), then what each step ``(from, to, name)`` of
    ``steps`` (``peers.STEPS``) saves.

    >>> rows = [{"mode": m, "images_per_cpu_second": ips} for m, ips in (("a", 1000.0), ("b", 2000.0))]
    >>> peers_breakdown({"rows": rows}, {"a": "A", "b": "B"}, [("a", "b", "a -> b")]).rows
    [['A', '1000.0', ''], ['B', '500.0', ''], ['a -> b', '', '+500.0']]
    """
    _check_labels(result, labels)
    us = {r["mode"]: 1e6 / r["images_per_cpu_second"] for r in result["rows"]}
    rows = [[labels[m], f"{v:.1f}", ""] for m, v in us.items()]
    rows += [[name, "", f"{us[a] - us[b]:+.1f}"] for a, b, name in steps if a in us and b in us]
    return Table(["CPU time per image", "µs", "saved"], rows)


def peers_ops_table(result: dict[str, Any], labels: Mapping[str, str], timed: Mapping[str, str]) -> Table:
    """Operators per training step of each variant (``result["ops_per_step"]``, benchmarks/step_ops.py), with the
    images per wall second and per CPU-second of the ``peers.py`` mode that times the same loop (``timed``), and
    each variant's count over sdkit's as it runs there (the CPU for the CPU's variants, CUDA's for the others).

    >>> result = {"ops_per_step": {"sdkit": 100.0, "box": 150.0}, "rows": [
    ...     {"mode": "sdkit", "images_per_second": 3000.0, "images_per_cpu_second": 3100.0},
    ...     {"mode": "fed", "images_per_second": 2000.0, "images_per_cpu_second": 2100.0}]}
    >>> peers_ops_table(result, {"sdkit": "sdkit", "box": "box"}, {"sdkit": "sdkit", "box": "fed"}).rows[1]
    ['box', '150', '1.50x', '2,000', '2,100']
    """
    ops = result.get("ops_per_step") or {}
    if not ops:
        raise ValueError("the result has no ops_per_step; rerun benchmarks/peers.py with torchdistill installed")
    missing = sorted(set(ops) - set(labels))
    if missing:
        raise ValueError(f"labels has no entry for variant(s) {missing}; pass step_ops.LABELS")
    by_mode = {r["mode"]: r for r in result["rows"]}
    rows = []
    for variant, count in ops.items():
        base = ops.get("sdkit-cuda-path" if "foreach" in variant or "cuda" in variant else "sdkit")
        row = by_mode.get(timed.get(variant, ""))
        speed = ["", ""] if row is None else [f"{row[k]:,.0f}" for k in ("images_per_second", "images_per_cpu_second")]
        rows.append([labels[variant], f"{count:.0f}", f"{count / base:.2f}x" if base else "", *speed])
    return Table(["training step", "operators", "vs sdkit", "img/s (CPU)", "img/CPU-s"], rows)
