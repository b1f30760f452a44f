"""The embedded server's Prometheus metrics, named, labelled and rendered as TF Serving's.

A dashboard or alert built on stock TensorFlow Serving must read the embedded server
unchanged, so the metric names, label names and values, units (microseconds), bucket
boundaries and even the text rendering (``le`` and sums with six significant digits, no
``# HELP`` lines, ``_sum{}`` for unlabelled histograms) are TF Serving's. The rendering is
done here rather than by ``prometheus_client``, which formats bucket bounds with full
precision (``le="188.9568"`` where TF Serving writes ``le="188.957"``) and adds
``_created`` series TF Serving does not have.

Where each behaviour is defined in TF Serving (paths under tensorflow_serving/ unless said):

- request_count, request_latency, runtime_latency (names, labels, buckets, microseconds): servables/tensorflow/util.cc
- gRPC: Predict/Classify/Regress counted, only successes timed, other calls not measured: model_servers/prediction_service_impl.cc
- REST: every call counted, ``API`` = the URL's method, ``entrypoint="REST"``: model_servers/http_server.cc
- runtime_latency timed around the session run, ``runtime="TF1"``: servables/tensorflow/predict_util.cc
- batching_session queuing_latency and wrapped_run_count: batching/batching_session.cc
- queuing_latency's ``thread_pool_name=""`` in the model server: servables/tensorflow/bundle_factory_util.cc
- input_batch_size (one sample per input tensor), processed_batch_size, padding_size: batching/batching_util.h
- ``/a/b`` -> ``:a:b``, ``# TYPE`` lines, ``_bucket``/``_sum``/``_count``, ``+Inf``, label escaping: util/prometheus_exporter.cc
- bounds scale * growth^i plus an overflow bucket: tensorflow's xla/tsl/lib/monitoring/sampler.cc
- a value equal to a bound counted in the bucket above it: tensorflow's xla/tsl/lib/histogram/histogram.cc

>>> counter = Counter("/tensorflow/serving/request_count", ("model_name", "status"))
>>> counter.increment("recommend", "OK")
>>> print("\\n".join(counter.lines()))
# TYPE :tensorflow:serving:request_count counter
:tensorflow:serving:request_count{model_name="recommend",status="OK"} 1
>>> sampler = Sampler("/tensorflow/serving/demo", (), exponential_buckets(1, 2, 2))
>>> sampler.add(value=2)
>>> print("\\n".join(sampler.lines()))
# TYPE :tensorflow:serving:demo histogram
:tensorflow:serving:demo_bucket{le="1"} 0
:tensorflow:serving:demo_bucket{le="2"} 0
:tensorflow:serving:demo_bucket{le="+Inf"} 1
:tensorflow:serving:demo_sum{} 2
:tensorflow:serving:demo_count{} 1
"""

from __future__ import annotations

import bisect
import re
import sys
import threading
import time

from serving.server.batching import Batcher, BatchingOptions

# A model name the server does not serve is recorded under this label: client-chosen
# names would otherwise give anyone an unbounded set of series (TF Serving records the
# raw name; this is the one deliberate difference).
UNKNOWN_MODEL_LABEL = "_unknown"
# TF Serving's values of the ``entrypoint`` and ``runtime`` labels.
GRPC = "GRPC"
REST = "REST"
RUNTIME = "TF1"  # the SavedModel session runtime of stock tensorflow_model_server (TFRT says "TFRT")


def exponential_buckets(scale: float, growth_factor: float, count: int) -> tuple[float, ...]:
    """TF's ``Buckets::Exponential``: ``count`` bounds scale * growth^i (multiplied up, as TF does)."""
    bounds, bound = [], float(scale)
    for _ in range(count):
        bounds.append(bound)
        bound *= growth_factor
    return tuple(bounds)


