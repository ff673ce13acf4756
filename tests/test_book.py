"""The book's publishing setup: the Colab cell at the top of every chapter, _config.yml, Binder's requirements,
and data loading where the Debian package is absent (Colab, Binder)."""

import ast
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml
from packaging.requirements import Requirement

import sdkit
import sdkit.data
import sdkit.datasets

ROOT = Path(__file__).resolve().parents[1]
REPO = "https://github.com/sdkit-book/self-distillation-executed"
DISTRIBUTION = "self-distillation-executed"  # the name on the package index; the import name is sdkit
COLAB_CELL = """\
# In Google Colab, install sdkit from the book's repository (elsewhere: nothing).
import sys

if "google.colab" in sys.modules:
    import subprocess

    REPO = "https://github.com/sdkit-book/self-distillation-executed"
    PACKAGE = f"self-distillation-executed @ git+{REPO}"  # it installs sdkit
    pip = [sys.executable, "-m", "pip", "install", "-q", PACKAGE]
    subprocess.run(pip, check=True)"""


def _toc_files(entries):
    for entry in entries:
        if "file" in entry:
            yield entry["file"]
        yield from _toc_files(entry.get("chapters", []) + entry.get("sections", []))
        for part in entry.get("parts", []):
            yield from _toc_files(part.get("chapters", []))


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"], *_toc_files(toc.get("chapters", []) + toc.get("parts", []))]


NOTEBOOKS = [f for f in toc_files() if (ROOT / f"{f}.ipynb").exists()]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def test_toc_lists_every_chapter_notebook():
    assert len(NOTEBOOKS) >= 8, NOTEBOOKS
    on_disk = {f"book/{p.stem}" for p in (ROOT / "book").glob("*.ipynb")}
    assert on_disk <= set(toc_files()), f"notebooks missing from _toc.yml: {sorted(on_disk - set(toc_files()))}"


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_chapter_starts_with_colab_install_cell(chapter):
    nb = nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{chapter} has no code cell"
    first = code[0]
    assert first.source == COLAB_CELL, f"{chapter}: the first code cell is not the Colab install cell:\n{first.source}"
    assert "remove-cell" in first.metadata.get("tags", []), f"{chapter}: tag the Colab cell 'remove-cell'"
    assert nb.cells.index(first) <= 1, f"{chapter}: the Colab cell must come right after the title cell"
    assert sum(c.source == COLAB_CELL for c in code) == 1, f"{chapter}: the Colab cell appears more than once"


def _run_colab_cell(monkeypatch, in_colab: bool) -> list:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append((a, k)))
    if in_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(COLAB_CELL, "colab_cell", "exec"), {})
    return calls


def test_colab_cell_does_nothing_outside_colab(monkeypatch):
    assert _run_colab_cell(monkeypatch, in_colab=False) == []


def test_colab_cell_pip_installs_sdkit_from_the_repository_in_colab(monkeypatch):
    calls = _run_colab_cell(monkeypatch, in_colab=True)
    assert len(calls) == 1
    (cmd,), kwargs = calls[0]
    assert cmd[:5] == [sys.executable, "-m", "pip", "install", "-q"]
    req = Requirement(cmd[5])  # a valid PEP 508 direct reference
    assert req.name == DISTRIBUTION and req.url == f"git+{REPO}"
    assert kwargs == {"check": True}


def test_repository_installs_under_its_own_distribution_name():
    # `pip install "self-distillation-executed @ git+REPO"` builds the repository root: the pyproject must name that
    # distribution (never "sdkit": on the package index that is an unrelated project) and ship the sdkit package
    # with its data files.
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'\nname = "{DISTRIBUTION}"\n' in pyproject and '\nname = "sdkit"' not in pyproject
    assert '[tool.setuptools.packages.find]\ninclude = ["sdkit*"]' in pyproject
    assert 'sdkit = ["_data/*/*"]' in pyproject
    readme = (ROOT / "README.md").read_text()
    assert f'pip install "{DISTRIBUTION} @ git+{REPO}"' in readme and "pip install .  " in readme


def test_config_repository_and_launch_buttons():
    assert CONFIG["repository"] == {"url": REPO, "path_to_book": "", "branch": "main"}
    buttons = CONFIG["launch_buttons"]
    assert buttons["colab_url"] == "https://colab.research.google.com"
    assert buttons["binderhub_url"] == "https://mybinder.org"
    assert CONFIG["html"]["use_repository_button"] is True


