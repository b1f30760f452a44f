"""TF Serving's REST API on the target's REST port, as a REST client and an HTTP probe use it.

URLs, JSON bodies and status codes: tensorflow_serving/model_servers/http_rest_api_handler.cc,
http_rest_api_util.cc, http_server.cc and json_tensor.cc; documented in TF Serving's
docs/api_rest.md.
"""

from __future__ import annotations

import http.client
import json

import numpy as np
import pytest

from serving import contract
from serving.contract.warmup import warmup_inputs

MODEL = contract.RECOMMEND_MODEL


def call(address: str, method: str, path: str, body: bytes | None = None, chunked: bool = False) -> tuple[int, dict]:
    """(HTTP status, parsed JSON body) of one REST call; ``chunked`` sends the body in two chunks."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    if chunked:  # an iterable body without a Content-Length goes out as Transfer-Encoding: chunked
        body = iter([body[: len(body) // 2], body[len(body) // 2 :]])
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"} if body is not None else {})
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    try:
        return response.status, json.loads(text)
    except json.JSONDecodeError:
        pytest.fail(f"{method} {path} answered {response.status} with a body that is not JSON: {text[:200]!r}")


def _two_rows(model: str, items: list[str]) -> dict[str, np.ndarray]:
    """The warmup request twice, the second row asking for fewer items or other candidates."""
    arrays = {name: np.concatenate([array, array]) for name, array in warmup_inputs(model, items).items()}
    if contract.K in arrays:
        arrays[contract.K][1] = 3
    if contract.CANDIDATE_ITEM_IDS in arrays:
        arrays[contract.CANDIDATE_ITEM_IDS][1] = arrays[contract.CANDIDATE_ITEM_IDS][1][::-1]
    return arrays


def _assert_equal_outputs(rest: dict[str, list], grpc_outputs: dict[str, np.ndarray], what: str) -> None:
    assert set(rest) == set(grpc_outputs), what
    for name, expected in grpc_outputs.items():
        if expected.dtype == object:
            assert rest[name] == [[item.decode() for item in row] for row in expected.tolist()], f"{what}: {name}"
        else:  # JSON carries floats as decimal text (-inf as -Infinity)
            np.testing.assert_allclose(np.array(rest[name], dtype=np.float64), expected, rtol=1e-6, err_msg=f"{what}: {name}")


@pytest.mark.parametrize("model", contract.MODELS)
def test_columnar_and_row_predict_answer_what_grpc_answers(target, client, model):
    """docs/api_rest.md: ``inputs`` -> ``outputs`` (columnar), ``instances`` -> ``predictions`` (row), one object per row."""
    address = target.rest_address()
    arrays = _two_rows(model, target.item_ids)
    expected = client.predict(model, arrays).outputs
    columnar = {"inputs": {name: array.tolist() for name, array in arrays.items()}}
    code, answer = call(address, "POST", f"/v1/models/{model}:predict", json.dumps(columnar).encode())
    assert code == 200, answer
    _assert_equal_outputs(answer["outputs"], expected, "columnar")
    rows = {"signature_name": contract.SIGNATURES[model], "instances": [{name: np.asarray(array[row]).tolist() for name, array in arrays.items()}
                                                                       for row in range(2)]}
    code, answer = call(address, "POST", f"/v1/models/{model}:predict", json.dumps(rows).encode())
    assert code == 200, answer
    predictions = answer["predictions"]
    assert len(predictions) == 2
    _assert_equal_outputs({name: [row[name] for row in predictions] for name in predictions[0]}, expected, "row")


@pytest.mark.parametrize("model", contract.MODELS)
def test_metadata_lists_the_contract_signatures(target, model):
    """http_rest_api_handler.cc ProcessModelMetadataRequest: GetModelMetadataResponse as JSON (proto field names)."""
    code, answer = call(target.rest_address(), "GET", f"/v1/models/{model}/metadata")
    assert code == 200, answer
    assert answer["model_spec"]["name"] == model
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    for name in (contract.SIGNATURES[model], contract.DEFAULT_SIGNATURE):
        assert {i: info["dtype"] for i, info in signatures[name]["inputs"].items()} == {i: d for i, (d, _) in contract.INPUTS[model].items()}
        assert {o: info["dtype"] for o, info in signatures[name]["outputs"].items()} == contract.OUTPUTS[model]


@pytest.mark.parametrize("spec", ["", f"/labels/{contract.STABLE_LABEL}", "/labels/no-such-label"])
def test_status_lists_every_version_whatever_the_label(target, client, spec):
    """http_rest_api_handler.cc ProcessModelStatusRequest -> get_model_status_impl.cc, which reads only the version."""
    code, answer = call(target.rest_address(), "GET", f"/v1/models/{MODEL}{spec}")
    assert code == 200, answer
    states = {int(status["version"]): status["state"] for status in answer["model_version_status"]}
    assert states == {status.version: status.state for status in client.status(MODEL)}
    assert "AVAILABLE" in states.values()


def test_a_chunked_request_body_is_read_as_a_sized_one(target):
    """libevent's evhttp (under util/net_http/server) decodes ``Transfer-Encoding: chunked`` request bodies."""
    body = json.dumps({"inputs": {name: array.tolist() for name, array in warmup_inputs(MODEL, target.item_ids).items()}}).encode()
    sized = call(target.rest_address(), "POST", f"/v1/models/{MODEL}:predict", body)
    assert sized[0] == 200 and call(target.rest_address(), "POST", f"/v1/models/{MODEL}:predict", body, chunked=True) == sized


def test_malformed_json_is_400_with_an_error_field(target):
    """http_rest_api_handler.cc + json_tensor.cc: a JSON parse error is INVALID_ARGUMENT, 400 ``{"error": ...}``."""
    code, answer = call(target.rest_address(), "POST", f"/v1/models/{MODEL}:predict", b'{"inputs": {')
    assert code == 400 and isinstance(answer.get("error"), str) and answer["error"], answer


def test_an_unknown_model_is_404_with_an_error_field(target):
    """http_server.cc maps NOT_FOUND to 404."""
    code, answer = call(target.rest_address(), "GET", "/v1/models/no-such-model")
    assert code == 404 and answer.get("error"), answer


def test_an_unknown_label_is_400(target):
    """server_core.cc INVALID_ARGUMENT "Unrecognized servable version label", 400 by http_server.cc."""
    body = json.dumps({"inputs": {name: array.tolist() for name, array in warmup_inputs(MODEL, target.item_ids).items()}}).encode()
    code, answer = call(target.rest_address(), "POST", f"/v1/models/{MODEL}/labels/no-such-label:predict", body)
    assert code == 400 and answer.get("error"), answer
