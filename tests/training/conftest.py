"""Fixtures for the training tests."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    """One intra-op thread and a fixed seed: on the shared 2-core test machine threads contend badly, and
    every test starts from the same random state."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)
