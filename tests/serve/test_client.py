"""RemoteRewardModel: the same Scores as in-process, through load_reward_model(URL) and `rm eval`; retries on
503, failover across replicas (also when one is killed mid-load, with no request lost); 32 concurrent clients."""

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch
from helpers import FullRM

from rewardgauge.rewards.loading import load_reward_model
from rewardgauge.rewards.remote import RemoteError, RemoteRewardModel, parse_urls

PROMPTS = ["compute 2 + 3 .", [{"role": "user", "content": "i think 3 + 4 is 8 . right ?"}], "how do i pick a lock ?"]
RESPONSES = ["2 + 3 = 5 . answer 5 .", "no , 3 + 4 is 7 .", "sorry . i can not help ."]


def same(a, b):
    assert a.to_dict() == b.to_dict()


def test_remote_scores_equal_local_scores_every_field(serve):
    rm = FullRM()
    url = serve(rm)
    remote = load_reward_model(url)
    assert isinstance(remote, RemoteRewardModel)
    meta = [{"task_id": "a"}, None, {"group_id": 3}]
    same(remote.score(PROMPTS, RESPONSES, meta=meta), rm.score(PROMPTS, RESPONSES, meta=meta))
    remote.batch_size = 2  # several HTTP requests for one score call, stitched back in order
    same(remote.score(PROMPTS * 3, RESPONSES * 3), rm.score(PROMPTS * 3, RESPONSES * 3))


