import pytest


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """See tests/train/conftest.py: one thread is faster and steadier for tiny models on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
