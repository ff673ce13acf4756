"""The progress bar of the book's live runs: one bar in place of one printed line per trained model."""

import io

import IPython.display
import pytest

from sdkit.book import progress
from sdkit.book.progress import RunProgress


class FakeDisplay:
    """Records what a Jupyter kernel would be sent: the first display and every update of the same output."""

    def __init__(self):
        self.shown: list[dict] = []
        self.updates: list[dict] = []

    def __call__(self, bundle, raw, display_id):
        assert raw is True and display_id is True  # an output that later updates replace, not new outputs
        self.shown.append(bundle)
        return self

    def update(self, bundle, raw):
        self.updates.append(bundle)


def test_terminal_bar_counts_the_runs_and_keeps_their_lines():
    out = io.StringIO()
    with RunProgress(3, "demo", notebook=False, file=out) as log:
        for seed in range(3):
            log(f"seed {seed}: acc 0.8{seed}")
    assert log.lines == ["seed 0: acc 0.80", "seed 1: acc 0.81", "seed 2: acc 0.82"] and log.count == 3
    final = out.getvalue().split("\r")[-1]
    assert final.startswith("demo: 100%") and "3/3" in final
    assert "seed 0" not in out.getvalue()  # the lines are kept, not printed


def test_notebook_bar_is_one_output_updated_in_place(monkeypatch):
    fake = FakeDisplay()
    monkeypatch.setattr(IPython.display, "display", fake)
    with RunProgress(2, "live runs", notebook=True) as log:
        log("a < b: first run")
        log("second run")
    assert len(fake.shown) == 1 and fake.updates  # one output, redrawn
    first, final = fake.shown[0], fake.updates[-1]
    assert "0/2" in first["text/plain"] and "0%" in first["text/plain"]
    assert final["text/plain"].startswith("live runs: 100%") and "2/2" in final["text/plain"]
    assert all(len(b["text/plain"]) <= progress.WIDTH for b in fake.shown + fake.updates)  # no sideways scrolling
    # HTML: the bar, then the runs' lines folded in a closed <details> block, escaped
    html = final["text/html"]
    assert html.startswith("<pre>live runs: 100%") and "<details><summary>log of the 2 runs</summary>" in html
    assert "a &lt; b: first run\nsecond run</pre></details>" in html and "<details open" not in html
    assert "<details>" not in first["text/html"]  # nothing to fold before the first run


def test_bar_follows_the_kernel_by_default(monkeypatch):
    assert progress.in_notebook() is False  # pytest is not a Jupyter kernel
    out = io.StringIO()
    log = RunProgress(1, "x", file=out)
    assert log.notebook is False
    log("done")
    log.close()
    assert "1/1" in out.getvalue()


@pytest.mark.parametrize("total", [0, -3, 2.5, True])
def test_bad_total_is_rejected(total):
    with pytest.raises(ValueError, match=rf"total must be a positive integer .* got total={total!r}"):
        RunProgress(total, "x", notebook=False, file=io.StringIO())
