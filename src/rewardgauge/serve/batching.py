"""Dynamic batching: concurrent requests are coalesced into one model call.

Requests wait in a bounded queue (counted in responses). One worker thread scores: a batch starts as soon as
the worker is free and holds the waiting requests in arrival order up to ``max_batch_size`` responses; when
fewer are waiting it waits up to ``max_wait`` for more. A request larger than ``max_batch_size`` is scored
alone (the reward model batches it internally). While the worker scores one batch the next fills up, so under
load batches grow without any wait.

Scoring runs off the event loop, in the worker thread, because models are CPU/GPU-bound; the event loop only
parses requests and writes answers. One thread, because one model on one device gains nothing from two
concurrent calls (its matrix products already use every core or the whole GPU).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rewardgauge.rewards.base import RewardModel


class QueueFull(Exception):
    """The queue holds too many responses; retry after ``retry_after`` seconds."""

    def __init__(self, queued: int, limit: int, retry_after: int):
        self.retry_after = retry_after
        super().__init__(f"server busy: {queued} responses queued (limit {limit}); retry after {retry_after} s")


class ShuttingDown(Exception):
    """The server is draining for shutdown and takes no new work."""


@dataclass
class _Job:
    prompts: list
    responses: list[str]
    meta: list | None
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)

    def __len__(self) -> int:
        return len(self.responses)


@dataclass
class BatchStats:
    """What one model call did, for metrics."""

    responses: int
    requests: int
    seconds: float


class Batcher:
    """Coalesces ``submit`` calls into ``rm.score`` calls on one worker thread.

    ``submit`` returns the request's ``Scores.to_dict()`` (computed in the worker thread, off the loop).
    ``on_batch(BatchStats)`` and ``on_queue(depth)`` report to metrics.
    """

    def __init__(self, rm: RewardModel, *, max_batch_size: int = 64, max_wait: float = 0.005, max_queue: int = 4096,
                 on_batch: Callable[[BatchStats], None] | None = None, on_queue: Callable[[int], None] | None = None):
        self.rm = rm
        self.max_batch_size, self.max_wait, self.max_queue = max_batch_size, max_wait, max_queue
        self._on_batch = on_batch or (lambda stats: None)
        self._on_queue = on_queue or (lambda depth: None)
        self._jobs: collections.deque[_Job] = collections.deque()
        self._queued = 0  # responses waiting (not yet taken into a batch)
        self._seconds_per_response = 0.0  # running estimate, for Retry-After
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardgauge-score")
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.closing = False

    @property
    def queued(self) -> int:
        return self._queued

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="rewardgauge-batcher")

    async def close(self) -> None:
        """Take no new work, finish every queued and running request, then stop the worker thread."""
        self.closing = True
        if self._task is not None:
            self._wakeup.set()
            await self._task
        self._worker.shutdown(wait=True)

    async def submit(self, prompts: list, responses: list[str], meta: list | None, timeout: float) -> dict[str, Any]:
        """Score one request; raises QueueFull, ShuttingDown or TimeoutError (the request is then dropped from
        the queue if it has not started)."""
        if self.closing:
            raise ShuttingDown("server is shutting down")
        n = len(responses)
        if self._queued + n > self.max_queue and self._queued > 0:
            raise QueueFull(self._queued, self.max_queue, self._retry_after())
        job = _Job(prompts, responses, meta, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._set_queued(self._queued + n)
        self._wakeup.set()
        # wait_for cancels the future on timeout; the loop skips cancelled jobs it has not started
        return await asyncio.wait_for(job.future, timeout)

    def _retry_after(self) -> int:
        """Seconds until the queue has drained at the recent scoring speed (at least 1)."""
        return max(1, math.ceil(self._queued * self._seconds_per_response))

    def _set_queued(self, n: int) -> None:
        self._queued = n
        self._on_queue(n)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._jobs:
                if self.closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._fill(loop)
            batch = self._take()
            if batch:
                await self._run(loop, batch)

    async def _fill(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait up to max_wait for a full batch (no wait once enough responses are queued)."""
        deadline = loop.time() + self.max_wait
        while self._queued < self.max_batch_size and not self.closing:
            left = deadline - loop.time()
            if left <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except asyncio.TimeoutError:  # noqa: UP041 (Python 3.10: not the builtin TimeoutError)
                return

    def _take(self) -> list[_Job]:
        """Jobs from the front of the queue up to max_batch_size responses (always at least one)."""
        batch: list[_Job] = []
        size = 0
        while self._jobs:
            job = self._jobs[0]
            if job.future.done():  # timed out or cancelled while waiting
                self._jobs.popleft()
                self._set_queued(self._queued - len(job))
                continue
            if batch and size + len(job) > self.max_batch_size:
                break
            self._jobs.popleft()
            self._set_queued(self._queued - len(job))
            batch.append(job)
            size += len(job)
        return batch

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Job]) -> None:
        start = time.perf_counter()
        results = await loop.run_in_executor(self._worker, self._score, batch)
        seconds = time.perf_counter() - start
        n = sum(len(j) for j in batch)
        if n:
            per = seconds / n
            self._seconds_per_response = per if not self._seconds_per_response else 0.8 * self._seconds_per_response + 0.2 * per
        self._on_batch(BatchStats(responses=n, requests=len(batch), seconds=seconds))
        for job, (ok, value) in zip(batch, results):
            if job.future.done():  # timed out while being scored
                continue
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)

    def _score(self, batch: list[_Job]) -> list[tuple[bool, Any]]:
        """In the worker thread: score the batch in one call and split it per request. If the call fails, score
        each request alone, so that one bad request fails only itself."""
        if len(batch) > 1:
            prompts = [p for j in batch for p in j.prompts]
            responses = [r for j in batch for r in j.responses]
            meta = None
            if any(j.meta is not None for j in batch):
                meta = [m for j in batch for m in (j.meta if j.meta is not None else [None] * len(j))]
            try:
                scores = self.rm.score(prompts, responses, meta=meta)
            except Exception:
                pass
            else:
                out, start = [], 0
                for j in batch:
                    out.append((True, scores.select(range(start, start + len(j))).to_dict()))
                    start += len(j)
                return out
        out = []
        for j in batch:
            try:
                out.append((True, self.rm.score(j.prompts, j.responses, meta=j.meta).to_dict()))
            except Exception as e:
                out.append((False, e))
        return out
