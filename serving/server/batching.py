"""Server-side batching: concurrent Predict requests to one version run as one call.

Semantics follow TF Serving's BatchingParameters: a batch closes when it holds
``max_batch_size`` rows or when its oldest request has waited ``batch_timeout_micros``;
``num_batch_threads`` batches run at once and at most ``max_enqueued_batches`` batches'
worth of rows may wait (more is RESOURCE_EXHAUSTED). Requests are merged along dimension
0; inputs whose other dimensions differ only batch together when
``pad_variable_length_inputs`` is set (padding with "" / 0, which the contract ignores).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import grpc
import numpy as np

from serving.server.errors import RequestFailed


@dataclass(frozen=True)
class BatchingOptions:
    """TF Serving's batching parameters (the subset this server implements).

    ``validate()`` runs where options enter: :func:`serving.config_files.read_batching_options`.
    """

    # The production defaults: the generated TF Serving deployment (serving/deployment.py)
    # uses them too, so both servers batch alike unless told otherwise.
    max_batch_size: int = 64
    batch_timeout_micros: int = 2000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 4
    pad_variable_length_inputs: bool = True

    def validate(self) -> BatchingOptions:
        """Checks every field; returns ``self``."""
        from recsys_base.errors import ConfigError

        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"batching parameter {name} must be >= 1, got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ConfigError(f"batching parameter batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}")
        return self


@dataclass(eq=False)  # identity: the queue removes tasks, and arrays have no truth value
class _Task:
    signature: str
    arrays: dict[str, np.ndarray]
    rows: int
    shape_key: tuple
    enqueued: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: dict | None = None
    error: Exception | None = None


def _pad_to(array: np.ndarray, shape: tuple) -> np.ndarray:
    if array.shape[1:] == shape:
        return array
    widths = [(0, 0)] + [(0, target - size) for size, target in zip(array.shape[1:], shape)]
    fill = b"" if array.dtype == object else 0
    return np.pad(array, widths, mode="constant", constant_values=fill)


def merge(tasks: list[_Task]) -> dict[str, np.ndarray]:
    """The tasks' inputs concatenated along dimension 0, padded to common other dimensions."""
    merged = {}
    for name in tasks[0].arrays:
        parts = [task.arrays[name] for task in tasks]
        shape = tuple(max(sizes) for sizes in zip(*(part.shape[1:] for part in parts)))
        merged[name] = np.concatenate([_pad_to(part, shape) for part in parts], axis=0)
    return merged


class Batcher:
    """Queues requests for one servable and runs them in batches on worker threads.

    Usage::

        batcher = Batcher(servable.run, BatchingOptions(max_batch_size=16))
        outputs = batcher.submit("serving_default", arrays)  # blocks until its batch ran
        batcher.close()
    """

    def __init__(self, run, options: BatchingOptions, on_batch=None):
        self._run = run
        self._options = options
        self._on_batch = on_batch or (lambda size: None)
        self._queue: deque[_Task] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"batcher-{index}", daemon=True) for index in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, signature: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs ``arrays`` through ``signature`` as part of a batch; returns this request's rows."""
        rows = {array.shape[0] if array.ndim else None for array in arrays.values()}
        if len(rows) != 1 or None in rows:
            raise RequestFailed(
                grpc.StatusCode.INVALID_ARGUMENT,
                "with batching on, every input needs the same size in dimension 0; got "
                + ", ".join(f"{name}: {list(array.shape)}" for name, array in sorted(arrays.items())),
            )
        key = () if self._options.pad_variable_length_inputs else tuple(sorted((n, a.shape[1:]) for n, a in arrays.items()))
        task = _Task(signature, arrays, rows.pop(), (signature, key))
        with self._cond:
            if self._closed:
                return self._run(signature, arrays)
            waiting = sum(queued.rows for queued in self._queue)
            if waiting + task.rows > self._options.max_enqueued_batches * self._options.max_batch_size:
                raise RequestFailed(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"batching queue is full ({waiting} rows waiting, limit "
                    f"{self._options.max_enqueued_batches} batches of {self._options.max_batch_size})",
                )
            self._queue.append(task)
            self._cond.notify_all()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.result

    def _next_batch(self) -> list[_Task] | None:
        timeout_s = self._options.batch_timeout_micros / 1e6
        with self._cond:
            while True:
                if not self._queue:
                    if self._closed:
                        return None
                    self._cond.wait()
                    continue
                first = self._queue[0]
                compatible = [task for task in self._queue if task.shape_key == first.shape_key]
                remaining = first.enqueued + timeout_s - time.monotonic()
                if sum(task.rows for task in compatible) >= self._options.max_batch_size or remaining <= 0 or self._closed:
                    batch, rows = [], 0
                    for task in compatible:
                        if batch and rows + task.rows > self._options.max_batch_size:
                            break
                        batch.append(task)
                        rows += task.rows
                    for task in batch:
                        self._queue.remove(task)
                    return batch
                self._cond.wait(remaining)

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._on_batch(sum(task.rows for task in batch))
            self._execute(batch)

    def _execute(self, batch: list[_Task]) -> None:
        if len(batch) > 1:
            try:
                outputs = self._run(batch[0].signature, merge(batch))
            except Exception:  # noqa: BLE001 - one bad request must not fail its neighbours: rerun each alone
                outputs = None
            total = sum(task.rows for task in batch)
            if outputs is not None and all(value.ndim and value.shape[0] == total for value in outputs.values()):
                offset = 0
                for task in batch:
                    task.result = {name: value[offset : offset + task.rows] for name, value in outputs.items()}
                    offset += task.rows
                    task.done.set()
                return
        for task in batch:
            try:
                task.result = self._run(task.signature, task.arrays)
            except Exception as error:  # noqa: BLE001 - handed to the waiting request thread
                task.error = error
            task.done.set()

    def close(self) -> None:
        """Runs what is queued, then stops the worker threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
