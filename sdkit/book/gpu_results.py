"""The GPU rows of the Performance page: what ``benchmarks/gpu_check.sh`` measured, from its ``gpu_check*.json``.

The issue-19 reference (``gpu_reference.json``) is not one of them: it is a number reported by hand that
:mod:`sdkit.book.cost` uses until a check has run, so the page says "not measured yet" until then.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..evaluate import Table
from .cost import RESULTS

__all__ = ["gpu_check_files", "gpu_table"]

NOT_MEASURED = "not measured yet: run `bash benchmarks/gpu_check.sh` on a GPU machine"


def gpu_check_files(results: Path = RESULTS) -> list[Path]:
    """The summaries gpu_check.sh wrote in ``results`` (files ``gpu_*.json`` with ``references``), by name."""
    files = sorted(p for p in Path(results).glob("gpu_*.json") if p.name != "gpu_reference.json")
    return [p for p in files if "references" in json.loads(p.read_text())]


def gpu_table(results: Path = RESULTS) -> Table:
    """One row per measured run (images per second) and per chapter executed in full mode (status, cells done,
    seconds), with the GPU and the date of each check; a single "not measured yet" row when no check has run.

    >>> import tempfile
    >>> gpu_table(Path(tempfile.mkdtemp())).rows[0][0].startswith("not measured yet")
    True
    """
    header = ["GPU check", "what", "result"]
    rows = []
    for path in gpu_check_files(results):
        result = json.loads(path.read_text())
        where = f"{result['machine'].get('gpu', 'GPU')}, {result['date'][:10]}"
        rows += [[where, r["label"], f"{r['images_per_second']:,.0f} images/s"] for r in result["references"]]
        for c in result.get("chapters", []):
            done = f"{c['status']}, {c['cells_done']}/{c.get('cells', '?')} cells in {c.get('seconds', 0):.0f} s"
            rows.append([where, f"chapter {c['chapter']} ({c.get('mode', 'full')} mode)", done])
    return Table(header, rows or [[NOT_MEASURED, "", ""]])
