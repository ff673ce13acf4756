"""benchmarks/gpu_check.py (the chapter runner, the summary writer) and sdkit.book.gpu_results (its table)."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import load_script

from sdkit.book import cost, gpu_results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    return load_script("gpu_check")


def test_a_missing_package_is_named_with_how_to_bring_it(gpu_check, capsys, monkeypatch):
    monkeypatch.setattr(gpu_check, "PACKAGES", {"json": "x", "no_such_module_here": "the chapters"})
    assert gpu_check.main(["packages"]) == 2
    err = capsys.readouterr().err
    assert "missing no_such_module_here (the chapters);" in err and "pip download" in err


def test_steps_record_their_status(gpu_check, tmp_path):
    for name, rc in (("tests", 0), ("peers", 124), ("headline", 1)):
        gpu_check.record_step(tmp_path, name, rc, 3.0)
    status = {p.stem: json.loads(p.read_text())["status"] for p in (tmp_path / "steps").glob("*.json")}
    assert status == {"tests": "ok", "peers": "timeout", "headline": "failed"}


def test_a_chapter_that_runs_too_long_reports_how_far_it_got(gpu_check, tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("import time; time.sleep(60)"),
                nbformat.v4.new_code_cell("y = 2")]  # fmt: skip
    path = tmp_path / "slow.ipynb"
    nbformat.write(nb, path)
    (record,) = gpu_check.run_chapters([path], tmp_path, "quick", cell_timeout=120, timeout=20)
    assert record["status"] == "timeout" and record["cells_done"] == 1 and record["cells"] == 3


def test_the_summary_holds_the_measured_runs_and_the_table_shows_them(gpu_check, tmp_path):
    headline = {
        "config": {"dataset": "digits", "train_size": None, "model": "mlp", "width": 1.0, "batch_size": 64},
        "generations": [{"generation": 0, "history": [{"seconds": 9.0}, {"seconds": 0.5}, {"seconds": 1.5}]}],
    }
    (tmp_path / "gpu_headline.json").write_text(json.dumps(headline))
    gpu_check.record_step(tmp_path, "headline", 0, 12.0)
    result = gpu_check.summarize(tmp_path, "bash benchmarks/gpu_check.sh --dry-run")
    n = cost.split_sizes("digits")[0]
    (ref,) = result["references"]
    assert ref["images_per_second"] == pytest.approx(2 * n / 2.0)  # the first epoch left out
    assert result["command"] == "bash benchmarks/gpu_check.sh --dry-run" and "gpu" in result["machine"]
    assert "| headline | ok | 12 |" in (tmp_path / "gpu_check.md").read_text()
    table = gpu_results.gpu_table(tmp_path)
    assert [row[1] for row in table.rows] == [ref["label"]]
    shutil.copy(cost.RESULTS / "gpu_reference.json", tmp_path)
    assert [p.name for p in cost.gpu_result_files(tmp_path)] == ["gpu_check.json"]


def test_without_a_check_the_table_says_not_measured_yet(tmp_path):
    shutil.copy(cost.RESULTS / "gpu_reference.json", tmp_path)  # the hand-reported reference is no measurement
    assert gpu_results.gpu_table(tmp_path).rows == [[gpu_results.NOT_MEASURED, "", ""]]
