"""Side-by-side benchmarks that take turns: each side trains in its own process (so its peak RSS is its own),
and a token passed round a ring of pipes lets only its holder run one step. Contention on a shared machine
then falls on every side alike. A step is timed from getting the token to the end of the step, so data
loading, logging and per-step bookkeeping count for every side. With a ``FlopCounter`` (``_flops.py``) the ring
also records the model FLOPs of each timed step.
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from _flops import FlopCounter


class Ring:
    """Turn-taking between processes: read a byte from our pipe to run, write one to the next to yield."""

    def __init__(self, read_fd: int, write_fd: int, ready_fd: int, steps: int, counter: FlopCounter | None = None):
        self.read_fd, self.write_fd, self.ready_fd, self.steps = read_fd, write_fd, ready_fd, steps
        self.counter = counter
        self.durations: list[float] = []
        self.flops: list[float] = []
        self.resumed: float | None = None
        self.flops_at_resume = 0.0

    def _flops_now(self) -> float:
        return self.counter.total if self.counter is not None else 0.0

    def _wait(self) -> None:
        os.read(self.read_fd, 1)
        self.resumed = time.perf_counter()
        self.flops_at_resume = self._flops_now()

    def step_done(self, step: int) -> None:
        now = time.perf_counter()
        if self.resumed is None:  # first step ran before the ring started: announce readiness, wait
            os.write(self.ready_fd, b"r")
        else:
            self.durations.append(now - self.resumed)
            self.flops.append(self._flops_now() - self.flops_at_resume)
            os.write(self.write_fd, b"t")
        self._wait()
        if step == self.steps:  # everyone has done its last step: let the next one finish too
            os.write(self.write_fd, b"t")

    def timed(self, warmup: int) -> list[float]:
        """Step times without the first ``warmup`` timed steps and the last one (which waits for no one)."""
        return self.durations[warmup:-1]

    def timed_flops_per_s(self, warmup: int) -> float:
        """Model FLOPs of the timed steps over their summed time."""
        return sum(self.flops[warmup:-1]) / sum(self.timed(warmup))


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def report(result: dict) -> None:
    """A side's last line on stdout: what ``run_sides`` collects."""
    print("RESULT " + json.dumps(result), flush=True)


def passthrough(args, skip: Sequence[str] = ("worker",)) -> list[str]:
    """The parent's options as flags for the side processes."""
    flags = []
    for key, value in vars(args).items():
        if key in skip or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        flags.append(flag if value is True else f"{flag}={value}")
    return flags


def run_sides(script: str, sides: Sequence[str], passthrough: Sequence[str], env: dict[str, str],
              worker_args: Sequence[str]) -> dict[str, dict]:
    """Start ``script --worker SIDE *worker_args READ WRITE READY`` for each side, wait until every side has
    run its first step, pass the token round until all are done; returns each side's RESULT."""
    pipes = [os.pipe() for _ in sides]
    ready_r, ready_w = os.pipe()
    procs = []
    for i, side in enumerate(sides):
        fds = [pipes[i][0], pipes[(i + 1) % len(sides)][1], ready_w]
        procs.append(subprocess.Popen(
            [sys.executable, script, *passthrough, "--worker", side, *worker_args, *map(str, fds)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=fds))
    for _ in sides:  # every side has loaded, prepared and run its first step
        if not os.read(ready_r, 1):
            break
    os.write(pipes[0][1], b"t")
    results = {}
    for side, proc in zip(sides, procs):
        out, err = proc.communicate()
        line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            for other in procs:
                other.kill()
            sys.exit(f"{side} failed:\n{err[-4000:]}")
        results[side] = json.loads(line[len("RESULT "):])
    return results


def median_seconds_in_turns(calls: Mapping[str, Callable[[], object]], repeats: int, seed: int = 0) -> dict[str, float]:
    """In one process: each call once as a warm-up, then ``repeats`` rounds in which every call runs once, in
    a shuffled order (load on a shared machine falls on all alike); each call's median seconds."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    rng = random.Random(seed)
    for _ in range(repeats):
        order = list(calls)
        rng.shuffle(order)
        for name in order:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
