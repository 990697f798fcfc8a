"""A reward model behind ``rewardgauge serve``, used like any other RewardModel.

``RemoteRewardModel("http://127.0.0.1:8000")`` (or ``load_reward_model("http://...")``) sends each batch to the
server's native endpoint and reads back every field of ``Scores`` (members, aspects, uncertainty, steps,
extras), so RL, ``rm eval``, the audit and the monitor see a served ensemble as they see a local one.

Several URLs (comma- or space-separated) are replicas of one reward model: requests go round-robin, and a replica that refuses the
connection, drops it, answers 502/503/504 or times out is skipped for the next one, with exponential backoff
(honouring ``Retry-After``) once every replica has been tried. Scoring is a pure function of its input, so
resending a request that a dying replica may have half-processed is safe: no request is lost on failover.
Any other 4xx is the request's own fault and is raised at once, with the server's message.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Sequence

import httpx

from rewardgauge.data.records import Prompt
from rewardgauge.rewards.base import Meta, RewardModel, Scores

SCORE_PATH = "/v1/score"
TOKEN_ENV = "REWARDGAUGE_TOKEN"  # the server's token, read by the server and by this client
RETRY_STATUS = (502, 503, 504)


class RemoteError(RuntimeError):
    """The reward server(s) could not score a request: every try failed, or the server rejected it."""


def parse_urls(spec: str | Sequence[str]) -> list[str]:
    """``"http://a:1,http://b:2"``, ``"http://a:1 http://b:2"`` or a list -> base URLs without a trailing slash.
    Spaces separate too because a comma already separates list items in some flags (``rl --reward.models``)."""
    parts = re.split(r"[,\s]+", spec) if isinstance(spec, str) else list(spec)
    urls = [u.strip().rstrip("/") for u in parts if u.strip()]
    bad = [u for u in urls if not u.startswith(("http://", "https://"))]
    if not urls or bad:
        raise ValueError(f"reward server URLs must start with http:// or https://, got {bad or spec!r}")
    return urls


class RemoteRewardModel(RewardModel):
    """Scores through one or more reward servers (replicas), with timeouts, retries and failover.

    urls:        one URL, a comma-separated list, or a list of replica URLs.
    token:       bearer token; default: the ``REWARDGAUGE_TOKEN`` environment variable, if set.
    timeout:     seconds to wait for one response (connecting gets at most 5 s).
    retries:     tries per batch beyond the first, across replicas; backoff doubles from ``backoff`` up to
                 ``max_backoff`` between full rounds over the replicas.
    batch_size:  responses per HTTP request.
    """

    name = "remote"

    def __init__(self, urls: str | Sequence[str], *, token: str | None = None, timeout: float = 60.0,
                 retries: int = 6, backoff: float = 0.1, max_backoff: float = 5.0, batch_size: int = 256):
        self.urls = parse_urls(urls)
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.batch_size = batch_size
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        # One pooled client shared by every thread (httpx.Client is thread-safe).
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                                  limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
        self._next = itertools.count()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteRewardModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> int:
        with self._lock:
            return next(self._next) % len(self.urls)

    def score_batch(self, prompts: list[Prompt], responses: list[str], meta: list[Meta]) -> Scores:
        body = {"prompts": prompts, "responses": responses}
        if any(meta):
            body["meta"] = [dict(m) for m in meta]
        data = self.post(SCORE_PATH, body)
        try:
            return Scores.from_dict(data)
        except ValueError as e:
            raise RemoteError(f"the reward server's answer is not Scores: {e}") from None

    def post(self, path: str, body: dict) -> dict:
        """POST ``body`` to ``path`` on a replica; retry on another replica (then with backoff) on connection
        errors, timeouts and 502/503/504. Returns the decoded JSON answer."""
        first = self._start()
        last_error = "no try made"
        delay, told_to_wait = self.backoff, 0.0
        for attempt in range(self.retries + 1):
            url = self.urls[(first + attempt) % len(self.urls)]
            try:
                r = self._http.post(url + path, json=body)
            except httpx.TransportError as e:  # refused, reset, timed out, dropped mid-response
                last_error = f"{url}: {type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    return r.json()
                message = _error_message(r)
                if r.status_code not in RETRY_STATUS:
                    raise RemoteError(f"{url}{path} answered {r.status_code}: {message}")
                last_error = f"{url} answered {r.status_code}: {message}"
                told_to_wait = max(told_to_wait, _retry_after(r))
            if attempt == self.retries:
                break
            if (attempt + 1) % len(self.urls) == 0:  # every replica tried once this round: back off
                time.sleep(min(max(delay, told_to_wait), self.max_backoff))
                delay, told_to_wait = min(delay * 2, self.max_backoff), 0.0
        raise RemoteError(f"reward server unavailable after {self.retries + 1} tries ({last_error})")


def _error_message(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error", r.text))
    except ValueError:
        return r.text[:200]


def _retry_after(r: httpx.Response) -> float:
    try:
        return max(0.0, float(r.headers.get("retry-after", 0)))
    except ValueError:
        return 0.0
