"""A reward model with every Scores field, and a server in a thread, for the serving tests."""

from __future__ import annotations

import contextlib
import threading
import time

import torch

from rewardgauge.rewards.base import RewardModel, Scores
from rewardgauge.serve.config import ServeConfig
from rewardgauge.serve.server import serve_in_thread

TOKEN = "test-token-0123456789abcdef"


def _text(prompt) -> str:
    return prompt if isinstance(prompt, str) else " ".join(m["content"] for m in prompt)


class FullRM(RewardModel):
    """Deterministic scores with members [3, B], two aspects, uncertainty, per-sentence steps and an extra that
    echoes meta. The reward is the members' mean, minus 100 when meta['label'] is given (to see labels
    arrive). ``delay`` seconds per model call make batching observable; ``fail_on`` raises ValueError for a
    batch holding that response; every call's batch size is recorded in ``calls``."""

    name = "full"
    batch_size = None

    def __init__(self, delay: float = 0.0, fail_on: str | None = None):
        self.delay, self.fail_on = delay, fail_on
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def score_batch(self, prompts, responses, meta):
        with self._lock:
            self.calls.append(len(responses))
        if self.fail_on is not None and self.fail_on in responses:
            raise ValueError(f"cannot score {self.fail_on!r}")
        if self.delay:
            time.sleep(self.delay)
        words = torch.tensor([float(len(r.split())) for r in responses])
        chars = torch.tensor([float(len(_text(p))) for p in prompts])
        members = torch.stack([words, chars / 10, words - chars / 20])
        labelled = torch.tensor([100.0 if "label" in m else 0.0 for m in meta])
        return Scores(
            reward=members.mean(0) - labelled, members=members,
            aspects={"length": words, "prompt": chars}, uncertainty=members.std(0),
            steps=[torch.tensor([float(len(s)) for s in r.split(".") if s.strip()] or [0.0]) for r in responses],
            extras={"meta": [dict(m) for m in meta]})


@contextlib.contextmanager
def running(rm: RewardModel, token: str | None = None, **config):
    """The app for ``rm`` under uvicorn in a thread on an ephemeral loopback port; yields its URL; stops it."""
    with serve_in_thread(rm, ServeConfig(rm="test", **config), token) as url:
        yield url
