"""The gRPC status codes a client branches on: a bad request, a missing model or version, a bad label.

Clients retry nothing but UNAVAILABLE and report INVALID_ARGUMENT as their caller's fault,
so the codes matter more than the messages (which differ between the servers; only the
contract's "naming k" is asserted on a message).
"""

from __future__ import annotations

import re

import grpc
import numpy as np
import pytest

from serving import contract
from serving.client import ServingError
from serving.contract.warmup import warmup_inputs

MODEL = contract.RECOMMEND_MODEL


def _failure(call) -> ServingError:
    with pytest.raises(ServingError) as caught:
        call()
    return caught.value


def _invalid_inputs(model: str, items: list[str]) -> dict[str, dict]:
    """Requests with one input missing, one extra, one of the wrong dtype."""
    valid = warmup_inputs(model, items)
    missing = {name: value for name, value in valid.items() if name != contract.QUERY}
    extra = {**valid, "bogus": np.array([1], dtype=np.int32)}
    wrong_dtype = {**valid, contract.SESSION_TIMESTAMPS: valid[contract.SESSION_TIMESTAMPS].astype(np.float32)}
    return {"missing input": missing, "extra input": extra, "wrong dtype": wrong_dtype}


@pytest.mark.parametrize("case", ["missing input", "extra input", "wrong dtype"])
@pytest.mark.parametrize("model", contract.MODELS)
def test_inputs_that_do_not_match_the_signature_are_invalid_argument(target, client, model, case):
    """predict_util.cc ``VerifyRequestInputsSize`` (missing/extra), the session run's dtype check (wrong dtype)."""
    error = _failure(lambda: client.predict(model, _invalid_inputs(model, target.item_ids)[case]))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT, error


@pytest.mark.parametrize("k", [0, -1, 2**31 - 1])
@pytest.mark.parametrize("model", [contract.RETRIEVAL_MODEL, contract.RECOMMEND_MODEL])
def test_k_out_of_range_is_invalid_argument_naming_k(target, client, model, k):
    """serving/contract/__init__.py: ``k`` outside 1..catalog size fails with INVALID_ARGUMENT naming ``k``."""
    inputs = {**warmup_inputs(model, target.item_ids), contract.K: np.array([k], dtype=np.int32)}
    error = _failure(lambda: client.predict(model, inputs))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT and re.search(r"\bk\b", error.details), error


@pytest.mark.parametrize("model", contract.MODELS)
def test_a_session_zero_columns_wide_is_invalid_argument(target, client, model):
    """serving/contract/__init__.py: rank-2 inputs are at least one column wide (batching_util.cc cannot pad an empty tensor)."""
    inputs = warmup_inputs(model, target.item_ids)
    for name in (contract.SESSION_ITEM_IDS, contract.SESSION_EVENT_TYPES, contract.SESSION_TIMESTAMPS):
        inputs[name] = inputs[name][:, :0]
    inputs[contract.SESSION_LENGTH] = np.zeros(1, dtype=np.int32)
    error = _failure(lambda: client.predict(model, inputs))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT, error


def test_an_unknown_model_is_not_found(target, client):
    """server_core.cc / manager: "Servable not found for request: Latest(...)" is NOT_FOUND."""
    error = _failure(lambda: client.predict("no-such-model", warmup_inputs(MODEL, target.item_ids)))
    assert error.code is grpc.StatusCode.NOT_FOUND, error


def test_an_unknown_version_is_not_found(target, client):
    """server_core.cc / manager: "Servable not found for request: Specific(name, v)" is NOT_FOUND."""
    unknown = max(status.version for status in client.status(MODEL)) + 1_000_000
    error = _failure(lambda: client.predict(MODEL, warmup_inputs(MODEL, target.item_ids), version=unknown))
    assert error.code is grpc.StatusCode.NOT_FOUND, error


def test_an_unknown_label_is_invalid_argument(target, client):
    """server_core.cc ``GetModelVersionForLabel``: INVALID_ARGUMENT "Unrecognized servable version label: L"."""
    error = _failure(lambda: client.predict(MODEL, warmup_inputs(MODEL, target.item_ids), label="no-such-label"))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT, error
