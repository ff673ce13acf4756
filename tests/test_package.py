"""The shape of the package: a small core that imports light, the book's code apart."""

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
    from sdkit.book.compare import summarize
    from sdkit.utils import run_mode

    assert sdkit.summarize is summarize and sdkit.run_mode is run_mode
    assert sdkit.Dataset is sdkit.Data
