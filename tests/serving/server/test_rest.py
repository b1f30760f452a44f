"""The embedded server's REST API and metrics as a TF Serving REST client and scraper see them."""

import http.client
import json
import re
import socket
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.server import http as rest
from serving.server import json_tensor
from serving.server.metrics import ServerMetrics
from serving.testing import start_toy_server, toy_request

tf = tensorflow()
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

MODEL = contract.RECOMMEND_MODEL


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    handle = start_toy_server(tmp_path_factory.mktemp("rest"), enable_batching=True)
    yield handle
    handle.stop()


def _call(server, path, body=None, method=None):
    """(HTTP status, parsed JSON or raw text) of one REST call."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}{path}", data=data, method=method or ("POST" if data is not None else "GET"))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            code, text, content_type = response.status, response.read().decode(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        code, text, content_type = error.code, error.read().decode(), error.headers["Content-Type"]
    return code, (json.loads(text) if content_type == "application/json" and text else text)


def _json_values(array):
    """A request array as the JSON a REST client sends: nested lists, text for strings."""
    array = np.asarray(array)
    if array.ndim:
        return [_json_values(part) for part in array]
    item = array.item()
    return item.decode() if isinstance(item, bytes) else item


def _two_rows() -> dict[str, np.ndarray]:
    """The toy request twice, the second row asking for fewer items (so rows differ)."""
    arrays = {name: np.concatenate([array, array]) for name, array in toy_request(MODEL).items()}
    arrays[contract.K] = np.array([arrays[contract.K][0], 3], dtype=arrays[contract.K].dtype)
    return arrays


def _grpc_outputs(server, arrays) -> dict[str, list]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    for name, array in arrays.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    return {name: _json_values(tf.make_ndarray(proto)) for name, proto in response.outputs.items()}


def test_columnar_and_row_predict_answer_what_grpc_predict_answers(server):
    arrays = _two_rows()
    expected = _grpc_outputs(server, arrays)
    code, columnar = _call(server, f"/v1/models/{MODEL}:predict", {"inputs": {name: _json_values(a) for name, a in arrays.items()}})
    assert code == 200 and columnar == {"outputs": expected}
    instances = [{name: _json_values(array[row]) for name, array in arrays.items()} for row in range(2)]
    code, row = _call(server, f"/v1/models/{MODEL}:predict", {"signature_name": contract.SIGNATURES[MODEL], "instances": instances})
    assert code == 200
    assert row == {"predictions": [{name: values[index] for name, values in expected.items()} for index in range(2)]}
    # The shorter row is padded with "" ids and -inf scores, which JSON carries as -Infinity.
    assert row["predictions"][1][contract.SCORES][-1] == float("-inf")


def test_version_and_label_urls_reach_the_version_they_name(server):
    body = {"inputs": {name: _json_values(array) for name, array in toy_request(MODEL).items()}}
    answers = [_call(server, f"/v1/models/{MODEL}{spec}:predict", body) for spec in ("", "/versions/1", f"/labels/{contract.STABLE_LABEL}")]
    assert [code for code, _ in answers] == [200, 200, 200] and answers[0][1] == answers[1][1] == answers[2][1]
    for spec in ("", "/versions/1", f"/labels/{contract.STABLE_LABEL}"):
        code, status = _call(server, f"/v1/models/{MODEL}{spec}")
        assert code == 200
        assert status == {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


@pytest.mark.parametrize(
    "path, code, fragment",
    [
        ("/v1/models/nope:predict", 404, "'nope'"),
        (f"/v1/models/{MODEL}/versions/42:predict", 404, f"Servable not found for request: Specific({MODEL}, 42)"),
        ("/v1/models/nope", 404, "'nope'"),
        ("/v1/models/nope/metadata", 404, "'nope'"),
        (f"/v1/models/{MODEL}/versions/99999999999999999999:predict", 400, "Failed to convert version"),
        (f"/v1/models/{MODEL}:classify", 501, "classify is not implemented"),
    ],
)
def test_unknown_models_and_versions_answer_tf_serving_status_codes(server, path, code, fragment):
    answer = _call(server, path, {"inputs": {}} if ":" in path else None)
    assert answer[0] == code and fragment in answer[1]["error"]


def test_metadata_is_the_signature_defs_in_tf_serving_json(server):
    code, body = _call(server, f"/v1/models/{contract.RANKING_MODEL}/versions/1/metadata")
    assert code == 200
    assert body["model_spec"] == {"name": contract.RANKING_MODEL, "signature_name": "", "version": "1"}
    signature = body["metadata"]["signature_def"]["signature_def"][contract.SIGNATURES[contract.RANKING_MODEL]]
    assert {name: info["dtype"] for name, info in signature["inputs"].items()} == {
        name: dtype for name, (dtype, _) in contract.INPUTS[contract.RANKING_MODEL].items()
    }
    assert set(signature["outputs"]) == set(contract.OUTPUTS[contract.RANKING_MODEL])


def _columnar(**changes):
    inputs = {name: _json_values(array) for name, array in toy_request(MODEL).items()}
    inputs.update(changes)
    return {"inputs": {name: value for name, value in inputs.items() if value is not None}}


@pytest.mark.parametrize(
    "body, fragments",
    [
        (b"", ["JSON Parse error: The document is empty"]),
        (b'{"inputs": [1, 2', ["JSON Parse error", "at offset"]),
        (b"[1, 2]", ["Is not object"]),
        ({"signature_name": 7, "inputs": {}}, ["'signature_name' key must be a string value"]),
        ({"signature_name": "classify", "inputs": {}}, ['Serving signature name: "classify" not found']),
        ({"instances": 5}, ["Expecting 'instances' to be an list/array"]),
        ({"instances": [], "inputs": {}}, ["only one of 'inputs' or 'instances'"]),
        ({"outputs": {}}, ["Missing 'inputs' or 'instances' key"]),
        (_columnar(k=None), ["Missing named input: k in 'inputs' object."]),
        (_columnar(k=[5.5]), ["input: k", "is not of expected type: int32"]),
        (_columnar(session_item_ids=[["item-001"], ["item-002", "item-003"]]), ["input: session_item_ids", "unexpected size"]),
        (_columnar(session_item_ids=["item-001"]), ["input 'session_item_ids' has shape [1]"]),
        ({"instances": [{"k": 1.5}]}, ["element: 0 key: k", "not of expected type: int32"]),
        ({"instances": [[1]]}, ["instances is a plain list, but expecting list of objects"]),
        # Too deep for Python's parser, and too deep for a tensor (found by the fuzzing): 400, not a dropped connection.
        (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", ["nested deeper than 257 levels"]),
        (b'{"inputs": {"k": ' + b"[" * 300 + b"1" + b"]" * 300 + b"}}", ["nested deeper than 257 levels"]),
        (b'{"inputs": {"k": [' + b"1" * 5000 + b"]}}", ["JSON Parse error: Exceeds the limit (4300 digits)"]),
        (b'{"inputs": {"k": ' + b"[" * 250 + b"1" + b"]" * 250 + b"}}", ["Missing named input"]),
    ],
)
def test_malformed_requests_are_400_naming_what_is_wrong(server, body, fragments):
    code, answer = _call(server, f"/v1/models/{MODEL}:predict", body)
    assert code == 400
    for fragment in fragments:
        assert fragment in answer["error"]


def test_paths_outside_the_api_are_tf_serving_errors(server):
    assert _call(server, "/v1/foo") == (400, {"error": "Malformed request: GET /v1/foo"})
    assert _call(server, "/v1/models") == (400, {"error": "Missing model name in request."})
    assert _call(server, f"/v1/models/{MODEL}:predict", method="GET")[0] == 400
    assert _call(server, "/index.html")[0] == 404


def _tensor(array) -> dict:
    return tf.make_tensor_proto(array)


def test_answers_are_written_as_json_tensor_cc_writes_them():
    one = {"scores": _tensor(np.array([[0.2, 1.0], [np.nan, -np.inf]], np.float32))}
    assert json_tensor.predict_answer(one, json_tensor.ROW) == '{"predictions": [[0.2, 1.0], [NaN, -Infinity]]}'
    assert json_tensor.predict_answer(one, json_tensor.COLUMNAR) == '{"outputs": [[0.2, 1.0], [NaN, -Infinity]]}'
    two = {"ids_bytes": _tensor(np.array([b"\xff\x00"], object)), "k": _tensor(np.array([7], np.int64))}
    assert json.loads(json_tensor.predict_answer(two, json_tensor.ROW)) == {"predictions": [{"ids_bytes": {"b64": "/wA="}, "k": 7}]}
    assert json.loads(json_tensor.predict_answer(two, json_tensor.COLUMNAR)) == {"outputs": {"ids_bytes": [{"b64": "/wA="}], "k": [7]}}


def test_b64_strings_and_a_single_plain_input_are_read():
    request = predict_pb2.PredictRequest()
    body = json.dumps({"instances": [{"b64": "/wA="}, "x"]}).encode()
    assert json_tensor.fill_predict_request(body, lambda signature: {"only": tf.string.as_datatype_enum}, request) == json_tensor.ROW
    assert list(tf.make_ndarray(request.inputs["only"])) == [b"\xff\x00", b"x"]


def test_metrics_are_tf_servings_names_labels_and_microseconds(server):
    body = {"inputs": {name: _json_values(array) for name, array in toy_request(MODEL).items()}}
    for _ in range(3):
        assert _call(server, f"/v1/models/{MODEL}:predict", body)[0] == 200
    _grpc_outputs(server, toy_request(MODEL))
    assert _call(server, "/v1/models/nope-rest:predict", body)[0] == 404
    page = _call(server, "/monitoring/prometheus/metrics")[1]
    assert f':tensorflow:serving:request_count{{model_name="{MODEL}",status="OK"}}' in page
    assert ':tensorflow:serving:request_count{model_name="_unknown",status="NOT_FOUND"}' in page and "nope-rest" not in page
    assert "# TYPE :tensorflow:serving:request_latency histogram" in page
    # TF Serving's first latency bucket is 10 us and the next ones 10 * 1.8^i, printed with six digits.
    rest_bucket = f':tensorflow:serving:request_latency_bucket{{model_name="{MODEL}",API="predict",entrypoint="REST",le='
    assert f'{rest_bucket}"10"}}' in page and f'{rest_bucket}"188.957"}}' in page and f'{rest_bucket}"+Inf"}}' in page
    assert f':tensorflow:serving:request_latency_count{{model_name="{MODEL}",API="Predict",entrypoint="GRPC"}}' in page
    assert ':tensorflow:serving:batching_session:queuing_latency_count{thread_pool_name=""}' in page
    assert re.search(r"^:tensorflow:serving:batching_session:wrapped_run_count\{\} [1-9]", page, re.MULTILINE)
    runtime = f'{{model_name="{MODEL}",API="Predict",runtime="TF1"}}'
    total = float(re.search(rf"^:tensorflow:serving:runtime_latency_sum{re.escape(runtime)} (\S+)$", page, re.MULTILINE).group(1))
    count = int(re.search(rf"^:tensorflow:serving:runtime_latency_count{re.escape(runtime)} (\d+)$", page, re.MULTILINE).group(1))
    assert count >= 4 and 50 < total / count < 60e6  # microseconds: a toy Predict takes far more than 50 us


class _NoModels:
    """A manager serving nothing: enough for the HTTP framing tests, which need no model."""

    def model_names(self):
        return []


@pytest.fixture
def bare_http(monkeypatch):
    monkeypatch.setattr(rest, "SOCKET_TIMEOUT_S", 0.5)
    server = rest.start_http("127.0.0.1", 0, _NoModels(), ServerMetrics(), "/metrics", max_body_bytes=1024)
    yield server
    server.shutdown()
    server.server_close()


def test_oversized_bodies_are_refused_before_they_are_read(bare_http):
    connection = http.client.HTTPConnection("127.0.0.1", bare_http.server_port, timeout=10)
    connection.putrequest("POST", "/v1/models/any:predict")
    connection.putheader("Content-Length", str(10**9))
    connection.endheaders()  # and no body: the answer must not wait for it
    response = connection.getresponse()
    assert response.status == 413 and "1024 bytes" in json.loads(response.read())["error"]


@pytest.mark.parametrize(
    "chunks, code, fragment",
    [([b"x" * 1000, b"x" * 1000], 413, "1024 bytes"), ([b"not hex\r\n"], 400, "malformed chunked request body")],
)
def test_chunked_bodies_are_held_to_the_limit_and_must_be_well_formed(bare_http, chunks, code, fragment):
    connection = http.client.HTTPConnection("127.0.0.1", bare_http.server_port, timeout=10)
    connection.putrequest("POST", "/v1/models/any:predict")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    for chunk in chunks:
        connection.send(chunk if chunk.endswith(b"\r\n") else b"%x\r\n%s\r\n" % (len(chunk), chunk))
    response = connection.getresponse()
    assert response.status == code and fragment in json.loads(response.read())["error"]


def test_idle_connections_are_closed_after_the_socket_timeout(bare_http):
    with socket.create_connection(("127.0.0.1", bare_http.server_port), timeout=10) as idle:
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed by the server, not by our own timeout
        assert time.monotonic() - started < 5
