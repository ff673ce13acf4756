import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import matplotlib
import pytest
import torch

import sdkit

matplotlib.use("Agg")  # the tests draw figures without a screen
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)


def load_script(name: str):
    """``benchmarks/NAME.py`` as a module: the benchmarks are scripts, not a package, and their tests call them."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def digits() -> sdkit.Data:
    return sdkit.load_dataset("digits")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Tests compare weights bit for bit; keep torch's intra-op thread count fixed within a test.
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


REQUIRE_FULL_DATA = "SDKIT_REQUIRE_FULL_DATA"
REQUIRE_PEERS = "SDKIT_REQUIRE_PEERS"


def skip_or_fail(message: str, required_by: str) -> NoReturn:
    """Skip with ``message`` (what is missing and how to get it), except when ``$required_by=1`` (set by .ci/run):
    there a missing install step must fail loudly instead of passing as a skip."""
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{message} (${required_by}=1 makes these tests required)")
    pytest.skip(message)


@pytest.fixture
def full_fashion_mnist_folder():
    """The folder of the full Fashion-MNIST (Debian's package), or skip/fail (``$SDKIT_REQUIRE_FULL_DATA``)."""
    from sdkit.datasets import DEBIAN_FASHION_MNIST

    if (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        return DEBIAN_FASHION_MNIST
    skip_or_fail(
        f"the full Fashion-MNIST is not installed at {DEBIAN_FASHION_MNIST}; to run this test: "
        "sudo apt-get install dataset-fashion-mnist",
        REQUIRE_FULL_DATA,
    )


@pytest.fixture
def torchdistill():
    """The peer library of benchmarks/peers.py, or skip/fail (``$SDKIT_REQUIRE_PEERS``)."""
    try:
        import torchdistill
    except ImportError:
        skip_or_fail('torchdistill is not installed; to run this test: pip install -e ".[peers]"', REQUIRE_PEERS)
    return torchdistill


@pytest.fixture
def run_benchmark(tmp_path):
    """Run ``benchmarks/SCRIPT`` with ``ARGS`` (a string) plus ``--out FILE`` in a subprocess; return its JSON
    result and what it printed."""

    def run(script: str, args: str) -> tuple[dict, str]:
        out = tmp_path / f"{Path(script).stem}.json"
        root = Path(__file__).resolve().parents[1]
        cmd = [sys.executable, str(root / "benchmarks" / script), *args.split(), "--out", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=root)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(out.read_text()), proc.stdout

    return run
