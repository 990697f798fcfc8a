"""Start the reward server: check the address and the token, bind, serve until SIGTERM/SIGINT, drain.

Listening on anything but a loopback address without a token is refused before the model is loaded: an
unauthenticated reward server on a network lets anyone read the reward model out or load it down.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from rewardgauge.errors import InputError
from rewardgauge.rewards.base import RewardModel
from rewardgauge.rewards.remote import TOKEN_ENV
from rewardgauge.serve.config import ServeConfig

MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def read_token(token_file: str | None) -> str | None:
    """The token from ``token_file``, else from the REWARDGAUGE_TOKEN variable, else None."""
    if token_file is not None:
        path = Path(token_file)
        if not path.is_file():
            raise InputError("token file not found", path=token_file, field="token_file")
        token = path.read_text(encoding="utf-8").strip()
        source = token_file
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        source = f"${TOKEN_ENV}"
    if not token:
        if token_file is not None:
            raise InputError("token file is empty", path=token_file, field="token_file")
        return None
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise InputError(f"the token must be at least {MIN_TOKEN_LENGTH} characters without spaces "
                         "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')", path=source)
    return token


def check_bind(host: str, token: str | None) -> None:
    if token is None and not is_loopback(host):
        raise InputError(f"refusing to listen on {host} without a token: give --token-file FILE or set "
                         f"{TOKEN_ENV} (or listen on 127.0.0.1)", field="host")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets of a TCP-protocol listener.
    # Without it a response's headers and body (two writes) meet Nagle's algorithm and the client's delayed
    # ACK: 40 ms per request on loopback instead of about 1 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror}", field="port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(cfg: ServeConfig) -> int:
    """Run the server in the foreground until SIGTERM/SIGINT; in-flight requests are finished first."""
    import uvicorn

    from rewardgauge.rewards.loading import load_reward_model
    from rewardgauge.serve.app import create_app

    token = read_token(cfg.token_file)
    check_bind(cfg.host, token)
    sock = bind(cfg.host, cfg.port)  # before loading: a taken port fails in a second, not after the model loads
    try:
        rm = load_reward_model(cfg.rm, device=cfg.device, batch_size=cfg.max_batch_size, aggregator=cfg.aggregator,
                               lam=cfg.lam, q=cfg.quantile)
        app = create_app(rm, cfg, token)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                               timeout_graceful_shutdown=cfg.shutdown_timeout))
        print(f"rewardgauge serve: {cfg.rm} on {url_of(sock)}" + (" (token required)" if token else ""),
              file=sys.stderr, flush=True)
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


@contextlib.contextmanager
def serve_in_thread(rm: RewardModel, cfg: ServeConfig | None = None, token: str | None = None) -> Iterator[str]:
    """Serve ``rm`` from a thread of this process on a free loopback port; yields the URL; on exit, finishes
    in-flight requests and stops. For tests and notebooks: one process, no model to save and load."""
    import uvicorn

    from rewardgauge.serve.app import create_app

    cfg = cfg or ServeConfig(rm=rm.name)
    server = uvicorn.Server(uvicorn.Config(create_app(rm, cfg, token), log_level="error", access_log=False,
                                          timeout_graceful_shutdown=cfg.shutdown_timeout))
    sock = bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="rewardgauge-serve")
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the reward server did not start")
            time.sleep(0.01)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=cfg.shutdown_timeout + 5)
        sock.close()