def test_config_fails_on_cell_errors_and_has_bibliography():
    assert CONFIG["execute"]["allow_errors"] is False
    assert CONFIG["execute"]["execute_notebooks"] in ("force", "auto", "cache")
    assert CONFIG["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    for bib in CONFIG["bibtex_bibfiles"]:
        assert (ROOT / bib).is_file(), bib
    assert "book/bibliography" in toc_files()


def test_config_api_reference_extensions():
    extensions = CONFIG["sphinx"]["extra_extensions"]
    assert {"sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon"} <= set(extensions)
    assert "book/api" in toc_files()


def test_binder_requirements_come_from_pypi():
    # Binder (repo2docker) runs `pip install -r requirements.txt` in a copy of the repository: every line must be
    # a PyPI requirement or the repository itself, with no index, file or machine-specific path.
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    assert "-e ." in lines
    names = set()
    for line in lines:
        if line == "-e .":
            continue
        assert not line.startswith("-"), f"requirements.txt: option {line!r} does not work the same on Binder"
        req = Requirement(line)
        assert req.url is None, f"requirements.txt: {line!r} points at a URL or a local path"
        names.add(req.name.lower())
    assert {"torch", "torchvision", "jupyter-book", "ipywidgets", "ipykernel"} <= names
    assert not (ROOT / "environment.yml").exists()  # repo2docker would prefer it over requirements.txt


# ------------------------------------------------------------------- data where Debian's package is absent


def _chapter_load_calls(chapter: str) -> list[ast.Call]:
    nb = nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4)
    calls = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        src = "\n".join(ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "load_dataset",
            ):
                calls.append(node)
    return calls


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_chapters_download_datasets_that_need_it(chapter):
    # On Colab and Binder there is no /usr/share/datasets/fashion-mnist: a chapter that loads anything but the
    # bundled digits passes download=True, so it reads local files when present and downloads them otherwise.
    for call in _chapter_load_calls(chapter):
        name = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else None
        if name == "digits":
            continue
        kw = {k.arg: k.value for k in call.keywords}
        assert "download" in kw and getattr(kw["download"], "value", None) is True, (
            f"{chapter}: load_dataset({name!r}, ...) at line {call.lineno} of its cell needs download=True so that "
            "it runs on Colab and Binder"
        )


def _write_idx(path: Path, array: np.ndarray) -> None:
    dims = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(dims + array.astype(np.uint8).tobytes())


def test_fashion_mnist_without_debian_files_downloads_only_when_asked(tmp_path, monkeypatch):
    # Colab: no Debian package, an empty cache. Without download=True: a clear error; with it: torchvision's
    # download (replaced here by a fake that writes small IDX files where torchvision puts them).
    monkeypatch.setattr(sdkit.datasets, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    monkeypatch.setenv("SDKIT_DATA", str(tmp_path / "cache"))
    downloads = []

    def fake_download(name, root):
        downloads.append((name, root))
        raw = root / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for prefix, n in (("train", 40), ("t10k", 10)):
            _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
            _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)

    monkeypatch.setattr(sdkit.datasets, "_torchvision_download", fake_download)
    with pytest.raises(FileNotFoundError, match="download=True"):
        sdkit.load_dataset("fashion-mnist")
    assert downloads == []
    data = sdkit.load_dataset("fashion-mnist", download=True)
    assert downloads == [("fashion-mnist", tmp_path / "cache")]
    assert (len(data.train) + len(data.val), len(data.test)) == (40, 10)
    assert data.class_names[0] == "T-shirt/top"
    sdkit.load_dataset("fashion-mnist", download=True)  # the second time reads the cached files
    assert len(downloads) == 1


def test_readme_links_the_published_book_workflow_and_launch_buttons():
    readme = (ROOT / "README.md").read_text()
    assert "(.github/workflows/book.yml)" in readme and (ROOT / ".github" / "workflows" / "book.yml").is_file()
    assert f"{REPO}/actions/workflows/book.yml" in readme
    assert "**Launch buttons.**" in readme and "Colab" in readme and "Binder" in readme
    assert CONFIG["repository"]["url"] == REPO and REPO in COLAB_CELL


MAX_CELL_LINES = 15


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_chapter_code_cells_are_at_most_15_lines(chapter):
    """A chapter cell is a few lines; helpers that only format or plot live in sdkit.book, tested."""
    nb = nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4)
    lengths = [len(c.source.splitlines()) for c in nb.cells if c.cell_type == "code"]
    too_long = {i: n for i, n in enumerate(lengths) if n > MAX_CELL_LINES}
    assert lengths and not too_long, f"{chapter}: code cells (index among code cells: lines) over 15: {too_long}"