# Bucket layouts from the TF Serving sources named in the module docstring.
LATENCY_BUCKETS = exponential_buckets(10, 1.8, 33)  # request_latency, runtime_latency (~20 minutes)
QUEUING_BUCKETS = exponential_buckets(100, 1.2, 52)  # batching_session queuing_latency (~1 second)
BATCH_SIZE_BUCKETS = exponential_buckets(1, 2, 14)  # input/processed batch size, padding size


def _number(value: float) -> str:
    """``absl::StrCat(double)``: six significant digits, as TF Serving prints bounds and sums."""
    return f"{value:.6g}"


def _prometheus_name(name: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9_]", ":", name)
    return "_" + name if name[:1].isdigit() else name


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> list[str]:
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return [f'{re.sub("[^a-zA-Z0-9]", "_", name)}="{value}"' for name, value in zip(names, escaped)]


class Counter:
    """TF's ``monitoring::Counter``: an integer per label-value tuple."""

    def __init__(self, name: str, label_names: tuple[str, ...] = ()):
        self.name = name
        self.label_names = label_names
        self._cells: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    def increment(self, *labels: str) -> None:
        """Adds 1 to the cell of ``labels`` (one value per label name)."""
        with self._lock:
            self._cells[labels] = self._cells.get(labels, 0) + 1

    @property
    def observed(self) -> bool:
        return bool(self._cells)

    def lines(self) -> list[str]:
        """The ``# TYPE`` line and one line per cell, cells in label order."""
        name = _prometheus_name(self.name)
        with self._lock:
            cells = sorted(self._cells.items())
        return [f"# TYPE {name} counter"] + [f"{name}{{{','.join(_labels(self.label_names, labels))}}} {value}" for labels, value in cells]


class Sampler:
    """TF's ``monitoring::Sampler``: a histogram per label-value tuple over fixed bounds."""

    def __init__(self, name: str, label_names: tuple[str, ...], bounds: tuple[float, ...]):
        self.name = name
        self.label_names = label_names
        self.bounds = bounds + (sys.float_info.max,)  # TF appends DBL_MAX: the overflow bucket
        self._cells: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        self._lock = threading.Lock()

    def add(self, *labels: str, value: float) -> None:
        """Records ``value`` in the histogram of ``labels`` (one value per label name)."""
        # upper_bound, as TF's Histogram::Add: a value equal to a bound lands in the bucket above it.
        index = min(bisect.bisect_right(self.bounds, value), len(self.bounds) - 1)
        with self._lock:
            counts, total = self._cells.setdefault(labels, ([0] * len(self.bounds), [0.0]))
            counts[index] += 1
            total[0] += value

    @property
    def observed(self) -> bool:
        return bool(self._cells)

    def lines(self) -> list[str]:
        """The ``# TYPE`` line, then per cell its cumulative buckets, ``_sum`` and ``_count``."""
        name = _prometheus_name(self.name)
        with self._lock:
            cells = sorted((labels, (list(counts), total[0])) for labels, (counts, total) in self._cells.items())
        lines = [f"# TYPE {name} histogram"]
        for labels, (counts, total) in cells:
            rendered = _labels(self.label_names, labels)
            prefix = ",".join(rendered + [""])
            cumulative = 0
            for index, count in enumerate(counts):
                cumulative += count
                bound = _number(self.bounds[index]) if index < len(counts) - 1 else "+Inf"
                lines.append(f'{name}_bucket{{{prefix}le="{bound}"}} {cumulative}')
            lines.append(f"{name}_sum{{{','.join(rendered)}}} {_number(total)}")
            lines.append(f"{name}_count{{{','.join(rendered)}}} {cumulative}")
        return lines


def model_label(name: str, served: list[str]) -> str:
    """The ``model_name`` label value of a request for ``name`` ('' stays '': no name given)."""
    return name if not name or name in served else UNKNOWN_MODEL_LABEL


