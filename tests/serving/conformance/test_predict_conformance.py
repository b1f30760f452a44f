"""Predict answers what the contract promises, alone and batched with other requests.

TF Serving's batching (``--enable_batching``) concatenates concurrent requests along
dimension 0, pads each request's tensors to the batch's widest shape with that tensor's
first element and splits the outputs along dimension 0 only
(tensorflow_serving/batching/batching_session.cc ``MergeInputTensors`` /
``SplitOutputTensors``, batching_util.cc ``PadTensor``). A client therefore relies on:
its own columns answer the same whoever shares its batch, and the columns past its own
``k`` (or candidates) are blanks it can drop (serving/contract/__init__.py).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from serving import contract
from serving.client.sessions import exclude_inputs, session_inputs
from serving.testing import TOY_ITEMS, expected_top_k

# A request is sent with three longer ones; a batch of them shows as outputs wider than the
# request asked for. Against a deployment (2 ms batch timeout) a few rounds may not batch.
ROUNDS = 10


def _requests(model: str, items: list[str]) -> list[dict[str, np.ndarray]]:
    """Four requests of growing session length, k, exclusions and candidates (1 or 2 rows each).

    Sessions revisit items, so padding with a row's first element would look like real
    events if a model read past ``session_length``.
    """
    requests = []
    for index in range(4):
        rows = 1 + index % 2
        sessions = [[(items[(row + step) % 5], contract.EVENT_TYPES[step % 3], 1_700_000_000 + 60 * step) for step in range(1 + 3 * index)]
                    for row in range(rows)]  # fmt: skip
        inputs = session_inputs(sessions, [f"user-{row}" for row in range(rows)], [""] * rows)
        model_inputs = contract.INPUTS[model]
        if contract.K in model_inputs:
            inputs[contract.K] = np.array([2 + 3 * index + row for row in range(rows)], dtype=np.int32)
        if contract.EXCLUDE_ITEM_IDS in model_inputs:
            inputs.update(exclude_inputs([items[row : row + 2 * index] for row in range(rows)]))
        if contract.CANDIDATE_ITEM_IDS in model_inputs:
            inputs[contract.CANDIDATE_ITEM_IDS] = np.array([items[row : row + 2 + 3 * index] for row in range(rows)], dtype=object)
        requests.append(inputs)
    return requests


def _own_width(model: str, request: dict[str, np.ndarray]) -> int:
    """The output columns ``request`` asked for: max k, or its candidate count."""
    if contract.K in request:
        return int(request[contract.K].max())
    return request[contract.CANDIDATE_ITEM_IDS].shape[1]


def _assert_same_on_own_columns(model: str, request, alone: dict, batched: dict, what: str) -> None:
    width = _own_width(model, request)
    assert set(batched) == set(contract.OUTPUTS[model]), f"{what}: outputs {sorted(batched)}"
    for name, expected in alone.items():
        assert expected.shape == (request[contract.SESSION_LENGTH].shape[0], width), f"{what}: {name} alone has shape {expected.shape}"
        got = batched[name][:, :width]
        if expected.dtype == object:
            assert got.tolist() == expected.tolist(), f"{what}: {name} differs on the request's own columns"
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=f"{what}: {name} differs on the request's own columns")
    if contract.K in request:  # past each row's own k: "" ids and -inf scores
        for row, k in enumerate(request[contract.K].tolist()):
            assert set(batched[contract.ITEM_IDS][row, k:].tolist()) <= {b""}, f"{what}: row {row} has ids past its k={k}"
            assert np.all(batched[contract.SCORES][row, k:] == -np.inf), f"{what}: row {row} has scores past its k={k}"


def _send_together(client, model: str, signature: str, requests: list) -> list[dict]:
    answers = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def send(index):
        barrier.wait()
        answers[index] = client.predict(model, requests[index], signature=signature).outputs

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    missing = [index for index, answer in enumerate(answers) if answer is None]
    assert not missing, f"requests {missing} failed when sent together (see the thread exceptions above)"
    return answers


@pytest.mark.parametrize("signature", ["named", contract.DEFAULT_SIGNATURE])
@pytest.mark.parametrize("model", contract.MODELS)
def test_a_request_answers_alike_alone_and_batched_with_longer_ones(target, client, model, signature):
    """batching_session.cc / batching_util.cc: padding and untrimmed outputs leave a request's own columns alone."""
    signature = contract.SIGNATURES[model] if signature == "named" else signature
    requests = _requests(model, target.item_ids)
    alone = [client.predict(model, request, signature=signature).outputs for request in requests]
    for index, (request, answer) in enumerate(zip(requests, alone)):
        _assert_same_on_own_columns(model, request, answer, answer, f"request {index} alone")
    batched_rounds = 0
    for _ in range(ROUNDS):
        together = _send_together(client, model, signature, requests)
        for index, (request, answer) in enumerate(zip(requests, together)):
            _assert_same_on_own_columns(model, request, alone[index], answer, f"request {index} sent together")
        # The first request is the narrowest: wider outputs mean it shared a batch.
        batched_rounds += together[0][next(iter(contract.OUTPUTS[model]))].shape[1] > _own_width(model, requests[0])
        if batched_rounds:
            break
    assert batched_rounds, f"in {ROUNDS} rounds the concurrent requests never shared a batch: is --enable_batching on?"


def test_recommend_answers_k_distinct_items_best_first_never_an_excluded_one(target, client):
    """serving/contract/__init__.py: ``k`` items per row, scores non-increasing, exclusions honoured;
    on the toy models also the exact answer (serving/testing.py's oracle)."""
    excluded = target.item_ids[:4]
    answer = client.recommend(target.item_ids[:3], k=7, exclude=excluded)
    items, scores = [item for item, _ in answer], [score for _, score in answer]
    assert len(items) == len(set(items)) == 7
    assert scores == sorted(scores, reverse=True)
    assert not set(items) & set(excluded)
    if target.toy:
        assert answer == expected_top_k(TOY_ITEMS, target.stable_version, 7, exclude=tuple(excluded))
