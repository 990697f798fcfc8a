"""``rewardgauge serve``: an HTTP reward server (native, OpenRLHF) with dynamic batching and auth."""

from __future__ import annotations

import argparse

from rewardgauge.config import add_config_args, config_from_args
from rewardgauge.serve.config import ServeConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="serve a reward model over HTTP (native and OpenRLHF protocols)",
        description="Serve a reward model over HTTP: POST /v1/score returns every field of its scores (reward, "
                    "members, aspects, uncertainty, steps), POST /get_reward speaks OpenRLHF's remote reward "
                    "protocol; /health, /ready, /metrics (Prometheus), /openapi.json. Concurrent requests are "
                    "batched together. Listens on 127.0.0.1 unless given a token (--token-file or "
                    "REWARDGAUGE_TOKEN). Needs the serve extra: pip install 'rewardgauge[serve]'.")
    add_config_args(p, ServeConfig)
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from rewardgauge.serve.server import serve

    return serve(config_from_args(ServeConfig, args))
