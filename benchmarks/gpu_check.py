"""The Python parts of benchmarks/gpu_check.sh: the package check, the chapter runner and the summary writer.

    python benchmarks/gpu_check.py packages                       # exit 2 naming what is missing and how to bring it
    python benchmarks/gpu_check.py step NAME RC SECONDS --out DIR # record one step of the script
    python benchmarks/gpu_check.py chapters --out DIR --mode full --cell-timeout 150 --timeout 240 [CHAPTER ...]
    python benchmarks/gpu_check.py summarize --out DIR --command "..."   # gpu_check.json + gpu_check.md

Every file is written atomically as soon as its step ends, so a run stopped by a timeout still reports what it
measured. ``chapters`` executes the chapters in parallel (one process each, nbclient, a per-cell timeout) and each
records after every cell how many cells it has done, so a slow chapter says how far it got.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdkit.utils import atomic_write_json, machine_info  # noqa: E402

#: What the GPU image lacks (docs: /work/shared/design/gpu-run-notes.md) and how to bring it.
PACKAGES = {"nbclient": "chapters", "nbformat": "chapters", "ipykernel": "chapters", "ipywidgets": "chapters",
            "torchdistill": "the peer benchmark"}  # fmt: skip
HOW_TO_BRING = (
    "bring wheels for Python 3.12: pip download --only-binary=:all: --python-version 3.12 --implementation cp "
    "--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "
    "--platform any -d DIR nbclient nbformat ipykernel ipywidgets, and pip download --no-deps torchdistill==1.1.5 "
    "-d DIR; there: pip install --no-index --no-deps --target /tmp/site DIR/*.whl and PYTHONPATH=/tmp/site"
)


def missing_packages(names: dict[str, str] | None = None) -> list[str]:
    """The modules of ``names`` (default :data:`PACKAGES`) that cannot be imported here."""
    return [name for name in (PACKAGES if names is None else names) if importlib.util.find_spec(name) is None]


def record_step(out: Path, name: str, rc: int, seconds: float) -> Path:
    """Write ``out/steps/NAME.json``: the step's exit status (124/137: its timeout) and wall time."""
    status = "ok" if rc == 0 else "timeout" if rc in (124, 137) else "failed"
    return atomic_write_json(out / "steps" / f"{name}.json",
                             {"step": name, "rc": rc, "status": status, "seconds": seconds})  # fmt: skip


def run_chapter(path: Path, out: Path, mode: str, cell_timeout: int) -> dict[str, Any]:
    """Execute one chapter with nbclient (book/ as working directory, ``SDKIT_MODE=mode``), writing
    ``out/chapters/NAME.json`` after every code cell: status, code cells done of all, seconds."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    os.environ["SDKIT_MODE"] = mode
    nb = nbformat.read(path, as_version=4)
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    record = {"chapter": path.stem, "mode": mode, "status": "running", "cells_done": 0, "cells": code_cells,
              "seconds": 0.0, "cell_timeout": cell_timeout, "error": None}  # fmt: skip
    target = out / "chapters" / f"{path.stem}.json"
    start = time.perf_counter()

    def done(cell: Any, cell_index: int, execute_reply: Any) -> None:
        if cell.cell_type == "code":
            record.update(cells_done=record["cells_done"] + 1, seconds=time.perf_counter() - start)
            atomic_write_json(target, record)

    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}, on_cell_executed=done)  # fmt: skip
    atomic_write_json(target, record)
    try:
        client.execute()
        record["status"] = "ok"
    except CellTimeoutError as err:
        record.update(status="timeout", error=str(err).splitlines()[0][:300])
    except CellExecutionError as err:
        record.update(status="error", error=str(err).strip().splitlines()[-1][:300])
    record["seconds"] = time.perf_counter() - start
    atomic_write_json(target, record)
    return record


def run_chapters(paths: list[Path], out: Path, mode: str, cell_timeout: int, timeout: int) -> list[dict[str, Any]]:
    """Every chapter of ``paths`` at once, one process each; after ``timeout`` seconds the ones still running are
    stopped and recorded as ``timeout`` with the cells they had done."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("MPLBACKEND", None)  # inline figures need matplotlib's notebook backend
    procs = {p: subprocess.Popen([sys.executable, __file__, "chapter", str(p), "--out", str(out), "--mode", mode,
                                  "--cell-timeout", str(cell_timeout)], env=env) for p in paths}  # fmt: skip
    deadline = time.monotonic() + timeout
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    records = []
    for path, proc in procs.items():
        target = out / "chapters" / f"{path.stem}.json"
        rec = json.loads(target.read_text()) if target.exists() else {"chapter": path.stem, "cells_done": 0}
        if rec.get("status", "running") == "running":
            rec.update(status="timeout", error=f"stopped after the chapters' {timeout} s")
        elif proc.returncode not in (0, None) and rec["status"] == "ok":
            rec["status"] = "failed"
        atomic_write_json(target, rec)
        records.append(rec)
    return records


