"""Server-side batching: concurrent Predict requests to one version run as one call.

Semantics follow TF Serving's BatchingParameters: a batch closes when it holds
``max_batch_size`` rows or when its oldest request has waited ``batch_timeout_micros``;
``num_batch_threads`` batches run at once and at most ``max_enqueued_batches`` batches'
worth of rows may wait (more is RESOURCE_EXHAUSTED).

Merging and splitting are TF Serving's, because a client sees their effects
(tensorflow_serving/batching/batching_session.cc ``MergeInputTensors`` /
``SplitOutputTensors`` / ``ProcessBatch``, batching_util.cc ``PadTensor``):

* inputs are concatenated along dimension 0; with ``pad_variable_length_inputs`` each
  request's tensor is first padded to the batch's widest shape with *its own first
  element* (not ``""``/0: the contract's row lengths make that harmless); an empty tensor
  cannot be padded and fails the batch ("Got empty tensor in batch of non-empty tensors");
* without padding, tensors of different shapes in one batch fail it (FAILED_PRECONDITION);
* outputs are split along dimension 0 only, so a row keeps the batch's width;
* when the batched run fails, every request in the batch gets that error.
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
    enqueued: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: dict | None = None
    error: Exception | None = None


def pad_like_tf_serving(array: np.ndarray, shape: tuple) -> np.ndarray:
    """``array`` padded after each dimension past 0 to ``shape`` with its first element.

    >>> pad_like_tf_serving(np.array([["a", "b"]], dtype=object), (3,)).tolist()
    [['a', 'b', 'a']]
    >>> pad_like_tf_serving(np.array([[7], [8]]), (2,)).tolist()
    [[7, 7], [8, 7]]
    """
    if array.shape[1:] == tuple(shape):
        return array
    if array.size == 0:
        raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, "Got empty tensor in batch of non-empty tensors.")
    padded = np.full((array.shape[0], *shape), array.flat[0], dtype=array.dtype)
    padded[tuple(slice(0, size) for size in array.shape)] = array
    return padded


def merge(tasks: list[_Task], pad: bool) -> dict[str, np.ndarray]:
    """The tasks' inputs concatenated along dimension 0, padded to common other dimensions if ``pad``."""
    merged = {}
    for name in tasks[0].arrays:
        parts = [task.arrays[name] for task in tasks]
        if pad:
            shape = tuple(max(sizes) for sizes in zip(*(part.shape[1:] for part in parts)))
            parts = [pad_like_tf_serving(part, shape) for part in parts]
        elif any(part.shape[1:] != parts[0].shape[1:] for part in parts):
            raise RequestFailed(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Tensors with name '{name}' from different tasks have different shapes and padding is turned off. "
                "Set pad_variable_length_inputs to true, or ensure that all tensors with the same name have equal "
                "dimensions starting with the first dim.",
            )
        merged[name] = np.concatenate(parts, axis=0)
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
        # on_batch(rows, queue_waits_s): called as each batch leaves the queue, with each request's wait.
        self._on_batch = on_batch or (lambda rows, queue_waits_s: None)
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
        task = _Task(signature, arrays, rows.pop())
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
            # Idle workers are interchangeable: one wakes to decide (take a full batch or wait
            # for the timeout), and hands on to the next if it leaves tasks behind (_next_batch).
            self._cond.notify()
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
                compatible = [task for task in self._queue if task.signature == first.signature]
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
                    if self._queue:
                        self._cond.notify()
                    return batch
                self._cond.wait(remaining)

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            now = time.monotonic()
            self._on_batch(sum(task.rows for task in batch), [now - task.enqueued for task in batch])
            self._execute(batch)

    def _execute(self, batch: list[_Task]) -> None:
        try:
            if len(batch) == 1:  # nothing to merge: TF Serving runs a lone task's tensors as they are
                outputs = self._run(batch[0].signature, batch[0].arrays)
            else:
                outputs = self._run(batch[0].signature, merge(batch, self._options.pad_variable_length_inputs))
            total = sum(task.rows for task in batch)
            if not all(value.ndim and value.shape[0] == total for value in outputs.values()):
                raise RequestFailed(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "Batched output tensor's 0th dimension does not equal the sum of the 0th dimension sizes of the input tensors",
                )
        except Exception as error:  # noqa: BLE001 - TF Serving answers every request of a failed batch with its error
            for task in batch:
                task.error = error
                task.done.set()
            return
        offset = 0
        for task in batch:
            task.result = {name: value[offset : offset + task.rows] for name, value in outputs.items()}
            offset += task.rows
            task.done.set()

    def close(self) -> None:
        """Runs what is queued, then stops the worker threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
