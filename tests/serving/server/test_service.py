"""The embedded server through TF Serving's official stubs: answers, errors, metrics."""

import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.testing import TOY_ITEMS, expected_top_k, start_toy_server, toy_request

tf = tensorflow()
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    handle = start_toy_server(tmp_path_factory.mktemp("service"), enable_batching=True, allow_config_reload=True)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def stubs(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)
    channel.close()


def _request(model=contract.RECOMMEND_MODEL, inputs=None, **spec):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    default_inputs = toy_request(model if model in contract.MODELS else contract.RECOMMEND_MODEL)
    for name, values in (default_inputs if inputs is None else inputs).items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    return request


def _fails(call, request, code, *fragments):
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10)
    assert caught.value.code() is code
    for fragment in fragments:
        assert fragment in caught.value.details()
    return caught.value.details()


def test_official_client_gets_the_models_answer(stubs):
    response = stubs[0].Predict(_request(signature_name="recommend"), timeout=10)
    assert (response.model_spec.name, response.model_spec.version.value, response.model_spec.signature_name) == ("recommend", 1, "recommend")
    ids = tf.make_ndarray(response.outputs[contract.ITEM_IDS])[0]
    assert [item.decode() for item in ids] == [item for item, _ in expected_top_k(TOY_ITEMS, 1, 10, ("item-000",))]


def test_output_filter_returns_only_the_named_outputs(stubs):
    request = _request()
    request.output_filter.append(contract.SCORES)
    assert set(stubs[0].Predict(request, timeout=10).outputs) == {contract.SCORES}
    request.output_filter.append("logits")
    _fails(stubs[0].Predict, request, grpc.StatusCode.INVALID_ARGUMENT, "'logits'")


def test_missing_and_extra_inputs_are_named(stubs):
    inputs = toy_request(contract.RECOMMEND_MODEL)
    del inputs[contract.K]
    inputs["colour"] = np.array(["red"], dtype=object)
    _fails(stubs[0].Predict, _request(inputs=inputs), grpc.StatusCode.INVALID_ARGUMENT, "missing input(s) ['k']", "unexpected input(s) ['colour']")


def test_wrong_dtype_and_rank_are_named(stubs):
    inputs = toy_request(contract.RECOMMEND_MODEL)
    inputs[contract.K] = np.array([5], dtype=np.int64)
    _fails(stubs[0].Predict, _request(inputs=inputs), grpc.StatusCode.INVALID_ARGUMENT, "input 'k' has dtype DT_INT64", "DT_INT32")
    inputs = toy_request(contract.RECOMMEND_MODEL)
    inputs[contract.SESSION_ITEM_IDS] = np.array(["item-001"], dtype=object)
    _fails(stubs[0].Predict, _request(inputs=inputs), grpc.StatusCode.INVALID_ARGUMENT, "input 'session_item_ids' has shape [1]")


def test_negative_and_huge_declared_shapes_are_refused_before_allocation(stubs):
    request = _request()
    request.inputs[contract.USER_ID].tensor_shape.dim[0].size = -1
    _fails(stubs[0].Predict, request, grpc.StatusCode.INVALID_ARGUMENT, "input 'user_id' has a negative dimension")
    request = _request()
    compact = request.inputs[contract.SESSION_TIMESTAMPS]
    compact.ClearField("tensor_content")
    compact.int64_val.append(7)  # one value fills the declared shape
    compact.tensor_shape.dim[1].size = 10**9
    _fails(stubs[0].Predict, request, grpc.StatusCode.RESOURCE_EXHAUSTED,
           "input 'session_timestamps' declares shape [1, 1000000000] (1000000000 elements); this server decodes at most 1048576")
    # The 252-byte request: one string filling a declared [1, 4000000] session.
    request = _request()
    compact = request.inputs[contract.SESSION_ITEM_IDS]
    del compact.string_val[1:]
    compact.tensor_shape.dim[1].size = 4_000_000
    _fails(stubs[0].Predict, request, grpc.StatusCode.RESOURCE_EXHAUSTED, "input 'session_item_ids' declares shape [1, 4000000]")


