"""The server's endpoints on a real socket: native scores with every field, OpenRLHF's protocol, errors as
JSON 4xx, size limits, the bounded queue, timeouts, batching, metrics, draining on shutdown."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from helpers import FullRM

P = ["compute 2 + 3 .", [{"role": "user", "content": "what is the capital of japan ?"}]]
R = ["2 + 3 = 5 . answer 5 .", "the capital of japan is tokyo ."]


def test_native_endpoint_returns_every_field(serve):
    rm = FullRM()
    url = serve(rm)
    r = httpx.post(url + "/v1/score", json={"prompts": P, "responses": R, "meta": [{"task_id": "t1"}, None]})
    assert r.status_code == 200, r.text
    got = r.json()
    want = rm.score(P, R, meta=[{"task_id": "t1"}, None]).to_dict()
    assert got == want
    assert set(got) == {"reward", "members", "aspects", "uncertainty", "steps", "extras"}
    assert len(got["members"]) == 3 and got["extras"]["meta"] == [{"task_id": "t1"}, {}]
    assert got["steps"][0] == [10.0, 10.0]  # len("2 + 3 = 5 "), len(" answer 5 ")


def test_openrlhf_round_trip(serve):
    rm = FullRM()
    url = serve(rm, strip_suffix=["</s>", "<pad>"])
    prompts = ["compute 2 + 3 .", "how do i make a bomb ?"]
    responses = [" 2 + 3 = 5 . answer 5 .", " sorry , i can not help with that ."]
    queries = [p + r + "</s><pad><pad>" for p, r in zip(prompts, responses)]
    r = httpx.post(url + "/get_reward", json={"query": queries, "prompts": prompts, "labels": None})
    assert r.status_code == 200, r.text
    got, want = r.json(), rm.score(prompts, responses)
    assert got["rewards"] == got["scores"] == want.reward.tolist()
    logs = got["extra_logs"]
    assert sorted(logs) == ["aspect_length", "aspect_prompt", "member_0", "member_1", "member_2", "uncertainty"]
    for k in range(3):
        assert logs[f"member_{k}"] == want.members[k].tolist()
    assert logs["uncertainty"] == want.uncertainty.tolist()
    # labels reach the reward model as meta["label"] (FullRM subtracts 100 for a labelled response)
    labelled = httpx.post(url + "/get_reward", json={"query": queries, "prompts": prompts, "labels": ["5", "x"]})
    assert labelled.json()["rewards"] == (want.reward - 100).tolist()


@pytest.mark.parametrize("body, message", [
    ({"query": ["compute 1 + 1 . answer 2"]}, "'prompts' is required"),
    ({"query": ["abc"], "prompts": ["xyz"]}, "query[0] does not start with prompts[0]"),
    ({"query": ["abc", "abd"], "prompts": ["a"]}, "'query' has 2 entries but 'prompts' has 1"),
    ({"query": ["abc"], "prompts": ["a"], "labels": [1, 2]}, "'labels' has 2"),
])
def test_openrlhf_bad_requests(serve, body, message):
    r = httpx.post(serve(FullRM()) + "/get_reward", json=body)
    assert r.status_code == 422 and message in r.json()["error"]


@pytest.mark.parametrize("content, message", [
    (b"{not json", "invalid request"),
    (b'{"prompts": ["a"], "responses": []}', "one entry per response; got 1 prompts, 0 responses"),
    (b'{"prompts": ["a"], "responses": ["b"], "meta": [{}, {}]}', "2 meta"),
    (b'{"prompts": [1], "responses": ["b"]}', "prompts.0"),
    (b'{"prompts": [[{"role": "user"}]], "responses": ["b"]}', "content: Field required"),
    (b'{"prompts": ["a"], "responses": ["b"], "extra": 1}', "extra: Extra inputs are not permitted"),
    (b'[]', "invalid request"),
    (b'\xff\xfe', "invalid request"),
    (b'\xd0\xf4', "not UTF-8 JSON"),  # found by schemathesis (was a 400)
])
def test_malformed_requests_get_422_json(serve, content, message):
    r = httpx.post(serve(FullRM()) + "/v1/score", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]


def test_size_limits(serve):
    url = serve(FullRM(), max_request_items=4, max_queue=8, max_body_mb=0.01)
    r = httpx.post(url + "/v1/score", json={"prompts": ["p"] * 5, "responses": ["r"] * 5})
    assert r.status_code == 413 and "at most 4" in r.json()["error"]
    big = {"prompts": ["p"], "responses": ["x" * 20_000]}
    r = httpx.post(url + "/v1/score", json=big)  # refused by its Content-Length
    assert r.status_code == 413 and "over 10485 bytes" in r.json()["error"]

    def chunks():  # no Content-Length: refused while reading
        yield b'{"prompts": ["p"], "responses": ["'
        for _ in range(20):
            yield b"x" * 1000
        yield b'"]}'
    r = httpx.post(url + "/v1/score", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over 10485 bytes" in r.json()["error"]


class Gate(FullRM):
    """Blocks every model call until ``release`` is set."""

    def __init__(self):
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def score_batch(self, prompts, responses, meta):
        self.entered.set()
        assert self.release.wait(30)
        return super().score_batch(prompts, responses, meta)


def test_full_queue_answers_503_with_retry_after(serve):
    rm = Gate()
    url = serve(rm, max_queue=4, max_request_items=4, max_wait_ms=0)
    body = {"prompts": ["p"] * 4, "responses": ["a b"] * 4}
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.post, url + "/v1/score", json=body, timeout=30)
        assert rm.entered.wait(10)  # the first request is being scored; the queue is empty
        second = pool.submit(httpx.post, url + "/v1/score", json=body, timeout=30)
        for _ in range(500):  # the second request fills the queue
            if httpx.get(url + "/ready").json()["queued"] == 4:
                break
            threading.Event().wait(0.01)
        r = httpx.post(url + "/v1/score", json=body)
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
        assert "4 responses queued (limit 4)" in r.json()["error"]
        rm.release.set()
        assert first.result().status_code == second.result().status_code == 200
    assert httpx.post(url + "/v1/score", json=body).status_code == 200  # room again


def test_request_timeout_gives_504_and_drops_the_request(serve):
    rm = Gate()
    url = serve(rm, request_timeout=0.3, max_wait_ms=0)
    with ThreadPoolExecutor(1) as pool:
        blocking = pool.submit(httpx.post, url + "/v1/score", json={"prompts": ["p"], "responses": ["a"]}, timeout=30)
        assert rm.entered.wait(10)
        r = httpx.post(url + "/v1/score", json={"prompts": ["p"], "responses": ["queued"]})
        assert r.status_code == 504 and "within 0.3 s" in r.json()["error"]
        rm.release.set()
        assert blocking.result().status_code == 504  # timed out while being scored
    assert httpx.post(url + "/v1/score", json={"prompts": ["p"], "responses": ["b"]}).status_code == 200
    # the timed-out queued request was never scored: calls are the blocking one and the last one
    assert rm.calls == [1, 1]


def test_concurrent_requests_are_batched_and_a_bad_one_fails_alone(serve):
    rm = FullRM(delay=0.05, fail_on="BAD")
    url = serve(rm, max_batch_size=64, max_wait_ms=20)
    bodies = [{"prompts": ["p"], "responses": [f"w {i}" if i != 5 else "BAD"]} for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda b: httpx.post(url + "/v1/score", json=b, timeout=30), bodies))
    assert [a.status_code for a in answers] == [200] * 5 + [422] + [200] * 10
    assert "cannot score 'BAD'" in answers[5].json()["error"]
    assert [a.json()["reward"] for a in answers[:2]] == [rm.score(["p"], ["w 0"]).reward.tolist(),
                                                          rm.score(["p"], ["w 1"]).reward.tolist()]
    assert max(rm.calls) > 1  # requests were coalesced into one model call


def test_metrics_in_prometheus_format(serve):
    url = serve(FullRM())
    httpx.post(url + "/v1/score", json={"prompts": ["p", "q"], "responses": ["a", "b"]})
    httpx.post(url + "/v1/score", content=b"nope")
    text = httpx.get(url + "/metrics").text
    assert 'rewardgauge_requests_total{endpoint="/v1/score",status="200"} 1.0' in text
    assert 'rewardgauge_requests_total{endpoint="/v1/score",status="422"} 1.0' in text
    assert "rewardgauge_batch_size_sum 2.0" in text and "rewardgauge_batch_requests_count 1.0" in text
    assert "rewardgauge_queue_depth 0.0" in text and "rewardgauge_responses_scored_total 2.0" in text
    assert 'rewardgauge_request_latency_seconds_bucket{endpoint="/v1/score",le="+Inf"} 2.0' in text


def test_health_ready_and_schema(serve):
    url = serve(FullRM())
    assert httpx.get(url + "/health").json() == {"status": "alive"}
    assert httpx.get(url + "/ready").json() == {"status": "ready", "model": "full", "queued": 0}
    paths = httpx.get(url + "/openapi.json").json()["paths"]
    assert {"/v1/score", "/get_reward", "/health", "/ready", "/metrics"} <= set(paths)
    assert httpx.get(url + "/nowhere").json() == {"error": "Not Found"}


def test_shutdown_finishes_in_flight_requests():
    from helpers import running

    rm = FullRM(delay=0.5)
    with ThreadPoolExecutor(8) as pool, running(rm, max_batch_size=2, max_wait_ms=0) as url:
        futures = [pool.submit(httpx.post, url + "/v1/score", json={"prompts": ["p"], "responses": [f"r {i}"]},
                               timeout=30) for i in range(8)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until all 8 have arrived: being scored, scored, or queued
            queued = httpx.get(url + "/ready").json()["queued"]
            if queued + sum(rm.calls) == 8:
                break
            time.sleep(0.01)
    # leaving `running` asked the server to exit with requests still queued (4 model calls of 0.5 s each):
    # every one was answered
    assert queued > 0
    assert [f.result().status_code for f in futures] == [200] * 8
