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
