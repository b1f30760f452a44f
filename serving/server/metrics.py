"""Prometheus metrics of the embedded server: requests, errors, latency, batch sizes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServerMetrics:
    """Per-server metrics in their own registry, so replicas in one process do not mix.

    Usage::

        metrics = ServerMetrics()
        metrics.observe("recommend", 3, "Predict", "OK", 0.004)
        metrics.exposition()  # Prometheus text format
    """

    def __init__(self):
        self.registry = CollectorRegistry()
        labels = ["model", "version", "method"]
        self.requests = Counter("tfserving_requests", "Requests answered", labels, registry=self.registry)
        self.errors = Counter("tfserving_errors", "Requests answered with an error", labels + ["code"], registry=self.registry)
        self.latency = Histogram(
            "tfserving_request_latency_seconds", "Time to answer a request", labels, buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.batch_size = Histogram(
            "tfserving_batch_size", "Rows per executed batch", ["model", "version"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry,
        )  # fmt: skip

    def observe(self, model: str, version: int | None, method: str, code: str, seconds: float) -> None:
        """Records one answered request (``version`` None when none was resolved)."""
        labels = (model, "" if version is None else str(version), method)
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)
        if code != "OK":
            self.errors.labels(*labels, code).inc()

    def batch_observer(self, model: str, version: int):
        """A callback recording executed batch sizes for one model version."""
        child = self.batch_size.labels(model, str(version))
        return child.observe

    def exposition(self) -> bytes:
        """All metrics in the Prometheus text exposition format."""
        return generate_latest(self.registry)
