"""The server's Prometheus metrics (text exposition format at ``/metrics``), one registry per app."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from rewardgauge.serve.batching import BatchStats

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """rewardgauge_requests_total{endpoint,status}, rewardgauge_request_latency_seconds{endpoint},
    rewardgauge_batch_size (responses per model call), rewardgauge_batch_requests (requests coalesced per model
    call), rewardgauge_batch_seconds, rewardgauge_responses_scored_total, rewardgauge_queue_depth."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("rewardgauge_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("rewardgauge_request_latency_seconds", "HTTP request latency by endpoint",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("rewardgauge_batch_size", "responses scored per model call",
                                    buckets=SIZE_BUCKETS, registry=r)
        self.batch_requests = Histogram("rewardgauge_batch_requests", "requests coalesced into one model call",
                                        buckets=SIZE_BUCKETS, registry=r)
        self.batch_seconds = Histogram("rewardgauge_batch_seconds", "seconds per model call",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.scored = Counter("rewardgauge_responses_scored", "responses scored", registry=r)
        self.queue_depth = Gauge("rewardgauge_queue_depth", "responses waiting to be scored", registry=r)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_batch(self, stats: BatchStats) -> None:
        self.batch_size.observe(stats.responses)
        self.batch_requests.observe(stats.requests)
        self.batch_seconds.observe(stats.seconds)
        self.scored.inc(stats.responses)

    def render(self) -> bytes:
        return generate_latest(self.registry)
