"""Steady client load during a drill, recorded per request for the report's figures."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from serving import contract
from serving.client import RecommenderClient, ServingError
from serving.client.sessions import exclude_inputs, session_inputs


@dataclass(frozen=True)
class Sample:
    """One request: when it started and ended (monotonic s), which version answered, or its error."""

    start: float
    end: float
    version: int | None
    error: str = ""

    @property
    def latency(self) -> float:
        """Seconds the request took, retries and failover included."""
        return self.end - self.start


@dataclass(frozen=True)
class LoadSummary:
    """Figures over the samples that started in a time window."""

    requests: int
    failed: int
    p50_ms: float
    p99_ms: float
    versions: tuple[int, ...]
    errors: tuple[str, ...]


def summarize(samples: list[Sample], start: float = float("-inf"), end: float = float("inf")) -> LoadSummary:
    """Counts, failures, p50/p99 latency and versions seen for samples starting in [start, end)."""
    window = [sample for sample in samples if start <= sample.start < end]
    latencies = np.array([sample.latency for sample in window]) * 1000.0
    failures = [sample.error for sample in window if sample.error]
    return LoadSummary(
        requests=len(window),
        failed=len(failures),
        p50_ms=float(np.percentile(latencies, 50)) if len(window) else float("nan"),
        p99_ms=float(np.percentile(latencies, 99)) if len(window) else float("nan"),
        versions=tuple(sorted({sample.version for sample in window if sample.version is not None})),
        errors=tuple(sorted(set(failures)))[:5],
    )


def recommend_inputs(session: list, k: int, exclude: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The Predict inputs of a one-row ``recommend`` request (as the client's ``recommend`` builds)."""
    inputs = session_inputs([session], [None], [None])
    inputs[contract.K] = np.array([k], dtype=np.int32)
    inputs.update(exclude_inputs([list(exclude)]))
    return inputs


class LoadGenerator:
    """``workers`` threads calling ``recommend`` in a loop until :meth:`stop`.

    Every worker paces itself to ``rate_per_worker`` requests per second, so the load is
    steady rather than as fast as the machine allows (which would measure CPU contention).

    Usage::

        with RecommenderClient(targets) as client, LoadGenerator(client).running() as load:
            ...  # inject a fault
        summarize(load.samples, fault_start, fault_end)
    """

    def __init__(self, client: RecommenderClient, workers: int = 4, rate_per_worker: float = 25.0, k: int = 5,
                 session=("item-001", "item-002")):
        self.client = client
        self.workers = workers
        self.interval_s = 1.0 / rate_per_worker
        self._inputs = recommend_inputs(list(session), k)
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _work(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                result = self.client.predict(contract.RECOMMEND_MODEL, self._inputs)
                sample = Sample(start, time.monotonic(), result.version)
            except ServingError as error:
                sample = Sample(start, time.monotonic(), None, error.code.name)
            with self._lock:
                self.samples.append(sample)
            next_at = max(next_at + self.interval_s, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> LoadGenerator:
        """Starts the workers."""
        self._stop.clear()
        self._threads = [threading.Thread(target=self._work, name=f"drill-load-{i}", daemon=True) for i in range(self.workers)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stops the workers and waits for their last requests."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    @contextmanager
    def running(self):
        """Runs the load for the duration of the ``with`` block."""
        self.start()
        try:
            yield self
        finally:
            self.stop()
