"""The shape of the package: a small core that imports light, the book's code apart."""

import ast
import subprocess
import sys

import sdkit


def test_import_sdkit_loads_neither_plotting_nor_scikit_learn():
    code = "import sys, sdkit; print(sorted(m for m in ('matplotlib', 'sklearn', 'scipy', 'pandas', 'sdkit.book', "
    code += "'sdkit.extras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_core_exposes_at_most_30_names_each_documented_with_an_example():
    assert len(sdkit.__all__) <= 30 and len(set(sdkit.__all__)) == len(sdkit.__all__)
    for name in sdkit.__all__:
        doc = getattr(sdkit, name).__doc__ or ""
        assert ">>>" in doc, name


def test_former_top_level_names_still_resolve_where_they_moved():
    from sdkit.utils import run_mode

    assert sdkit.run_mode is run_mode
    assert sdkit.Dataset is sdkit.Data


RUN_PATH = r"""
import importlib, inspect, os, pkgutil, sys
import sdkit
root = os.path.dirname(sdkit.__file__)
for info in pkgutil.iter_modules(sdkit.__path__, "sdkit."):  # import first: only calls made by the run count
    if info.name != "sdkit.__main__":
        importlib.import_module(info.name)
files = set()
def profile(frame, event, arg):
    code = frame.f_code  # functions and methods only (a class body or module body is not CO_OPTIMIZED)
    if event == "call" and code.co_filename.startswith(root) and code.co_flags & inspect.CO_OPTIMIZED:
        files.add(os.path.relpath(code.co_filename, root))
sys.setprofile(profile)
status = importlib.import_module("sdkit.cli").main(sys.argv[1:])
sys.setprofile(None)
print(status, sorted(files))
"""


def test_python_m_sdkit_run_follows_data_model_train_evaluate_through_at_most_8_files_of_at_most_400_lines(tmp_path):
    args = ["run", "--epochs", "1", "--generations", "1", "--train-size", "200", "--no-progress"]
    out = subprocess.run(
        [sys.executable, "-c", RUN_PATH, *args], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    status, files = out.stdout.strip().splitlines()[-1].split(" ", 1)
    files = ast.literal_eval(files)
    assert status == "0"
    assert {"cli.py", "datasets.py", "models.py", "train.py", "evaluate.py"} <= set(files), files
    assert len(files) <= 8, files
    root = __import__("pathlib").Path(sdkit.__file__).parent
    lengths = {f: len((root / f).read_text().splitlines()) for f in files}
    assert max(lengths.values()) <= 400, lengths


def test_no_module_of_sdkit_is_longer_than_400_lines():
    """The core, the extras and the book's support code alike: one job per module."""
    from pathlib import Path

    root = Path(sdkit.__file__).parent
    lengths = {str(p.relative_to(root)): len(p.read_text().splitlines()) for p in root.rglob("*.py")}
    assert {"train.py", "book/stats.py", "extras/compress.py"} <= set(lengths)  # every folder was read
    assert {name: n for name, n in lengths.items() if n > 400} == {}
