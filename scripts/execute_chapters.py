"""Execute chapters in place (quick mode) so that their stored outputs are the ones nbval checks.

    python scripts/execute_chapters.py                    # every chapter in book/
    python scripts/execute_chapters.py book/03_algorithm.ipynb

Each notebook runs in its own kernel with book/ as the working directory, as jupyter-book runs it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    paths = [Path(p).resolve() for p in sys.argv[1:]] or sorted((ROOT / "book").glob("*.ipynb"))
    os.environ.setdefault("SDKIT_MODE", "quick")
    os.environ.pop("MPLBACKEND", None)  # inline figures need matplotlib's notebook backend
    for path in paths:
        start = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        NotebookClient(
            nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()
        nbformat.write(nb, path)
        print(f"{path.relative_to(ROOT)}: {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
