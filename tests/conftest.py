import pytest


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models gain nothing from a second intra-op thread, and on a shared 2-core machine two OpenMP
    threads stall each other whenever another process takes a core (measured: steps 2-10x slower, an
    ensemble fixture 15 s vs 430 s). Every test runs torch on one thread; restored at the end."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
