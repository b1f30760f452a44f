"""The Batcher alone, with a recording fake model (no TensorFlow)."""

import threading

import grpc
import numpy as np
import pytest

from recsys_base.errors import ConfigError
from serving.server.batching import Batcher, BatchingOptions, merge
from serving.server.errors import RequestFailed


class FakeModel:
    """Echoes ``x`` doubled; records each call's batch size; fails on a negative value."""

    def __init__(self):
        self.batch_sizes = []
        self.lock = threading.Lock()

    def __call__(self, signature, arrays):
        with self.lock:
            self.batch_sizes.append(arrays["x"].shape[0])
        if (arrays["x"] < 0).any():
            raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, "x must be >= 0")
        return {"y": arrays["x"] * 2, "ids": arrays["ids"]}


def _submit_all(batcher, requests):
    results = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def run(index):
        barrier.wait()
        try:
            results[index] = batcher.submit("serving_default", requests[index])
        except RequestFailed as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _request(value, width=1):
    return {"x": np.full((1, width), value, dtype=np.int64), "ids": np.array([[b"a"] * width], dtype=object)}


def test_concurrent_requests_run_as_few_batches_with_each_answer_its_own():
    model = FakeModel()
    batcher = Batcher(model, BatchingOptions(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1))
    results = _submit_all(batcher, [_request(value) for value in range(8)])
    batcher.close()
    assert [result["y"].tolist() for result in results] == [[[2 * value]] for value in range(8)]
    assert sum(model.batch_sizes) == 8 and len(model.batch_sizes) < 8


def test_padding_merges_different_widths_and_keeps_rows_apart():
    merged = merge([_Task(_request(1, width=1)), _Task(_request(2, width=3))])
    assert merged["x"].tolist() == [[1, 0, 0], [2, 2, 2]]
    assert merged["ids"].tolist() == [[b"a", b"", b""], [b"a", b"a", b"a"]]


def test_without_padding_different_widths_are_never_merged():
    model = FakeModel()
    options = BatchingOptions(max_batch_size=8, batch_timeout_micros=100_000, num_batch_threads=1, pad_variable_length_inputs=False)
    batcher = Batcher(model, options)
    results = _submit_all(batcher, [_request(1, width=1 + i % 2) for i in range(6)])
    batcher.close()
    assert [result["y"].shape[1] for result in results] == [1 + i % 2 for i in range(6)]


def test_a_bad_request_fails_alone_and_its_batch_neighbours_succeed():
    model = FakeModel()
    batcher = Batcher(model, BatchingOptions(max_batch_size=4, batch_timeout_micros=200_000, num_batch_threads=1))
    results = _submit_all(batcher, [_request(1), _request(-1), _request(3), _request(4)])
    batcher.close()
    assert isinstance(results[1], RequestFailed) and results[1].code is grpc.StatusCode.INVALID_ARGUMENT
    assert [results[i]["y"].tolist() for i in (0, 2, 3)] == [[[2]], [[6]], [[8]]]


def test_a_full_queue_is_resource_exhausted():
    release = threading.Event()
    started = threading.Event()

    def slow(signature, arrays):
        started.set()
        release.wait()
        return {"y": arrays["x"]}

    batcher = Batcher(slow, BatchingOptions(max_batch_size=1, batch_timeout_micros=0, max_enqueued_batches=1, num_batch_threads=1))
    first = threading.Thread(target=batcher.submit, args=("s", _request(1)))
    first.start()
    started.wait()  # the worker is busy with the first request
    second = threading.Thread(target=batcher.submit, args=("s", _request(2)))
    second.start()
    while not batcher._queue:
        pass
    with pytest.raises(RequestFailed, match="batching queue is full") as caught:
        batcher.submit("s", _request(3))
    assert caught.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    release.set()
    first.join()
    second.join()
    batcher.close()


def test_inputs_with_different_batch_sizes_are_rejected_naming_them():
    batcher = Batcher(FakeModel(), BatchingOptions())
    with pytest.raises(RequestFailed, match=r"ids: \[2, 1\]"):
        batcher.submit("s", {"x": np.zeros((1, 1), np.int64), "ids": np.array([[b"a"], [b"b"]], dtype=object)})
    batcher.close()


def test_bad_batching_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="max_batch_size must be >= 1"):
        BatchingOptions(max_batch_size=0).validate()


def _Task(arrays):  # noqa: N802 - builds the private task type the merge step takes
    from serving.server.batching import _Task as Task

    return Task("s", arrays, 1, ())
