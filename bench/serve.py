"""Reward serving: throughput and latency of ``rewardgauge serve`` under N concurrent clients on loopback,
against scoring the same requests in-process, with and without dynamic batching.

The reward model is real: a Llama built from config (``--preset``, default the quickstart's ``tiny`` shape),
trained briefly on lab pairs with the soft-label loss, saved, and served from its folder by the real command
(``rewardgauge serve --rm FOLDER``) in its own process. Requests are lab prompts with ``--per-request``
responses each (1 = OpenRLHF's single-turn executor, which sends one query per request).

Sides, each timed over the same requests:
  inprocess   the requests scored in this process by the same model, in arrival order, a model call per
              ``--max-batch-size`` responses: the best a server could do with perfect batching and no HTTP
  batched     the server with dynamic batching (max batch ``--max-batch-size``, wait 5 ms), ``--clients``
              concurrent clients in a closed loop (each sends its next request when the last is answered)
  unbatched   the same server with ``--max-batch-size 1``: every request is its own model call
  inprocess1  the requests scored in this process one request per model call (one response with the default
              ``--per-request 1``): with ``inprocess`` it gives
              the model's own batching gain on this hardware (``batching_ceiling``), the most any server
              batching could add; ``batching_share_of_ceiling`` is how much of it the server reaches

The machine may be shared, so the sides take turns, ``--repeats`` times; each figure is the median over the
repeats and the per-repeat values are printed too. Served rewards are checked against in-process ones.

Prints one JSON line: served_vs_inprocess (batched / inprocess responses per second), batching_speedup
(batched / unbatched at ``--clients`` clients), p50_ms and p99_ms (batched request latency), the rest.
On an oversubscribed machine wall-clock rates mostly measure the CPU share each side happened to get, so the
same ratios are also given in CPU time (``*_cpu``: CPU seconds per response of the server process, against
this process's CPU seconds when it scores in-process; the clients' own CPU is not counted, as on a cluster
where they run elsewhere).

    .venv/bin/python bench/serve.py [--preset tiny] [--clients 32] [--requests 1024] [--per-request 1]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil  # accelerate's dependency
from _lab import lab_pairs_and_model  # bench/ is sys.path[0] when a benchmark runs


def train_rm(root: Path, preset: str, steps: int) -> Path:
    """A briefly trained reward model, by the real command in a child process (so that this process, which
    scores in-process, is as fresh as the server's)."""
    data = lab_pairs_and_model(root, pairs=max(64, steps * 16), preset=preset, seed=0)
    out = root / "rm"
    subprocess.run([sys.executable, "-m", "rewardgauge.cli", "rm", "train", "--model", str(root / "model"),
                    "--data", str(data), "--out", str(out), "--loss", "soft", "--max-steps", str(steps),
                    "--batch-size", "16", "--lr", "3e-4", "--save-every", "0", "--no-progress"],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return out


def make_requests(data: Path, n: int, per_request: int) -> list[dict]:
    from rewardgauge.data.io import load_pairs

    pairs = load_pairs(str(data))
    requests = []
    for i in range(n):
        pair = pairs[i % len(pairs)]
        responses = [pair.chosen if (i + j) % 2 == 0 else pair.rejected for j in range(per_request)]
        requests.append({"prompts": [pair.prompt] * per_request, "responses": responses})
    return requests


class Server:
    """``rewardgauge serve`` in a child process on a free loopback port; stopped with SIGTERM."""

    def __init__(self, rm: Path, threads: int, *extra: str):
        cmd = [sys.executable, "-m", "rewardgauge.cli", "serve", "--rm", str(rm), "--port", "0", *extra]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # torch's intra-op threads, as in-process
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stderr.readline()
        if " on http://" not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line}{self.proc.stderr.read()}")
        self.url = line.split(" on ")[1].split()[0]
        self.process = psutil.Process(self.proc.pid)

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (every thread)."""
        times = self.process.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def load(url: str, requests: list[dict], clients: int) -> tuple[float, list[float], list[list[float]]]:
    """Send every request with ``clients`` concurrent closed-loop clients, each a thread with its own keep-alive
    connection (http.client: about 0.2 ms of CPU per request, so on one machine the clients take little of the
    CPU the server needs). Returns (seconds, latencies, rewards)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    bodies = [json.dumps(r).encode() for r in requests]
    latencies: list[float] = [0.0] * len(requests)
    rewards: list[list[float]] = [[] for _ in requests]
    todo = iter(range(len(requests)))  # next() on a shared iterator is atomic under the GIL
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                t = time.perf_counter()
                conn.request("POST", "/v1/score", body=bodies[i], headers={"content-type": "application/json"})
                answer = conn.getresponse()
                data = answer.read()
                latencies[i] = time.perf_counter() - t
                if answer.status != 200:
                    raise RuntimeError(f"request {i}: {answer.status} {data[:200]!r}")
                rewards[i] = json.loads(data)["reward"]
        finally:
            conn.close()

    with ThreadPoolExecutor(clients) as pool:
        start = time.perf_counter()
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
        return time.perf_counter() - start, latencies, rewards


def server_counters(url: str) -> dict[str, float]:
    """The server's model-call counters from /metrics: calls, responses scored, seconds spent scoring."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    wanted = {"rewardgauge_batch_seconds_count": "calls", "rewardgauge_batch_size_sum": "responses",
              "rewardgauge_batch_seconds_sum": "seconds"}
    return {wanted[name]: float(value) for name, value in (line.split() for line in text.splitlines()
                                                          if line.split(" ")[0] in wanted)}


def in_process(rm, requests: list[dict], max_batch: int) -> tuple[float, float, list[list[float]]]:
    """Score the requests in arrival order, one model call per max_batch responses. Returns (seconds, CPU
    seconds of this process, rewards)."""
    chunks, chunk = [], []
    for i, req in enumerate(requests):
        if chunk and sum(len(requests[j]["responses"]) for j in chunk) + len(req["responses"]) > max_batch:
            chunks.append(chunk)
            chunk = []
        chunk.append(i)
    chunks.append(chunk)
    rewards: list[list[float]] = []
    start, cpu = time.perf_counter(), time.process_time()
    for chunk in chunks:
        scores = rm.score([p for j in chunk for p in requests[j]["prompts"]],
                          [r for j in chunk for r in requests[j]["responses"]])
        values = scores.reward.tolist()
        for j in chunk:
            n = len(requests[j]["responses"])
            rewards.append(values[:n])
            values = values[n:]
    return time.perf_counter() - start, time.process_time() - cpu, rewards


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny", help="Llama shape of the reward model (tiny: the quickstart's)")
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=1024)
    ap.add_argument("--per-request", type=int, default=1)
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the model, in-process and served "
                    "(1: on a shared 2-core machine a second OpenMP thread stalls whenever a core is taken)")
    args = ap.parse_args()

    import torch

    from rewardgauge.rewards.loading import load_reward_model

    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rm_dir = train_rm(root, args.preset, args.train_steps)
        requests = make_requests(root / "lab" / "train.jsonl", args.requests, args.per_request)
        n_responses = sum(len(r["responses"]) for r in requests)
        rm = load_reward_model(str(rm_dir), device="cpu", batch_size=args.max_batch_size)
        in_process(rm, requests[:64], args.max_batch_size)  # warm-up
        in_process(rm, requests[:64], 1)
        servers = {
            "batched": Server(rm_dir, args.threads, "--device", "cpu", "--max-batch-size", str(args.max_batch_size),
                              "--max-wait-ms", "5"),
            "unbatched": Server(rm_dir, args.threads, "--device", "cpu", "--max-batch-size", "1", "--max-wait-ms", "0",
                                "--max-request-items", str(args.per_request)),
        }
        rates: dict[str, list[float]] = {"inprocess": [], "inprocess1": [], "batched": [], "unbatched": []}
        # CPU seconds per response
        cpu: dict[str, list[float]] = {"inprocess": [], "inprocess1": [], "batched": [], "unbatched": []}
        latencies: dict[str, list[list[float]]] = {"batched": [], "unbatched": []}
        calls: dict[str, list[float]] = {"batched": [], "unbatched": []}  # model calls per repeat
        scoring: dict[str, list[float]] = {"batched": [], "unbatched": []}  # share of the wall time spent scoring
        worst_diff = 0.0
        try:
            for _ in range(args.repeats):
                seconds, cpu_seconds, expected = in_process(rm, requests, args.max_batch_size)
                rates["inprocess"].append(n_responses / seconds)
                cpu["inprocess"].append(cpu_seconds / n_responses)
                seconds, cpu_seconds, _ = in_process(rm, requests, 1)
                rates["inprocess1"].append(n_responses / seconds)
                cpu["inprocess1"].append(cpu_seconds / n_responses)
                for side, server in servers.items():
                    load(server.url, requests[:64], 8)  # warm-up: connections, first batches
                    before, cpu_before = server_counters(server.url), server.cpu_seconds()
                    seconds, lat, got = load(server.url, requests, args.clients)
                    after, cpu_after = server_counters(server.url), server.cpu_seconds()
                    cpu[side].append((cpu_after - cpu_before) / n_responses)
                    calls[side].append(after["calls"] - before["calls"])
                    scoring[side].append((after["seconds"] - before["seconds"]) / seconds)
                    rates[side].append(n_responses / seconds)
                    latencies[side].append(lat)
                    worst_diff = max(worst_diff, max(abs(a - b) for g, e in zip(got, expected) for a, b in zip(g, e)))
        finally:
            for server in servers.values():
                server.stop()

    served = [b / i for b, i in zip(rates["batched"], rates["inprocess"])]
    speedup = [b / u for b, u in zip(rates["batched"], rates["unbatched"])]
    served_cpu = [i / b for i, b in zip(cpu["inprocess"], cpu["batched"])]
    speedup_cpu = [u / b for u, b in zip(cpu["unbatched"], cpu["batched"])]
    ceiling = [i / i1 for i, i1 in zip(rates["inprocess"], rates["inprocess1"])]
    batched_lat = [x for rep in latencies["batched"] for x in rep]
    unbatched_lat = [x for rep in latencies["unbatched"] for x in rep]
    print(json.dumps({
        "served_vs_inprocess": round(statistics.median(served), 3),
        "batching_speedup": round(statistics.median(speedup), 2),
        "served_vs_inprocess_cpu": round(statistics.median(served_cpu), 3),
        "batching_speedup_cpu": round(statistics.median(speedup_cpu), 2),
        "batching_ceiling": round(statistics.median(ceiling), 2),
        "batching_share_of_ceiling": round(statistics.median(speedup) / statistics.median(ceiling), 3),
        "p50_ms": round(1000 * percentile(batched_lat, 0.5), 1),
        "p99_ms": round(1000 * percentile(batched_lat, 0.99), 1),
        "unbatched_p50_ms": round(1000 * percentile(unbatched_lat, 0.5), 1),
        "unbatched_p99_ms": round(1000 * percentile(unbatched_lat, 0.99), 1),
        "served_vs_inprocess_per_repeat": [round(x, 3) for x in served],
        "batching_speedup_per_repeat": [round(x, 2) for x in speedup],
        "responses_per_s": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "cpu_ms_per_response": {k: [round(1000 * x, 2) for x in v] for k, v in cpu.items()},
        "mean_batch_size": {k: round(n_responses / statistics.median(v), 1) for k, v in calls.items()},
        "server_scoring_share": {k: [round(x, 2) for x in v] for k, v in scoring.items()},
        "max_abs_reward_diff_served_vs_inprocess": worst_diff,
        "clients": args.clients, "requests": args.requests, "per_request": args.per_request,
        "max_batch_size": args.max_batch_size, "preset": args.preset, "repeats": args.repeats,
        "threads": args.threads, "cpus": os.cpu_count(),
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