def _reference(label: str, task: str, cfg: dict[str, Any], images_per_epoch: int, images_per_second: float):
    """One measured run in the form sdkit.book.cost fits to: what was trained, on what, and how fast."""
    from sdkit.book.cost import DATASETS

    return {"label": label, "task": task, "model": cfg["model"], "width": cfg["width"],
            "input_shape": DATASETS[cfg["dataset"]][2], "batch_size": cfg["batch_size"],
            "images_per_epoch": images_per_epoch, "images_per_second": images_per_second}  # fmt: skip


def references(out: Path) -> list[dict[str, Any]]:
    """The measured runs :mod:`sdkit.book.cost` fits its GPU model to, from the steps' result files."""
    from sdkit.book.cost import split_sizes

    refs = []
    for name, script in (("gpu_throughput.json", "throughput"), ("gpu_peers.json", "peers")):
        if not (out / name).exists():
            continue
        result = json.loads((out / name).read_text())
        for row in result["rows"]:
            task = row.get("task", "distill")  # peers.py times one job, a distillation
            if row["mode"] == "sdkit" and task in ("train", "distill"):
                label = f"benchmarks/{script}.py: sdkit {task}"
                refs.append(_reference(label, task, result["config"], row["images_per_epoch"],
                                       row["images_per_second"]))  # fmt: skip
    headline = out / "gpu_headline.json"
    if headline.exists():
        result = json.loads(headline.read_text())
        cfg = result["config"]
        n = split_sizes(cfg["dataset"], cfg.get("train_size"))[0]
        for gen in result["generations"]:
            later = [r["seconds"] for r in gen["history"][1:]]  # the first epoch holds compilation and autotuning
            if later:
                label = f"python -m sdkit run: generation {gen['generation']}, epochs after the first"
                task = "distill" if gen["generation"] else "train"
                refs.append(_reference(label, task, cfg, n, n * len(later) / sum(later)))
    return refs


