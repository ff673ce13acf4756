"""Do the committed results still come out of today's code? A CI-sized slice of each file's recorded command.

Every result file under ``book/results/`` and ``benchmarks/results/`` records the ``command`` that wrote it. For
each file, :func:`plan` narrows that command to a slice (one seed, one cell, one section or a few methods; the
full budget's settings otherwise), :func:`run_slice` runs it in a fresh process with the recorded torch thread
count, and :func:`compare_rows` matches the slice's rows with the committed rows of the same key.

Tolerance. Training on a CPU is bitwise repeatable for the same kernels and thread count, and chaotic across
them: a different rounding in the first step grows into a different run, as different as another seed. So:

* **exact** (``|new - committed| <= 1e-6``) when the machine is the same kind: the same CPU model, the same torch
  CPU capability (AVX2, AVX-512, ...), the same torch version and thread count (:func:`same_kind`);
* **within seed noise** otherwise: ``|new - committed| <= NOISE_K * sd + floor``, where ``sd`` is the committed
  sample standard deviation of that metric over the group's seeds and ``floor`` is one test example (accuracy)
  or 0.01 (NLL). Two independent runs differ by ``sqrt(2) * sd`` typically; ``NOISE_K = 5`` is about 3.5 of those,
  so a check of 20 numbers fails by chance about once in a hundred runs.

Files written before the machine recorded its CPU capability are judged within seed noise. GPU figures
(``benchmarks/results/gpu_*.json``) are listed but not re-run: only ``benchmarks/gpu_check.sh`` on a GPU
measures them again. Speed benchmarks
are re-run on a tiny size to show that their recorded command still works; their timings are not compared (CI
shares its two cores, and speed targets live in the benchmarks' own tables).

    python -m sdkit.book.reproduce                          # every committed file
    python -m sdkit.book.reproduce book/results/trends_full.json --out report.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..evaluate import Table
from ..utils import atomic_write_json, machine_info
from .stats import mean_std

__all__ = ["NOISE_K", "Slice", "committed_files", "plan", "same_kind", "compare_rows", "run_slice", "check", "main"]

ROOT = Path(__file__).resolve().parents[2]
#: Seed-noise tolerance in committed standard deviations (see the module's docstring).
NOISE_K = 5.0
EXACT = 1e-6


@dataclass(frozen=True)
class Slice:
    """The part of a committed file that CI re-runs: ``argv`` (a command line, run from the repository's root,
    writing to ``{out}``), where its rows are (``rows``: a key path into the JSON, ``*`` for every dataset),
    the fields that identify a row (``keys``) and the metrics compared (``metrics``, with their noise floors)."""

    path: str
    argv: tuple[str, ...]
    rows: tuple[str, ...]
    keys: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def committed_files(root: Path = ROOT) -> list[Path]:
    """Every committed result file: ``book/results/**/*.json`` and ``benchmarks/results/*.json``."""
    return sorted([*(root / "book" / "results").rglob("*.json"), *(root / "benchmarks" / "results").glob("*.json")])


def _replace(argv: list[str], flag: str, *values: str) -> list[str]:
    """``argv`` with ``flag``'s values replaced by ``values`` (added when absent; removed when no values)."""
    out, skip = [], False
    for arg in argv:
        if skip and not arg.startswith("--"):
            continue
        skip = arg == flag
        if not skip:
            out.append(arg)
    return out + ([flag, *values] if values else [])


def plan(path: str | Path, result: dict[str, Any] | None = None) -> Slice:
    """The slice of committed file ``path`` that CI re-runs, from the command the file records."""
    path = Path(path)
    result = json.loads(path.read_text()) if result is None else result
    command = result.get("command")
    if not command:
        raise ValueError(f"{path} records no command: every committed result must name the command that made it")
    rel = str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else str(path)
    if path.name.startswith("gpu_"):  # GPU figures: only benchmarks/gpu_check.sh on a GPU measures them again
        return Slice(rel, (), (), ())
    argv = shlex.split(command)
    accuracy = {"accuracy": 1.0 / 10000}
    if argv[:4] == ["python", "-m", "sdkit", "compare"]:
        # one seed of the cheapest method, every other setting as recorded
        sliced = _replace(_replace(_replace(argv, "--seeds", "0"), "--methods", "plain"), "--out", "{out}")
        return Slice(rel, tuple(sliced), ("rows",), ("method", "seed"),
                     {"test_accuracy": 1e-4, "test_nll": 0.01})  # fmt: skip
    if argv[:3] == ["python", "-m", "sdkit.book.regimes"]:
        from .regimes import CELLS, METHODS

        # plain, and one other method per cell, in turn, so that across the ten cells every method is checked
        cell = result["cell"]
        other = METHODS[1 + sorted(CELLS).index(cell) % (len(METHODS) - 1)]
        sliced = _replace(_replace(_replace(_replace(_replace(argv, "--cells", cell), "--methods", "plain", other),
                                            "--seeds", "0"), "--out", "{out}"), "--merge")  # fmt: skip
        floor = 1.0 / 10000
        return Slice(rel, tuple(sliced), ("rows",), ("method", "seed"), {"test_accuracy": floor, "test_nll": 0.01})
    if argv[:3] in (["python", "-m", "sdkit.trend_experiments"], ["python", "-m", "sdkit.book.trend_experiments"]):
        sliced = _replace(_replace(argv, "--sections", "tabular"), "--out", "{out}")
        return Slice(rel, tuple(sliced), ("tabular", "datasets", "*", "rows"), ("dataset", "model", "seed"),
                     {"accuracy": 1.0 / 36, "nll": 0.01})  # fmt: skip
    if argv[:4] in (["python", "-m", "sdkit.experiments", "applications"],
                    ["python", "-m", "sdkit.book.experiments", "applications"]):  # fmt: skip
        # the teacher (generation 0) of seed 0: the first model of the born-again section
        sliced = [*_replace(argv, "--out", "{out}"), "--set", "seeds=[0]", "--set", "ba_generations=0",
                  "--sections", "born_again"]  # fmt: skip
        return Slice(rel, tuple(sliced), ("generalization", "rows"), ("seed", "generation"),
                     {**accuracy, "nll": 0.01})  # fmt: skip
    if argv[:2] == ["python", "benchmarks/throughput.py"]:
        sliced = _replace(_replace(_replace(argv, "--out", "{out}"), "--train-size", "512"), "--epochs", "1")
        return Slice(rel, tuple(sliced), (), ())
    if argv[:2] == ["python", "benchmarks/peers.py"]:
        sliced = _replace(
            _replace(_replace(_replace(argv, "--rounds", "1"), "--out", "{out}"), "--train-size", "1024"),
            "--epochs",
            "1",
        )
        return Slice(rel, tuple(sliced), (), ())
    raise ValueError(f"{path}: no reproduction slice for the command {command!r}; add one to sdkit.book.reproduce")


def same_kind(recorded: dict[str, Any] | None, current: dict[str, Any] | None = None) -> bool:
    """Whether ``recorded`` (a result's ``machine``) and ``current`` would round the same way: the same CPU model,
    torch CPU capability, torch version and thread count. A record without a capability is never the same kind."""
    current = machine_info() if current is None else current
    if not recorded or "cpu_capability" not in recorded:
        return False
    keys = ("cpu_model", "cpu_capability", "torch", "torch_threads")
    return all(recorded.get(k) == current.get(k) for k in keys)


def _rows_at(result: dict[str, Any], where: Sequence[str]) -> list[dict[str, Any]]:
    """The rows under the key path ``where``; ``*`` walks every entry of a dict and adds its key as ``dataset``."""
    node: Any = result
    for i, key in enumerate(where):
        if key == "*":
            return [{"dataset": name, **row} for name, sub in node.items() for row in _rows_at(sub, where[i + 1 :])]
        node = node[key]
    return list(node)


def compare_rows(committed: list[dict[str, Any]], new: list[dict[str, Any]], keys: Sequence[str],
                 metrics: dict[str, float], exact: bool) -> list[dict[str, Any]]:  # fmt: skip
    """One line per (new row, metric): the committed value, the new one, the tolerance and whether it holds.

    ``exact``: ``|new - committed| <= 1e-6``; otherwise ``NOISE_K`` times the committed standard deviation over
    seeds of the rows that share every key but ``seed``, plus the metric's floor.

    >>> old = [{"m": "a", "seed": s, "acc": v} for s, v in enumerate([0.80, 0.82, 0.81])]
    >>> [(r["new"], r["ok"]) for r in compare_rows(old, [{"m": "a", "seed": 0, "acc": 0.83}], ["m", "seed"],
    ...                                             {"acc": 0.0}, exact=False)]  # sd 0.01: 0.03 is inside 5 sd
    [(0.83, True)]
    >>> compare_rows(old, [{"m": "a", "seed": 0, "acc": 0.8001}], ["m", "seed"], {"acc": 0.0}, exact=True)[0]["ok"]
    False
    """
    lines = []
    group_keys = [k for k in keys if k != "seed"]
    for row in new:
        match = [r for r in committed if all(r.get(k) == row.get(k) for k in keys)]
        if len(match) != 1:
            raise ValueError(f"{len(match)} committed rows match {dict((k, row.get(k)) for k in keys)}; expected 1")
        group = [r for r in committed if all(r.get(k) == row.get(k) for k in group_keys)]
        for metric, floor in metrics.items():
            old, value = float(match[0][metric]), float(row[metric])
            sd = mean_std([float(r[metric]) for r in group], single=0.0)[1]
            tolerance = EXACT if exact else NOISE_K * sd + floor
            ok = math.isfinite(value) and abs(value - old) <= tolerance
            lines.append({**{k: row.get(k) for k in keys}, "metric": metric, "committed": old, "new": value,
                          "tolerance": tolerance, "ok": ok})  # fmt: skip
    return lines


def run_slice(plan_: Slice, threads: int, workdir: Path, timeout: float = 900) -> dict[str, Any]:
    """Run the slice's command from the repository's root with ``threads`` torch threads; its JSON result."""
    out = workdir / (Path(plan_.path).stem + "-slice")
    is_folder = "sdkit.book.regimes" in plan_.argv
    argv = [sys.executable if a == "python" else a.replace("{out}", str(out)) for a in plan_.argv]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{plan_.command} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    written = out / Path(plan_.path).name if is_folder else out
    return json.loads(written.read_text())


def check(path: str | Path, workdir: Path) -> dict[str, Any]:
    """Re-run the slice of one committed file and compare; a report dict (``ok``, ``mode``, ``lines``)."""
    committed = json.loads(Path(path).read_text())
    slice_ = plan(path, committed)
    if not slice_.argv:
        return {"file": slice_.path, "command": "bash benchmarks/gpu_check.sh (on a GPU)", "threads": 0, "seconds": 0.0,
                "mode": "GPU only: not re-run on a CPU", "lines": [], "ok": True}  # fmt: skip
    recorded = committed.get("machine") or {}
    threads = int(recorded.get("torch_threads") or 1)
    start = time.perf_counter()
    report: dict[str, Any] = {"file": slice_.path, "command": slice_.command, "threads": threads}
    try:
        new = run_slice(slice_, threads, workdir)
    except (RuntimeError, subprocess.TimeoutExpired) as err:  # the recorded command no longer runs: a failure
        return {**report, "seconds": time.perf_counter() - start, "mode": "failed to run", "lines": [], "ok": False,
                "error": str(err)[-2000:]}  # fmt: skip
    report["seconds"] = time.perf_counter() - start
    if not slice_.metrics:  # a speed benchmark: the command runs and writes its rows
        report.update(mode="runs", lines=[], ok=bool(new.get("rows")))
        return report
    exact = same_kind(recorded, {**machine_info(), "torch_threads": threads})  # the slice ran at these threads
    lines = compare_rows(_rows_at(committed, slice_.rows), _rows_at(new, slice_.rows), slice_.keys,
                         slice_.metrics, exact)  # fmt: skip
    report.update(mode="exact" if exact else "seed noise", lines=lines, ok=bool(lines) and all(x["ok"] for x in lines))
    return report


def summary_table(reports: Sequence[dict[str, Any]]) -> Table:
    """One row per file: how it was judged, how many numbers held, the largest deviation in tolerances."""
    rows = []
    for r in reports:
        worst = max((abs(x["new"] - x["committed"]) / x["tolerance"] for x in r["lines"]), default=0.0)
        held = sum(x["ok"] for x in r["lines"])
        rows.append([r["file"], r["mode"], f"{held}/{len(r['lines'])}", f"{worst:.2f}", f"{r['seconds']:.0f}",
                     "yes" if r["ok"] else "NO"])  # fmt: skip
    return Table(["file", "judged", "numbers held", "worst |diff| / tolerance", "seconds", "reproduces"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdkit.book.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="committed result files (default: all of them)")
    parser.add_argument("--out", help="write the report as JSON to this file")
    parser.add_argument("--jobs", type=int, default=1, help="slices run at once (each with its recorded threads)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be a positive integer, got {args.jobs}")
    files = [Path(f).resolve() for f in args.files] or committed_files()
    print(f"this machine: {machine_info()['cpu_model']}, capability {torch.backends.cpu.get_cpu_capability()}")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(check, path, Path(tmp)) for path in files]  # each slice is its own process
        for future in as_completed(futures):
            report = future.result()
            bad = [x for x in report["lines"] if not x["ok"]] or report.get("error", "")
            print(f"{report['file']}: {report['mode']}, {'ok' if report['ok'] else 'DOES NOT REPRODUCE'} "
                  f"({report['seconds']:.0f} s) {bad[:3] if bad else ''}", flush=True)  # fmt: skip
        reports = [f.result() for f in futures]
    print(summary_table(reports))
    if args.out:
        atomic_write_json(args.out, {"reports": reports})
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