def test_model_errors_keep_their_code_and_message(stubs):
    inputs = toy_request(contract.RECOMMEND_MODEL)
    inputs[contract.K] = np.array([51], dtype=np.int32)  # past the catalog: only the model knows its size
    details = _fails(stubs[0].Predict, _request(inputs=inputs), grpc.StatusCode.INVALID_ARGUMENT, "k must be in 1..50")
    assert "\n" not in details


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"model": "nope"}, "model 'nope' is not served"),
        ({"version": 42}, "Servable not found for request: Specific(recommend, 42)"),
        ({"signature_name": "classify"}, "signature 'classify' not found"),
    ],
)
def test_unknown_models_versions_and_signatures_are_not_found(stubs, spec, fragment):
    _fails(stubs[0].Predict, _request(**spec), grpc.StatusCode.NOT_FOUND, fragment)


def test_an_unknown_label_is_an_invalid_argument_as_in_tf_serving(stubs):
    # server_core.cc, GetModelVersionForLabel: the label map is consulted before the model.
    for model in (contract.RECOMMEND_MODEL, "nope"):
        _fails(stubs[0].Predict, _request(model=model, version_label="canary"), grpc.StatusCode.INVALID_ARGUMENT,
               "Unrecognized servable version label: canary")


def test_classify_regress_and_multi_inference_are_unimplemented(stubs):
    prediction = stubs[0]
    _fails(prediction.Classify, classification_pb2.ClassificationRequest(), grpc.StatusCode.UNIMPLEMENTED, "Classify is not implemented", "Predict")
    _fails(prediction.Regress, regression_pb2.RegressionRequest(), grpc.StatusCode.UNIMPLEMENTED, "Regress is not implemented")
    _fails(prediction.MultiInference, inference_pb2.MultiInferenceRequest(), grpc.StatusCode.UNIMPLEMENTED, "MultiInference")


def test_metadata_returns_the_saved_signature_defs(stubs):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = contract.RANKING_MODEL
    response = stubs[0].GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    rank = signatures.signature_def[contract.SIGNATURES[contract.RANKING_MODEL]]
    assert set(rank.inputs) == set(contract.INPUTS[contract.RANKING_MODEL])
    assert set(rank.outputs) == set(contract.OUTPUTS[contract.RANKING_MODEL])
    request.metadata_field[:] = ["graph"]
    _fails(stubs[0].GetModelMetadata, request, grpc.StatusCode.INVALID_ARGUMENT, "metadata_field")


def test_status_reports_available_versions_and_label_lookups(stubs):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = contract.RECOMMEND_MODEL
    request.model_spec.version_label = contract.STABLE_LABEL
    response = stubs[1].GetModelStatus(request, timeout=10)
    assert [(s.version, s.state) for s in response.model_version_status] == [(1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]


def test_reload_config_rejects_paths_outside_the_model_base(stubs):
    request = model_management_pb2.ReloadConfigRequest(config=model_server_config_pb2.ModelServerConfig())
    request.config.model_config_list.config.add(name="evil", base_path="../../etc", model_platform="tensorflow")
    _fails(stubs[1].HandleReloadConfigRequest, request, grpc.StatusCode.INVALID_ARGUMENT, "outside the model base")


def test_metrics_count_grpc_requests_by_model_and_status_as_tf_serving(server, stubs):
    stubs[0].Predict(_request(contract.RETRIEVAL_MODEL), timeout=10)
    _fails(stubs[0].Predict, _request(version=42), grpc.StatusCode.NOT_FOUND)
    for name in ("probe-1", "probe-2"):
        _fails(stubs[0].Predict, _request(model=name), grpc.StatusCode.NOT_FOUND)
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.rest_port}/monitoring/prometheus/metrics", timeout=10).read().decode()
    assert ':tensorflow:serving:request_count{model_name="retrieval",status="OK"}' in text
    assert ':tensorflow:serving:request_count{model_name="recommend",status="NOT_FOUND"}' in text
    assert ':tensorflow:serving:request_latency_bucket{model_name="retrieval",API="Predict",entrypoint="GRPC",le="10"}' in text
    assert ':tensorflow:serving:runtime_latency_count{model_name="retrieval",API="Predict",runtime="TF1"}' in text
    assert ":tensorflow:serving:batching_session:processed_batch_size_count{}" in text
    assert ':tensorflow:serving:request_count{model_name="_unknown",status="NOT_FOUND"}' in text and "probe-" not in text