def gpu_machine() -> dict[str, Any]:
    """GPU name, memory and driver (nvidia-smi), torch and CUDA versions, the CPU: where the run was made."""
    import torch

    on_cuda = torch.cuda.is_available()
    info = machine_info("cuda" if on_cuda else "cpu")
    info["cuda"] = torch.version.cuda
    try:
        query = "--query-gpu=name,memory.total,driver_version"
        line = subprocess.run(["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=30, check=True).stdout.splitlines()[0]  # fmt: skip
        name, memory, driver = (part.strip() for part in line.split(","))
        info.update(gpu=name, gpu_memory=memory, driver=driver)
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        info.setdefault("gpu", torch.cuda.get_device_name() if on_cuda else "none (CPU dry run)")
    return info


def summarize(out: Path, command: str) -> dict[str, Any]:
    """Write ``out/gpu_check.json`` (machine, date, command, steps, chapters with their estimated GPU time, and
    the references for sdkit.book.cost) and ``out/gpu_check.md``, the summary table; return the JSON."""
    from sdkit.book import cost
    from sdkit.utils import stamped

    steps = [json.loads(p.read_text()) for p in sorted((out / "steps").glob("*.json"))]
    chapters = [json.loads(p.read_text()) for p in sorted((out / "chapters").glob("*.json"))]
    for rec in chapters:
        if rec["chapter"] in cost.CHAPTERS and rec.get("mode") in cost.MODES:
            rec["estimated_gpu_seconds"] = cost.estimate(rec["chapter"], rec["mode"]).gpu_seconds
    result = {"steps": steps, "chapters": chapters, "references": references(out)}
    result = stamped(result, command=command)
    result["machine"] = gpu_machine()
    atomic_write_json(out / "gpu_check.json", result)
    lines = [f"# GPU check, {result['date'][:10]}", "", f"{result['machine']['gpu']}, torch "
             f"{result['machine']['torch']}, CUDA {result['machine']['cuda']}; `{command}`", "",
             "| step | status | seconds |", "|---|---|---:|"]  # fmt: skip
    lines += [f"| {s['step']} | {s['status']} | {s['seconds']:.0f} |" for s in steps]
    lines += ["", "| chapter | mode | status | cells done | seconds | estimated |", "|---|---|---|---:|---:|---:|"]
    for c in chapters:
        est = f"{c['estimated_gpu_seconds']:.0f}" if "estimated_gpu_seconds" in c else ""
        lines.append(f"| {c['chapter']} | {c.get('mode', '')} | {c['status']} | {c['cells_done']}/{c.get('cells', '?')}"
                     f" | {c.get('seconds', 0):.0f} | {est} |")  # fmt: skip
    lines += ["", "| measured run | images/s |", "|---|---:|"]
    lines += [f"| {r['label']} | {r['images_per_second']:,.0f} |" for r in result["references"]]
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/gpu_check.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("packages", help="check for the packages the GPU image lacks")
    step = sub.add_parser("step", help="record one step's exit status and wall time")
    step.add_argument("name")
    step.add_argument("rc", type=int)
    step.add_argument("seconds", type=float)
    one = sub.add_parser("chapter", help="execute one chapter (what `chapters` runs in each process)")
    one.add_argument("path", type=Path)
    many = sub.add_parser("chapters", help="execute chapters in parallel")
    many.add_argument("paths", nargs="*", type=Path)
    many.add_argument("--timeout", type=int, default=240, help="seconds for all chapters together")
    for p in (one, many):
        p.add_argument("--mode", choices=["quick", "full"], default="full")
        p.add_argument("--cell-timeout", type=int, default=150, help="seconds one cell may take")
    summary = sub.add_parser("summarize", help="write gpu_check.json and gpu_check.md")
    summary.add_argument("--command", dest="run_command", default="bash benchmarks/gpu_check.sh")
    for p in (step, one, many, summary):
        p.add_argument("--out", type=Path, required=True, help="the folder of this run's results")
    args = parser.parse_args(argv)
    if args.command == "packages":
        missing = missing_packages()
        if missing:
            needs = ", ".join(f"{m} ({PACKAGES[m]})" for m in missing)
            print(f"gpu_check: missing {needs}; {HOW_TO_BRING}", file=sys.stderr)
            return 2
        return 0
    if args.command == "step":
        record_step(args.out, args.name, args.rc, args.seconds)
    elif args.command == "chapter":
        return 0 if run_chapter(args.path.resolve(), args.out, args.mode, args.cell_timeout)["status"] == "ok" else 1
    elif args.command == "chapters":
        paths = [p.resolve() for p in args.paths] or sorted((ROOT / "book").glob("0*.ipynb"))
        records = run_chapters(paths, args.out, args.mode, args.cell_timeout, args.timeout)
        for r in records:
            print(f"{r['chapter']}: {r['status']}, {r['cells_done']}/{r.get('cells', '?')} cells, "
                  f"{r.get('seconds', 0):.0f} s", flush=True)  # fmt: skip
        return 0 if all(r["status"] == "ok" for r in records) else 1
    else:
        result = summarize(args.out, args.run_command)
        print((args.out / "gpu_check.md").read_text())
        print(f"wrote {args.out / 'gpu_check.json'} ({len(result['references'])} measured runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
