import os

import pytest
import torch

import sdkit


@pytest.fixture(scope="session")
def digits() -> sdkit.Dataset:
    return sdkit.load_dataset("digits")


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Tests compare weights bit for bit; keep torch's intra-op thread count fixed within a test.
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


REQUIRE_FULL_DATA = "SDKIT_REQUIRE_FULL_DATA"


@pytest.fixture
def full_fashion_mnist_folder():
    """The folder of the full Fashion-MNIST (Debian's package). Absent: skip with how to get it, except when
    ``$SDKIT_REQUIRE_FULL_DATA=1`` (set by .ci/run), where a missing install step must fail loudly."""
    from sdkit.data import DEBIAN_FASHION_MNIST

    if (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        return DEBIAN_FASHION_MNIST
    message = (
        f"the full Fashion-MNIST is not installed at {DEBIAN_FASHION_MNIST}; to run this test: "
        "sudo apt-get install dataset-fashion-mnist"
    )
    if os.environ.get(REQUIRE_FULL_DATA) == "1":
        pytest.fail(f"{message} (${REQUIRE_FULL_DATA}=1 makes the full-data tests required)")
    pytest.skip(message)
