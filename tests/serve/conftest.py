import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import running  # noqa: E402


@pytest.fixture(autouse=True)
def _loopback(loopback_only):
    """Every serving test sends its requests to loopback only (tests/conftest.py checks each connection)."""
    yield loopback_only


@pytest.fixture
def serve():
    """``serve(rm, token=None, **config)`` -> base URL of a server on an ephemeral loopback port, stopped at the
    end of the test (a finaliser, even when the test fails)."""
    stack = []

    def start(rm, token=None, **config):
        ctx = running(rm, token=token, **config)
        url = ctx.__enter__()
        stack.append(ctx)
        return url

    yield start
    while stack:
        stack.pop().__exit__(None, None, None)
