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
    return {"x": np.full((1, width), value, dtype=np.int64), "ids": np.array([[b"abc"[i : i + 1] for i in range(width)]], dtype=object)}


def test_concurrent_requests_run_as_few_batches_with_each_answer_its_own():
    model = FakeModel()
    batcher = Batcher(model, BatchingOptions(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1))
    results = _submit_all(batcher, [_request(value) for value in range(8)])
    batcher.close()
    assert [result["y"].tolist() for result in results] == [[[2 * value]] for value in range(8)]
    assert sum(model.batch_sizes) == 8 and len(model.batch_sizes) < 8


def test_padding_repeats_each_requests_first_element_as_tf_serving_does():
    # batching_util.cc PadTensor: "T pad_value(input.flat<T>()(0))", not zeros or "".
    merged = merge([_Task(_request(1, width=1)), _Task({"x": np.array([[5, 6, 7]]), "ids": np.array([[b"c", b"b", b"a"]], dtype=object)})], pad=True)
    assert merged["x"].tolist() == [[1, 1, 1], [5, 6, 7]]
    assert merged["ids"].tolist() == [[b"a", b"a", b"a"], [b"c", b"b", b"a"]]


def test_a_multi_row_request_is_padded_with_its_first_rows_first_element():
    two_rows = {"x": np.array([[3], [4]]), "ids": np.array([[b"p"], [b"q"]], dtype=object)}
    merged = merge([_Task(two_rows), _Task(_request(1, width=2))], pad=True)
    assert merged["x"].tolist() == [[3, 3], [4, 3], [1, 1]]
    assert merged["ids"].tolist() == [[b"p", b"p"], [b"q", b"p"], [b"a", b"b"]]


def test_batched_outputs_keep_the_batch_width_as_tf_serving_splits_on_dimension_0_only():
    model = FakeModel()
    batcher = Batcher(model, BatchingOptions(max_batch_size=2, batch_timeout_micros=500_000, num_batch_threads=1))
    narrow, wide = _submit_all(batcher, [_request(1, width=1), _request(2, width=3)])
    batcher.close()
    assert model.batch_sizes == [2]
    assert narrow["y"].tolist() == [[2, 2, 2]] and wide["y"].tolist() == [[4, 4, 4]]


def test_an_empty_tensor_fails_a_batch_of_non_empty_ones():
    batcher = Batcher(FakeModel(), BatchingOptions(max_batch_size=2, batch_timeout_micros=500_000, num_batch_threads=1))
    empty = {"x": np.zeros((1, 0), np.int64), "ids": np.zeros((1, 0), dtype=object)}
    results = _submit_all(batcher, [empty, _request(1, width=2)])
    batcher.close()
    for result in results:
        assert isinstance(result, RequestFailed) and result.code is grpc.StatusCode.INVALID_ARGUMENT
        assert result.message == "Got empty tensor in batch of non-empty tensors."


def test_without_padding_different_widths_fail_their_batch():
    model = FakeModel()
    options = BatchingOptions(max_batch_size=8, batch_timeout_micros=500_000, num_batch_threads=1, pad_variable_length_inputs=False)
    batcher = Batcher(model, options)
    results = _submit_all(batcher, [_request(1, width=1 + i % 2) for i in range(4)])
    batcher.close()
    assert model.batch_sizes == []
    for result in results:
        assert isinstance(result, RequestFailed) and result.code is grpc.StatusCode.FAILED_PRECONDITION
        assert "from different tasks have different shapes and padding is turned off" in result.message


def test_a_failing_batch_answers_every_request_in_it_with_the_error():
    # batching_session.cc ProcessBatch: one status for the whole batch, set on every task.
    model = FakeModel()
    batcher = Batcher(model, BatchingOptions(max_batch_size=4, batch_timeout_micros=500_000, num_batch_threads=1))
    results = _submit_all(batcher, [_request(1), _request(-1), _request(3), _request(4)])
    batcher.close()
    assert model.batch_sizes == [4]
    for result in results:
        assert isinstance(result, RequestFailed) and result.code is grpc.StatusCode.INVALID_ARGUMENT


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

    return Task("s", arrays, len(arrays["x"]))