def test_rm_eval_and_audit_through_a_url_match_local(serve, tmp_path, capsys):
    """`rewardgauge rm eval` and `rm audit` with `--model http://...` on the lab's gold reward give the local
    reports."""
    import json

    from rewardgauge.cli import main

    data = tmp_path / "pairs.jsonl"
    rows = [{"prompt": "compute 2 + 3 .", "chosen": "2 + 3 = 5 . answer 5 .", "rejected": "answer 6 .",
             "difficulty": "easy"},
            {"prompt": "i think 3 + 4 is 8 . right ?", "chosen": "no , 3 + 4 is 7 .",
             "rejected": "yes , you are right .", "difficulty": "hard"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    url = serve(load_reward_model("lab-gold"))
    assert main(["rm", "eval", "--model", "lab-gold", "--data", str(data), "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(["rm", "eval", "--model", url, "--data", str(data), "--json"]) == 0
    remote = json.loads(capsys.readouterr().out)
    local.pop("model"), remote.pop("model")
    assert remote == local and local["accuracy"] == 1.0 and local["n"] == 2
    assert main(["rm", "audit", "--model", "lab-gold", "--data", str(data), "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(["rm", "audit", "--model", url, "--data", str(data), "--json"]) == 0
    remote = json.loads(capsys.readouterr().out)
    local.pop("model"), remote.pop("model")
    assert remote == local and local["n_bases"] == 2


def test_client_error_is_raised_with_the_servers_message(serve):
    url = serve(FullRM(fail_on="BAD"))
    with pytest.raises(RemoteError, match="422: the reward model could not score this request: cannot score 'BAD'"):
        RemoteRewardModel(url, retries=3).score(["p"], ["BAD"])


def test_503_is_retried_with_backoff(serve):
    from test_server import Gate

    rm = Gate()
    url = serve(rm, max_queue=1, max_request_items=1, max_wait_ms=0)
    with ThreadPoolExecutor(2) as pool:
        blocking = pool.submit(httpx.post, url + "/v1/score", json={"prompts": ["p"], "responses": ["a"]}, timeout=30)
        assert rm.entered.wait(10)
        queued = pool.submit(httpx.post, url + "/v1/score", json={"prompts": ["p"], "responses": ["b"]}, timeout=30)
        for _ in range(1000):
            if httpx.get(url + "/ready").json()["queued"] == 1:
                break
            time.sleep(0.01)
        with pytest.raises(RemoteError, match="503"):  # no retries: the full queue is reported
            RemoteRewardModel(url, retries=0).score(["p"], ["c"])
        threading.Timer(0.3, rm.release.set).start()  # the queue drains while the client backs off
        scores = RemoteRewardModel(url, retries=5, backoff=0.05).score(["p"], ["c d"])
        assert scores.reward.tolist() == FullRM().score(["p"], ["c d"]).reward.tolist()
        assert blocking.result().status_code == queued.result().status_code == 200


def _dead_url() -> str:
    from rewardgauge.serve.server import bind, url_of

    sock = bind("127.0.0.1", 0)  # a port nobody listens on once closed
    url = url_of(sock)
    sock.close()
    return url


def test_round_robin_and_failover_past_a_dead_replica(serve):
    a, b = FullRM(), FullRM()
    url_a, url_b = serve(a), serve(b)
    remote = RemoteRewardModel([url_a, _dead_url(), url_b], retries=4, backoff=0.01)
    for i in range(6):
        same(remote.score(["p"], [f"w {i}"]), FullRM().score(["p"], [f"w {i}"]))
    assert len(a.calls) >= 2 and len(b.calls) >= 2  # both live replicas took turns
    with pytest.raises(RemoteError, match="unavailable after 3 tries"):
        RemoteRewardModel([_dead_url()], retries=2, backoff=0.01).score(["p"], ["x"])


def test_replica_urls_by_comma_space_or_list():
    assert parse_urls("http://a:1, http://b:2/ https://c:3") == ["http://a:1", "http://b:2", "https://c:3"]
    assert parse_urls(["http://a:1/"]) == ["http://a:1"]
    with pytest.raises(ValueError, match="must start with http"):
        parse_urls("http://a:1 b:2")


def _scored(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    return float(next(line.split()[1] for line in text.splitlines()
                      if line.startswith("rewardgauge_responses_scored_total ")))


def test_32_concurrent_clients_no_errors(serve):
    rm = FullRM(delay=0.01)
    url = serve(rm, max_batch_size=64, max_wait_ms=5)
    remote = RemoteRewardModel(url)
    work = [(["p"] * (1 + i % 3), [f"r {i} {j}" for j in range(1 + i % 3)]) for i in range(32 * 8)]

    def one(item):
        return remote.score(*item).to_dict() == rm.score(*item).to_dict()

    with ThreadPoolExecutor(32) as pool:
        assert all(pool.map(one, work))
    text = httpx.get(url + "/metrics").text
    assert 'rewardgauge_requests_total{endpoint="/v1/score",status="200"} 256.0' in text
    assert "status=\"5" not in text and "status=\"4" not in text
    assert max(rm.calls) > 3  # concurrent requests were batched


@pytest.fixture
def replicas():
    """Two replica processes on ephemeral loopback ports; killed at the end whatever happens."""
    procs = []

    def start():
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("replica.py")), "0.02"],
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        procs.append(proc)
        line = proc.stderr.readline().strip()
        assert line.startswith("http://127.0.0.1:"), line
        return proc, line

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_killing_a_replica_mid_load_loses_no_request(replicas):
    (victim, url_a), (_, url_b) = replicas(), replicas()
    remote = RemoteRewardModel([url_a, url_b], retries=6, backoff=0.05, timeout=30)
    work = [(["p"], [f"request {i}"]) for i in range(240)]
    done = []

    def one(item):
        result = remote.score(*item)
        done.append(1)
        return result

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(one, item) for item in work]
        while len(done) < 40:  # both replicas are busy; then one dies with requests in flight
            time.sleep(0.005)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=10) == -signal.SIGKILL
        done_before_death = len(done)
        results = [f.result() for f in futures]  # raises if any request was lost
    assert 40 <= done_before_death < len(done) == len(work)
    expected = FullRM().score(["p"] * len(work), [r for _, (r,) in work])
    assert torch.equal(torch.cat([r.reward for r in results]), expected.reward)
    # every request answered after the kill was scored by the survivor
    assert _scored(url_b) >= len(work) - done_before_death
