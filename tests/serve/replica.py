"""A reward server process for the failover test: FullRM with a per-call delay, on a free loopback port.
Prints its URL on the first line of stderr, like ``rewardgauge serve``; a test kills it mid-load."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import uvicorn  # noqa: E402
from helpers import FullRM  # noqa: E402

from rewardgauge.serve.app import create_app  # noqa: E402
from rewardgauge.serve.config import ServeConfig  # noqa: E402
from rewardgauge.serve.server import bind, url_of  # noqa: E402

if __name__ == "__main__":
    sock = bind("127.0.0.1", 0)
    app = create_app(FullRM(delay=float(sys.argv[1])), ServeConfig(rm="replica", max_wait_ms=2))
    print(url_of(sock), file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="error")).run(sockets=[sock])
