"""Fixtures shared by the test modules."""
import pytest
import torch


@pytest.fixture(scope='module')
def one_thread():
    """One intra-op thread: small models at batch 1-2 run fastest so on a shared 2-core CPU (two OpenMP
    threads can be ten times slower), and float64 runs are reproducible. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures('one_thread')``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
