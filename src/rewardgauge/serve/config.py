"""The reward server's settings: one dataclass, the flags of ``rewardgauge serve`` and its YAML keys."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ServeConfig:
    rm: str = field(metadata={"help": "reward model to serve: a reward-model folder, an ensemble folder, "
                                      "'lab-gold', or another server's URL"})
    host: str = field(default="127.0.0.1", metadata={
        "help": "address to listen on; anything but a loopback address needs a token"})
    port: int = field(default=8000, metadata={"help": "port (0: any free port; the address is printed)"})
    token_file: str | None = field(default=None, metadata={
        "help": "file holding the bearer token clients must send (default: the REWARDGAUGE_TOKEN variable)"})
    max_batch_size: int = field(default=64, metadata={"help": "most responses coalesced into one model call"})
    max_wait_ms: float = field(default=5.0, metadata={
        "help": "how long an idle server waits for more requests before scoring a partial batch"})
    max_queue: int = field(default=4096, metadata={
        "help": "most responses waiting; beyond it requests get 503 with Retry-After"})
    max_request_items: int = field(default=1024, metadata={"help": "most responses in one request (413 beyond)"})
    max_body_mb: float = field(default=16.0, metadata={"help": "largest request body in MiB (413 beyond)"})
    request_timeout: float = field(default=60.0, metadata={
        "help": "seconds a request may wait and be scored before it gets 504"})
    shutdown_timeout: float = field(default=30.0, metadata={
        "help": "on SIGTERM/SIGINT, seconds to finish in-flight requests before closing"})
    strip_suffix: list[str] = field(default_factory=list, metadata={
        "help": "OpenRLHF /get_reward: texts cut from the end of each response, e.g. the policy's "
                "end-of-sequence '<|im_end|>,</s>' (comma-separated)"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ... (default: cuda if available)"})
    aggregator: Literal["mean", "min", "mean_minus_std", "quantile"] | None = field(default=None, metadata={
        "help": "ensembles: aggregate of the members (default: the one saved in ensemble.json)"})
    lam: float | None = field(default=None, metadata={"help": "ensembles, mean_minus_std: weight of the std"})
    quantile: float | None = field(default=None, metadata={"help": "ensembles, quantile aggregator: q in [0, 1]"})

    def validate(self) -> None:
        for name in ("max_batch_size", "max_queue", "max_request_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_request_items > self.max_queue:
            raise ValueError("max_request_items must not exceed max_queue (such a request could never queue)")
        for name in ("max_wait_ms", "max_body_mb", "request_timeout", "shutdown_timeout"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a finite number >= 0")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be in 0..65535")
