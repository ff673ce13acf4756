"""One progress bar for a live experiment, in place of one printed line per trained model.

The experiment drivers of the book (:func:`sdkit.book.experiments.run_applications`,
:func:`sdkit.book.regimes.run_cell`) report each finished model through a ``log`` callable, one line per model.
Printed, those lines make a wall of text in a chapter. :class:`RunProgress` is such a callable that counts the
lines on a tqdm bar instead and keeps them in :attr:`RunProgress.lines`::

    with RunProgress(ex.count_runs(cfg), "live runs") as log:
        result = ex.run_applications(cfg, log=log)

Where it draws. In a terminal it is ``tqdm.auto``'s bar on stderr. In a Jupyter kernel ``tqdm.auto`` would draw an
ipywidgets bar, which the published book cannot show (it loads no widget JavaScript, see ``_config.yml``) and
whose stored text form is the bar at 0%. So in a kernel the same tqdm bar is drawn as one display output that is
updated in place (``display_id``): Jupyter shows it moving, ``nbclient`` stores its final state, and the book
renders that as a line of text with the run log folded underneath.
"""

from __future__ import annotations

import html
import io
import sys
from typing import Any, TextIO

from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm as text_tqdm

__all__ = ["RunProgress", "in_notebook", "WIDTH"]

#: The widest line a chapter shows without scrolling sideways (book/ruff.toml's line length).
WIDTH = 88


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where outputs are display data), False in a terminal or a script."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class _DisplayBar(text_tqdm):
    """tqdm's text bar, drawn into one Jupyter display output that each refresh replaces (no widget)."""

    def __init__(self, *args: Any, owner: RunProgress, **kwargs: Any) -> None:
        self._owner, self._handle = owner, None
        # tqdm writes a final newline to its file on close; a private buffer keeps it out of the cell's stderr
        super().__init__(*args, file=io.StringIO(), ascii=False, ncols=WIDTH, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        from IPython import display as ipd  # only in a kernel, where IPython is present

        bundle = self._owner.bundle(str(self) if msg is None else msg)
        if self._handle is None:
            self._handle = ipd.display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        return True


class RunProgress:
    """A ``log`` callable for the book's experiment drivers: each call is one finished run.

    ``total`` is the number of runs the driver will log (``count_runs`` of its module), ``desc`` the bar's label.
    ``notebook`` forces the Jupyter form (True) or tqdm.auto's (False); by default it follows :func:`in_notebook`.
    ``file`` is where the terminal form writes (stderr by default). Use it as a context manager, or call
    :meth:`close`, so that the bar shows its final count and time.

    >>> log = RunProgress(2, "demo", notebook=False, file=io.StringIO())
    >>> log("seed 0: acc 0.81"); log("seed 1: acc 0.83")
    >>> log.close()
    >>> log.lines, log.count
    (['seed 0: acc 0.81', 'seed 1: acc 0.83'], 2)
    """

    def __init__(
        self, total: int, desc: str, *, unit: str = "run", notebook: bool | None = None, file: TextIO | None = None
    ) -> None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            raise ValueError(f"total must be a positive integer (the number of runs to count), got total={total!r}")
        self.desc = desc
        self.lines: list[str] = []
        self.notebook = in_notebook() if notebook is None else notebook
        options = {"total": total, "desc": desc, "unit": unit, "leave": True}
        if self.notebook:
            self.bar: text_tqdm = _DisplayBar(owner=self, **options)
        else:
            self.bar = auto_tqdm(file=file if file is not None else sys.stderr, **options)

    @property
    def count(self) -> int:
        """How many runs have been logged so far."""
        return len(self.lines)

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        self.bar.update(1)

    def bundle(self, bar_text: str) -> dict[str, str]:
        """What the Jupyter form displays for ``bar_text``: the bar as text, and as HTML with the runs' log lines
        folded in a ``<details>`` block (closed until clicked)."""
        folded = ""
        if self.lines:
            runs = html.escape("\n".join(self.lines))
            folded = f"<details><summary>log of the {self.count} runs</summary><pre>{runs}</pre></details>"
        return {"text/plain": bar_text, "text/html": f"<pre>{html.escape(bar_text)}</pre>{folded}"}

    def close(self) -> None:
        """Draw the final state of the bar (count, elapsed time, rate) and stop counting time."""
        self.bar.close()

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
