"""Property-based fuzzing of Predict and GetModelStatus through the official gRPC stubs.

Every hostile request must get OK or INVALID_ARGUMENT / NOT_FOUND / RESOURCE_EXHAUSTED
with a message naming the problem (never INTERNAL, UNKNOWN or a hang), and the server
must stay up and not grow. How many cases were tried is printed in the summary.
"""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.testing import start_toy_server, toy_request

tf = tensorflow()
from tensorflow_serving.apis import (  # noqa: E402
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

MODEL = contract.RECOMMEND_MODEL
ITEMS = 50
LIMIT = 64 * 1024
DEADLINE_S = 10.0
INPUTS = contract.INPUTS[MODEL]
FUZZ = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
KINDS = ["valid", "k_range", "missing", "extra", "dtype", "rank", "batch", "undecodable", "oversized",
         "unknown_model", "unknown_version", "unknown_label", "unknown_signature"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    handle = start_toy_server(tmp_path_factory.mktemp("fuzz"), models=(MODEL,), max_message_bytes=LIMIT, rest_port=None)
    channel = grpc.insecure_channel(f"127.0.0.1:{handle.port}", options=[("grpc.max_send_message_length", 8 * LIMIT)])
    yield handle, channel
    channel.close()
    handle.stop(0)


def _call(method, request):
    """(code, details) of one call; a hang shows up as DEADLINE_EXCEEDED, which no case allows."""
    try:
        return grpc.StatusCode.OK, method(request, timeout=DEADLINE_S)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""


# -- request strategies ----------------------------------------------------------------

item_id = st.one_of(st.sampled_from([f"item-{i:03d}" for i in range(ITEMS)]).map(str.encode), st.binary(max_size=12))


@st.composite
def valid_inputs(draw):
    """A well-formed recommend request: any batch, any session length (0 too) within a width
    of at least one column, unknown and non-UTF-8 item ids, k in range."""
    rows, length, excluded = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    ids = np.array(draw(st.lists(st.lists(item_id, min_size=length, max_size=length), min_size=rows, max_size=rows)), dtype=object).reshape(rows, length)
    return {
        contract.SESSION_ITEM_IDS: ids,
        contract.SESSION_EVENT_TYPES: np.full((rows, length), b"view", dtype=object),
        contract.SESSION_TIMESTAMPS: np.array(
            draw(st.lists(st.integers(-(2**40), 2**40), min_size=rows * length, max_size=rows * length)), dtype=np.int64
        ).reshape(rows, length),
        contract.SESSION_LENGTH: np.array(draw(st.lists(st.integers(0, length), min_size=rows, max_size=rows)), dtype=np.int32),
        contract.USER_ID: np.array(draw(st.lists(st.binary(max_size=8), min_size=rows, max_size=rows)), dtype=object),
        contract.QUERY: np.array(draw(st.lists(st.text(max_size=10).map(str.encode), min_size=rows, max_size=rows)), dtype=object),
        contract.K: np.array(draw(st.lists(st.integers(1, ITEMS), min_size=rows, max_size=rows)), dtype=np.int32),
        contract.EXCLUDE_ITEM_IDS: np.array(
            draw(st.lists(st.lists(item_id, min_size=excluded, max_size=excluded), min_size=rows, max_size=rows)), dtype=object
        ),
        contract.EXCLUDE_LENGTH: np.array(draw(st.lists(st.integers(0, excluded), min_size=rows, max_size=rows)), dtype=np.int32),
    }


def _request(inputs, name=MODEL, **spec):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    for input_name, value in inputs.items():
        request.inputs[input_name].CopyFrom(value if isinstance(value, type(request.inputs[input_name])) else tf.make_tensor_proto(value))
    return request


@st.composite
def predict_cases(draw, kind):
    """(kind, request, expected code, fragments the message must contain) for one ``kind`` of request."""
    inputs = draw(valid_inputs())
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    if kind == "valid":
        return kind, _request(inputs), grpc.StatusCode.OK, []
    if kind == "k_range":
        bad = draw(st.one_of(st.integers(-(2**31), 0), st.integers(ITEMS + 1, 2**31 - 1)))
        inputs[contract.K] = np.full(inputs[contract.K].shape, bad, dtype=np.int32)
        # Below 1 the server refuses it before batching; past the catalog only the model knows.
        return kind, _request(inputs), invalid, ["k must be at least 1" if bad < 1 else f"k must be in 1..{ITEMS}"]
    if kind == "missing":
        missing = draw(st.lists(st.sampled_from(sorted(INPUTS)), min_size=1, unique=True))
        return kind, _request({k: v for k, v in inputs.items() if k not in missing}), invalid, ["missing input", *missing]
    if kind == "extra":
        extra = draw(st.text(min_size=1, max_size=16).filter(lambda name: name not in INPUTS))
        inputs[extra] = np.zeros([len(inputs[contract.K])], np.float32)
        return kind, _request(inputs), invalid, ["unexpected input", repr(extra)]
    if kind == "dtype":
        name = draw(st.sampled_from(sorted(INPUTS)))
        wrong = draw(st.sampled_from([np.float32, np.int32, np.int64, np.float64, object]).filter(
            lambda dtype: tf.dtypes.as_dtype(dtype).as_datatype_enum != tf.dtypes.as_dtype(INPUTS[name][0].lower().replace("dt_", "")).as_datatype_enum))
        inputs[name] = np.zeros(inputs[name].shape, dtype=wrong) if wrong is not object else np.full(inputs[name].shape, b"x", dtype=object)
        return kind, _request(inputs), invalid, [repr(name), "dtype"]
    if kind == "rank":
        name = draw(st.sampled_from(sorted(INPUTS)))
        value = inputs[name]
        scalar = np.full((), b"x" if value.dtype == object else 0, dtype=value.dtype)
        inputs[name] = scalar if draw(st.booleans()) else value[..., None]
        return kind, _request(inputs), invalid, [repr(name), "shape"]
    if kind == "batch":
        name = draw(st.sampled_from(sorted(INPUTS)))
        inputs[name] = np.concatenate([inputs[name], inputs[name]])
        return kind, _request(inputs), invalid, ["batch size", name]
    if kind == "undecodable":
        request = _request(inputs)
        tensor = request.inputs[contract.SESSION_TIMESTAMPS]
        tensor.ClearField("int64_val")
        tensor.tensor_content = draw(st.binary(min_size=1, max_size=40).filter(lambda raw: len(raw) != 8 * inputs[contract.SESSION_TIMESTAMPS].size))
        return kind, request, invalid, [repr(contract.SESSION_TIMESTAMPS), "cannot be decoded"]
    if kind == "oversized":
        inputs[contract.USER_ID] = np.array([b"x" * draw(st.integers(LIMIT, 3 * LIMIT))] * len(inputs[contract.K]), dtype=object)
        return kind, _request(inputs), grpc.StatusCode.RESOURCE_EXHAUSTED, ["larger than max"]
    not_found = grpc.StatusCode.NOT_FOUND
    if kind == "unknown_model":
        name = draw(st.text(max_size=20).filter(lambda name: name != MODEL))
        return kind, _request(inputs, name=name), not_found, ["is not served"]
    if kind == "unknown_version":
        version = draw(st.integers(-(2**63), 2**63 - 1).filter(lambda v: v != 1))
        return kind, _request(inputs, version=version), not_found, [f"Servable not found for request: Specific({MODEL}, {version})"]
    if kind == "unknown_label":
        label = draw(st.text(min_size=1, max_size=20).filter(lambda label: label != contract.STABLE_LABEL))
        return kind, _request(inputs, version_label=label), invalid, [f"Unrecognized servable version label: {label}"]
    signature = draw(st.text(min_size=1, max_size=20).filter(lambda name: name not in (contract.DEFAULT_SIGNATURE, contract.SIGNATURES[MODEL])))
    return kind, _request(inputs, signature_name=signature), not_found, ["signature", repr(signature)]


@pytest.mark.parametrize("kind", KINDS)
def test_predict_answers_hostile_requests_with_named_client_errors(server, kind, record_property):
    _, channel = server
    predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
    tried = []

    @FUZZ
    @given(predict_cases(kind))
    def check(case):
        _, request, expected, fragments = case
        tried.append(request)
        code, answer = _call(predict, request)
        assert code == expected, (kind, code, answer)
        if code == grpc.StatusCode.OK:
            k = tf.make_ndarray(request.inputs[contract.K])
            assert tf.make_ndarray(answer.outputs[contract.ITEM_IDS]).shape == (len(k), k.max())
        for fragment in fragments:
            assert fragment in answer, (kind, fragment, answer)

    check()
    record_property("fuzz_cases", len(tried))
    # Still serving after everything above.
    assert _call(predict, _request(toy_request(MODEL)))[0] == grpc.StatusCode.OK


@st.composite
def status_cases(draw):
    """(request, expected code, message fragment)."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = draw(st.one_of(st.just(MODEL), st.text(max_size=20)))
    which = draw(st.sampled_from(["none", "version", "label"]))
    if which == "version":
        request.model_spec.version.value = draw(st.one_of(st.just(1), st.integers(-(2**63), 2**63 - 1)))
    elif which == "label":
        request.model_spec.version_label = draw(st.one_of(st.just(contract.STABLE_LABEL), st.text(min_size=1, max_size=20)))
    spec = request.model_spec
    # As TF Serving (get_model_status_impl.cc): a label is ignored, every version is listed.
    if spec.name != MODEL:
        return request, grpc.StatusCode.NOT_FOUND, "is not served"
    if which == "version" and spec.version.value != 1:
        return request, grpc.StatusCode.NOT_FOUND, f"version {spec.version.value}"
    return request, grpc.StatusCode.OK, ""


def test_model_status_answers_every_spec_with_status_or_a_named_error(server, record_property):
    _, channel = server
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus
    tried = []

    @settings(FUZZ, max_examples=60)
    @given(status_cases())
    def check(case):
        request, expected, fragment = case
        tried.append(expected)
        code, answer = _call(status, request)
        assert code == expected, (request, code, answer)
        if code == grpc.StatusCode.OK:
            assert [(s.version, s.state) for s in answer.model_version_status] == [(1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
        else:
            assert fragment in answer

    check()
    record_property("fuzz_cases", len(tried))
    assert grpc.StatusCode.OK in tried and grpc.StatusCode.NOT_FOUND in tried


@pytest.mark.parametrize("method", ["/tensorflow.serving.PredictionService/Predict", "/tensorflow.serving.ModelService/GetModelStatus"])
def test_bytes_that_do_not_parse_are_invalid_argument(server, method):
    _, channel = server
    raw = channel.unary_unary(method, request_serializer=lambda data: data, response_deserializer=lambda data: data)
    # Field 1 (model_spec) holding field 1 (name) with bytes that are not UTF-8.
    for payload in (b"\x0a\x05\x0a\x03\xff\xfe\xfd", b"\xff\xff\xff\xff"):
        code, details = _call(raw, payload)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "does not parse" in details


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def test_repeated_bad_requests_do_not_grow_threads_or_memory(server):
    handle, channel = server
    predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
    cases = []
    for kind in KINDS:
        settings(FUZZ, max_examples=3)(given(predict_cases(kind))(lambda case: cases.append(case)))()

    def round_of_requests():
        for _, request, expected, _ in cases:
            assert _call(predict, request)[0] == expected

    for _ in range(3):  # let pools and caches reach their working size
        round_of_requests()
    threads, rss = threading.active_count(), _rss_mb()
    for _ in range(5):
        round_of_requests()
    assert threading.active_count() <= threads + 2
    assert _rss_mb() - rss < 25.0
    assert _call(predict, cases[0][1])[0] == grpc.StatusCode.OK  # the first case is a valid one