def test_rest_model_status_is_what_readiness_probes_read(server):
    body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{server.rest_port}/v1/models/recommend", timeout=10).read())
    assert body["model_version_status"][0]["state"] == "AVAILABLE"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"http://127.0.0.1:{server.rest_port}/v1/models/nope", timeout=10)
    assert caught.value.code == 404


def test_reload_is_refused_unless_the_server_allows_it(tmp_path):
    handle = start_toy_server(tmp_path, models=(contract.RECOMMEND_MODEL,))
    channel = grpc.insecure_channel(f"127.0.0.1:{handle.port}")
    try:
        request = model_management_pb2.ReloadConfigRequest(config=model_server_config_pb2.ModelServerConfig())
        _fails(model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest, request,
               grpc.StatusCode.PERMISSION_DENIED, "HandleReloadConfigRequest is disabled on this server")
        # Nothing was unloaded.
        assert prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(_request(), timeout=10).outputs
    finally:
        channel.close()
        handle.stop()


class _RemotePeer:
    """A servicer context of a caller on another machine, without a client certificate."""

    def peer(self):
        return "ipv4:10.1.2.3:41234"

    def abort(self, code, details):
        raise grpc.RpcError(code, details)

    def set_code(self, code):
        self.code = code

    def set_details(self, details):
        self.details = details


def test_reload_from_another_machine_needs_mutual_tls():
    from serving.server.service import ModelService

    context = _RemotePeer()
    for service, refused in ((ModelService(None, None, None, allow_reload=True), True),
                             (ModelService(None, None, None, allow_reload=True, mutual_tls=True), False)):
        try:
            service.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), context)
        except grpc.RpcError as error:
            code, details = error.args
        else:
            code, details = getattr(context, "code", None), getattr(context, "details", "")
        if refused:
            assert code is grpc.StatusCode.PERMISSION_DENIED and "only on loopback or over mutual TLS" in details
        else:
            assert code is not grpc.StatusCode.PERMISSION_DENIED


def test_a_huge_model_name_gets_a_readable_not_found(stubs):
    with pytest.raises(grpc.RpcError) as caught:
        stubs[0].Predict(_request(model="m" * 1_000_000), timeout=10)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert "is not served" in caught.value.details() and "more characters" in caught.value.details()


def _malformed(kind: str) -> dict:
    inputs = toy_request(contract.RECOMMEND_MODEL)
    if kind == "length past the width":
        inputs[contract.SESSION_LENGTH] = np.array([9], dtype=np.int32)
    elif kind == "event types narrower than item ids":
        inputs[contract.SESSION_EVENT_TYPES] = inputs[contract.SESSION_EVENT_TYPES][:, :1]
    elif kind == "zero-width session":
        for name in (contract.SESSION_ITEM_IDS, contract.SESSION_EVENT_TYPES, contract.SESSION_TIMESTAMPS):
            inputs[name] = inputs[name][:, :0]
        inputs[contract.SESSION_LENGTH] = np.array([0], dtype=np.int32)
    elif kind == "k of 0":
        inputs[contract.K] = np.array([0], dtype=np.int32)
    return inputs


MALFORMED = {
    "length past the width": "session_length must hold one count in 0..3",
    "event types narrower than item ids": "need one shape",
    "zero-width session": "width >= 1",
    "k of 0": "k must be at least 1",
}


def test_malformed_requests_get_the_same_answer_alone_and_inside_a_batch_of_good_ones(server, stubs):
    """Checked per request before batching: padding cannot hide a malformed request, and it never fails its neighbours."""
    import threading

    alone = {kind: _fails(stubs[0].Predict, _request(inputs=_malformed(kind)), grpc.StatusCode.INVALID_ARGUMENT, fragment)
             for kind, fragment in MALFORMED.items()}
    good = stubs[0].Predict(_request(), timeout=10)
    requests = [_request(inputs=_malformed(kind)) for kind in MALFORMED] + [_request()] * 8
    answers = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def send(index):
        barrier.wait()
        try:
            answers[index] = stubs[0].Predict(requests[index], timeout=30)
        except grpc.RpcError as error:
            answers[index] = error

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for kind, answer in zip(MALFORMED, answers):
        assert isinstance(answer, grpc.RpcError) and answer.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert answer.details() == alone[kind]
    for answer in answers[len(MALFORMED):]:
        assert not isinstance(answer, grpc.RpcError), answer
        assert answer.outputs[contract.ITEM_IDS] == good.outputs[contract.ITEM_IDS]
