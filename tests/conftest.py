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


@pytest.fixture
def loopback_only(monkeypatch):
    """Every TCP connection this process opens during the test goes to a loopback address (the project's rule
    for test traffic): one to anywhere else raises at once and fails the test at teardown, even if the code
    under test swallowed the error. Yields the list of refused addresses."""
    import ipaddress
    import socket

    refused: list = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock, address) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return  # Unix sockets, socketpairs
        host = address[0]
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:  # a host name that was not resolved first
            loopback = False
        if not loopback:
            refused.append(address)
            raise AssertionError(f"test traffic to {address}: only loopback addresses are allowed")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield refused
    assert not refused, f"connections to non-loopback addresses: {refused}"