def micros_since(start: float) -> int:
    """Whole microseconds since ``start`` (a ``time.perf_counter()`` value): TF Serving's unit."""
    return int((time.perf_counter() - start) * 1e6)


class ServerMetrics:
    """One server's metrics (replicas in one process do not mix), exported as TF Serving does.

    Usage::

        metrics = ServerMetrics()
        metrics.request_count.increment("recommend", "OK")
        metrics.request_latency.add("recommend", "Predict", GRPC, value=850)
        metrics.exposition()  # Prometheus text, TF Serving's rendering
    """

    def __init__(self):
        # Defined statically in TF Serving, so present (as a ``# TYPE`` line) before any request.
        self.request_count = Counter("/tensorflow/serving/request_count", ("model_name", "status"))
        self.request_latency = Sampler("/tensorflow/serving/request_latency", ("model_name", "API", "entrypoint"), LATENCY_BUCKETS)
        self.runtime_latency = Sampler("/tensorflow/serving/runtime_latency", ("model_name", "API", "runtime"), LATENCY_BUCKETS)
        self.queuing_latency = Sampler("/tensorflow/serving/batching_session/queuing_latency", ("thread_pool_name",), QUEUING_BUCKETS)
        self.wrapped_run_count = Counter("/tensorflow/serving/batching_session/wrapped_run_count")
        # Created by TF Serving on first use (function-local statics), so exported only once batching ran.
        self.input_batch_size = Sampler("/tensorflow/serving/batching_session/input_batch_size", (), BATCH_SIZE_BUCKETS)
        self.processed_batch_size = Sampler("/tensorflow/serving/batching_session/processed_batch_size", (), BATCH_SIZE_BUCKETS)
        self.padding_size = Sampler("/tensorflow/serving/batching_session/padding_size", ("execution_batch_size",), BATCH_SIZE_BUCKETS)
        self._static = [self.request_count, self.request_latency, self.runtime_latency, self.queuing_latency, self.wrapped_run_count]
        self._on_first_use = [self.input_batch_size, self.processed_batch_size, self.padding_size]

    def exposition(self) -> bytes:
        """The metrics page: metrics ordered by TF name, as TF Serving's exporter walks them."""
        metrics = self._static + [metric for metric in self._on_first_use if metric.observed]
        lines = [line for metric in sorted(metrics, key=lambda metric: metric.name) for line in metric.lines()]
        return ("\n".join(lines) + "\n").encode()

    def batcher(self, run, options: BatchingOptions) -> Batcher:
        """A :class:`Batcher` over ``run`` that records TF Serving's batching_session metrics."""
        return _MeasuredBatcher(self, run, options)


class _MeasuredBatcher(Batcher):
    """Records where TF Serving's BatchingSession does: inputs on submit, batch sizes and
    queueing time when a batch is taken from the queue, and every run of the model."""

    # The model server creates its batching sessions with an empty thread pool name.
    THREAD_POOL_NAME = ""

    def __init__(self, metrics: ServerMetrics, run, options: BatchingOptions):
        self._metrics = metrics

        def counted_run(signature, arrays):
            try:
                return run(signature, arrays)
            finally:
                metrics.wrapped_run_count.increment()

        super().__init__(counted_run, options, on_batch=self._record_batch)

    def submit(self, signature, arrays):
        for array in arrays.values():  # one sample per input tensor, as ComputeInputSize records
            self._metrics.input_batch_size.add(value=array.shape[0] if array.ndim else 1)
        return super().submit(signature, arrays)

    def _record_batch(self, rows: int, queue_waits_s: list[float]) -> None:
        # No allowed_batch_sizes here, so a batch runs at its own size with no padding rows.
        self._metrics.processed_batch_size.add(value=rows)
        self._metrics.padding_size.add(str(rows), value=0)
        for wait_s in queue_waits_s:
            self._metrics.queuing_latency.add(self.THREAD_POOL_NAME, value=int(wait_s * 1e6))
