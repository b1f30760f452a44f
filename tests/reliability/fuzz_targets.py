"""The fuzz targets: hypothesis strategies of hostile inputs and the oracle each answer must meet.

One module for both runs, so they fuzz the same things: the CI tests
(tests/reliability/test_fuzz.py, a few cases per target) and the benchmark
(benchmarks/fuzz_benchmark.py, thousands). A target is a strategy of cases and a check
that sends one case and returns what came back (``OK``, ``INVALID_ARGUMENT``, ``HTTP 400``,
``exit 2``...), or raises :class:`Crash` when the answer is outside what is allowed:

- gRPC (``predict``, ``tensor_proto``, ``batched``, ``model_status``): OK or a named client
  error (INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, FAILED_PRECONDITION) with a
  message; never INTERNAL, UNKNOWN or a hang (DEADLINE_EXCEEDED). A valid request gets
  the toy model's answer (:func:`serving.testing.expected_top_k`), batched or not.
- REST (``rest``): 200 with predictions/outputs, or 400/404/413/429 with a JSON ``error``.
- Files the CLI reads (``run_config``, ``event_file``, ``serving_config``): success or
  exit 2 with one line (the CLI), or the project's error type with a one-line message (the
  TF Serving config readers); never a traceback or another exception type.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import math
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from hypothesis import strategies as st

from recsys_base.errors import RecsysError
from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.testing import TOY_ITEMS, expected_top_k, toy_request

tf = tensorflow()
from tensorflow.core.framework import tensor_pb2, types_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

MODEL = contract.RECOMMEND_MODEL
ITEMS = TOY_ITEMS
VERSION = 1
LIMIT = 64 * 1024  # the servers' max_message_bytes: small, so "oversized" stays cheap
DEADLINE_S = 10.0
INPUTS = contract.INPUTS[MODEL]
CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED,
                 grpc.StatusCode.FAILED_PRECONDITION}
KINDS = ["valid", "k_below", "k_over", "missing", "extra", "dtype", "rank", "batch", "undecodable", "oversized",
         "unknown_model", "unknown_version", "unknown_label", "unknown_signature"]
# k past the catalog is refused by the model itself, so batched with others it fails the whole
# batch (TF Serving's semantics: batching.py); every other kind is refused before batching.
BATCH_NEIGHBOUR_KINDS = [kind for kind in KINDS if kind != "k_over"]


class Crash(AssertionError):
    """An answer outside the allowed set: the finding a fuzz run counts."""


@dataclass
class Endpoints:
    """Where the cases go: gRPC channels (``batched`` to a server with batching on), the REST
    port, and a scratch directory for the files the CLI cases write."""

    channel: grpc.Channel
    batched: grpc.Channel
    rest_port: int
    workdir: Path


def call(method, request):
    """(code, answer or details) of one call; a hang shows up as DEADLINE_EXCEEDED, which no case allows."""
    try:
        return grpc.StatusCode.OK, method(request, timeout=DEADLINE_S)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""


def still_serving(channel: grpc.Channel) -> bool:
    """Whether the server behind ``channel`` answers a valid request."""
    predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
    return call(predict, predict_request(toy_request(MODEL)))[0] == grpc.StatusCode.OK


def _allowed(code, answer, what) -> str:
    """The code's name if it is OK or a client error with a message; Crash otherwise."""
    if code != grpc.StatusCode.OK and (code not in CLIENT_ERRORS or not answer):
        raise Crash(f"{what}: {code.name} {answer!r:.300}")
    return code.name


# -- well-formed and hostile Predict requests ---------------------------------------------

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


def predict_request(inputs, name=MODEL, **spec):
    """A PredictRequest of ``inputs`` (arrays or ready TensorProtos); ``spec``: version, version_label, signature_name."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    for input_name, value in inputs.items():
        request.inputs[input_name].CopyFrom(value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value))
    return request


@st.composite
def predict_cases(draw, kind):
    """(kind, request, expected code, fragments the message must contain) for one ``kind`` of request."""
    inputs = draw(valid_inputs())
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    if kind == "valid":
        return kind, predict_request(inputs), grpc.StatusCode.OK, []
    if kind in ("k_below", "k_over"):
        bad = draw(st.integers(-(2**31), 0) if kind == "k_below" else st.integers(ITEMS + 1, 2**31 - 1))
        inputs[contract.K] = np.full(inputs[contract.K].shape, bad, dtype=np.int32)
        # Below 1 the server refuses it before batching; past the catalog only the model knows.
        return kind, predict_request(inputs), invalid, ["k must be at least 1" if kind == "k_below" else f"k must be in 1..{ITEMS}"]
    if kind == "missing":
        missing = draw(st.lists(st.sampled_from(sorted(INPUTS)), min_size=1, unique=True))
        return kind, predict_request({k: v for k, v in inputs.items() if k not in missing}), invalid, ["missing input", *missing]
    if kind == "extra":
        extra = draw(st.text(min_size=1, max_size=16).filter(lambda name: name not in INPUTS))
        inputs[extra] = np.zeros([len(inputs[contract.K])], np.float32)
        return kind, predict_request(inputs), invalid, ["unexpected input", repr(extra)]
    if kind == "dtype":
        name = draw(st.sampled_from(sorted(INPUTS)))
        wrong = draw(st.sampled_from([np.float32, np.int32, np.int64, np.float64, object]).filter(
            lambda dtype: tf.dtypes.as_dtype(dtype).as_datatype_enum != tf.dtypes.as_dtype(INPUTS[name][0].lower().replace("dt_", "")).as_datatype_enum))
        inputs[name] = np.zeros(inputs[name].shape, dtype=wrong) if wrong is not object else np.full(inputs[name].shape, b"x", dtype=object)
        return kind, predict_request(inputs), invalid, [repr(name), "dtype"]
    if kind == "rank":
        name = draw(st.sampled_from(sorted(INPUTS)))
        value = inputs[name]
        scalar = np.full((), b"x" if value.dtype == object else 0, dtype=value.dtype)
        inputs[name] = scalar if draw(st.booleans()) else value[..., None]
        return kind, predict_request(inputs), invalid, [repr(name), "shape"]
    if kind == "batch":
        name = draw(st.sampled_from(sorted(INPUTS)))
        inputs[name] = np.concatenate([inputs[name], inputs[name]])
        return kind, predict_request(inputs), invalid, ["batch size", name]
    if kind == "undecodable":
        request = predict_request(inputs)
        tensor = request.inputs[contract.SESSION_TIMESTAMPS]
        tensor.ClearField("int64_val")
        tensor.tensor_content = draw(st.binary(min_size=1, max_size=40).filter(lambda raw: len(raw) != 8 * inputs[contract.SESSION_TIMESTAMPS].size))
        return kind, request, invalid, [repr(contract.SESSION_TIMESTAMPS), "cannot be decoded"]
    if kind == "oversized":
        inputs[contract.USER_ID] = np.array([b"x" * draw(st.integers(LIMIT, 3 * LIMIT))] * len(inputs[contract.K]), dtype=object)
        return kind, predict_request(inputs), grpc.StatusCode.RESOURCE_EXHAUSTED, ["larger than max"]
    not_found = grpc.StatusCode.NOT_FOUND
    if kind == "unknown_model":
        name = draw(st.text(max_size=20).filter(lambda name: name != MODEL))
        return kind, predict_request(inputs, name=name), not_found, ["is not served"]
    if kind == "unknown_version":
        version = draw(st.integers(-(2**63), 2**63 - 1).filter(lambda v: v != VERSION))
        return kind, predict_request(inputs, version=version), not_found, [f"Servable not found for request: Specific({MODEL}, {version})"]
    if kind == "unknown_label":
        label = draw(st.text(min_size=1, max_size=20).filter(lambda label: label != contract.STABLE_LABEL))
        return kind, predict_request(inputs, version_label=label), invalid, [f"Unrecognized servable version label: {label}"]
    signature = draw(st.text(min_size=1, max_size=20).filter(lambda name: name not in (contract.DEFAULT_SIGNATURE, contract.SIGNATURES[MODEL])))
    return kind, predict_request(inputs, signature_name=signature), not_found, ["signature", repr(signature)]


def check_recommendations(request, answer) -> None:
    """Crash unless every row of ``answer`` is the toy model's top k for that row.

    A row may be wider than its own k (a batch's outputs keep the batch's width, as TF
    Serving's): past k it must hold only padding, ``""`` with score -inf.
    """
    k = tf.make_ndarray(request.inputs[contract.K])
    excluded = tf.make_ndarray(request.inputs[contract.EXCLUDE_ITEM_IDS])
    lengths = tf.make_ndarray(request.inputs[contract.EXCLUDE_LENGTH])
    ids = tf.make_ndarray(answer.outputs[contract.ITEM_IDS])
    scores = tf.make_ndarray(answer.outputs[contract.SCORES])
    if ids.shape[0] != len(k) or ids.shape[1] < k.max():
        raise Crash(f"answer of shape {list(ids.shape)} for k {k.tolist()}")
    for row, own_k in enumerate(k):
        # A string tensor with no values decodes to numpy str "" (the server runs it as b"").
        exclude = tuple(item.decode("utf-8", "replace") if isinstance(item, bytes) else item for item in excluded[row, : lengths[row]])
        expected = expected_top_k(ITEMS, VERSION, int(own_k), exclude)
        got = [(item.decode(), float(score)) for item, score in zip(ids[row, : len(expected)], scores[row, : len(expected)])]
        padding = set(ids[row, len(expected):].tolist()) | {b""}, set(scores[row, len(expected):].tolist()) | {-math.inf}
        if got != expected or padding != ({b""}, {-math.inf}):
            raise Crash(f"row {row} (k {own_k}, excluding {exclude}) answered {ids[row].tolist()}, expected {expected}")


def check_predict(endpoints: Endpoints, case) -> str:
    """One ``predict_cases`` case: exactly the expected code, a message naming the problem."""
    kind, request, expected, fragments = case
    code, answer = call(prediction_service_pb2_grpc.PredictionServiceStub(endpoints.channel).Predict, request)
    return _expect(kind, request, code, answer, expected, fragments)


def _expect(kind, request, code, answer, expected, fragments) -> str:
    if code != expected:
        raise Crash(f"{kind}: expected {expected.name}, got {code.name} {answer!r:.300}")
    if code == grpc.StatusCode.OK:
        check_recommendations(request, answer)
    missing = [fragment for fragment in fragments if fragment not in answer]
    if missing:
        raise Crash(f"{kind}: message lacks {missing}: {answer!r:.300}")
    return code.name


# -- raw TensorProtos -------------------------------------------------------------------

DTYPES = sorted(types_pb2.DataType.values())  # DT_INVALID, quantized, resource, variant, the _REF types
VALUE_FIELDS = {
    "float_val": st.floats(width=32), "double_val": st.floats(), "half_val": st.integers(-(2**31), 2**31 - 1),
    "int_val": st.integers(-(2**31), 2**31 - 1), "int64_val": st.integers(-(2**63), 2**63 - 1),
    "string_val": st.binary(max_size=16), "bool_val": st.booleans(), "scomplex_val": st.floats(width=32),
    "dcomplex_val": st.floats(), "uint32_val": st.integers(0, 2**32 - 1), "uint64_val": st.integers(0, 2**64 - 1),
}
dimension = st.one_of(st.integers(-2, 5), st.sampled_from([0, 2**10, 2**20, 2**20 + 1, 2**31, 2**62, 2**63 - 1, -(2**63)]),
                      st.integers(-(2**63), 2**63 - 1))


@st.composite
def raw_tensors(draw, proper: tensor_pb2.TensorProto):
    """A TensorProto near or far from ``proper``: any dtype number, any shape (negative, huge,
    many dimensions, unknown rank), value fields that do or do not match the dtype,
    ``tensor_content`` of any length, one value declaring a large shape (TF's compact encoding)."""
    tensor = tensor_pb2.TensorProto()
    tensor.CopyFrom(proper)
    if draw(st.booleans()):
        tensor.dtype = draw(st.one_of(st.sampled_from(DTYPES), st.integers(-(2**31), 2**31 - 1)))
    if draw(st.booleans()):
        tensor.tensor_shape.Clear()
        if draw(st.integers(0, 9)) == 0:
            tensor.tensor_shape.unknown_rank = True
        for size in draw(st.lists(dimension, max_size=draw(st.sampled_from([3, 40])))):
            tensor.tensor_shape.dim.add(size=size, name=draw(st.sampled_from(["", "batch"])))
    if draw(st.booleans()):
        for field in VALUE_FIELDS:
            tensor.ClearField(field)
        tensor.ClearField("tensor_content")
        for field in draw(st.lists(st.sampled_from(sorted(VALUE_FIELDS)), max_size=3, unique=True)):
            getattr(tensor, field).extend(draw(st.lists(VALUE_FIELDS[field], min_size=1, max_size=8)))
    if draw(st.integers(0, 3)) == 0:
        tensor.tensor_content = draw(st.binary(max_size=256))
    if draw(st.integers(0, 9)) == 0:
        tensor.float8_val = draw(st.binary(max_size=8))  # raw bytes too, one field rather than repeated
    if draw(st.integers(0, 9)) == 0:
        tensor.version_number = draw(st.integers(-(2**31), 2**31 - 1))
    if draw(st.integers(0, 19)) == 0:
        tensor.resource_handle_val.add(device=draw(st.text(max_size=8)), hash_code=draw(st.integers(0, 2**64 - 1)))
    if draw(st.integers(0, 19)) == 0:
        tensor.variant_val.add(type_name=draw(st.text(max_size=8)))
    return tensor


@st.composite
def tensor_proto_cases(draw):
    """A valid request with one or more inputs replaced by :func:`raw_tensors`."""
    request = predict_request(draw(valid_inputs()))
    for name in draw(st.lists(st.sampled_from(sorted(INPUTS)), min_size=1, max_size=3, unique=True)):
        request.inputs[name].CopyFrom(draw(raw_tensors(request.inputs[name])))
    return request


def check_tensor_proto(endpoints: Endpoints, request) -> str:
    code, answer = call(prediction_service_pb2_grpc.PredictionServiceStub(endpoints.channel).Predict, request)
    if code == grpc.StatusCode.OK:
        # What got through decodes to a valid request, so its answer is the model's.
        check_recommendations(request, answer)
    return _allowed(code, answer, "raw tensor")


# -- concurrent requests to a batching server -----------------------------------------------

batched_cases = st.lists(st.one_of(predict_cases("valid"), st.sampled_from(BATCH_NEIGHBOUR_KINDS).flatmap(predict_cases)),
                         min_size=2, max_size=6)


def check_batched(endpoints: Endpoints, cases) -> str:
    """Sends every case at once (so the server merges them); each must get its answer alone."""
    predict = prediction_service_pb2_grpc.PredictionServiceStub(endpoints.batched).Predict
    futures = [predict.future(request, timeout=DEADLINE_S) for _, request, _, _ in cases]
    for (kind, request, expected, fragments), future in zip(cases, futures):
        try:
            code, answer = grpc.StatusCode.OK, future.result()
        except grpc.RpcError as error:
            code, answer = error.code(), error.details() or ""
        _expect(f"batched {kind}", request, code, answer, expected, fragments)
    return "+".join(sorted({case[2].name for case in cases}))


# -- GetModelStatus -------------------------------------------------------------------------

@st.composite
def status_cases(draw):
    """(request, expected code, message fragment)."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = draw(st.one_of(st.just(MODEL), st.text(max_size=20)))
    which = draw(st.sampled_from(["none", "version", "label"]))
    if which == "version":
        request.model_spec.version.value = draw(st.one_of(st.just(VERSION), st.integers(-(2**63), 2**63 - 1)))
    elif which == "label":
        request.model_spec.version_label = draw(st.one_of(st.just(contract.STABLE_LABEL), st.text(min_size=1, max_size=20)))
    spec = request.model_spec
    # As TF Serving (get_model_status_impl.cc): a label is ignored, every version is listed.
    if spec.name != MODEL:
        return request, grpc.StatusCode.NOT_FOUND, "is not served"
    if which == "version" and spec.version.value != VERSION:
        return request, grpc.StatusCode.NOT_FOUND, f"version {spec.version.value}"
    return request, grpc.StatusCode.OK, ""


def check_status(endpoints: Endpoints, case) -> str:
    request, expected, fragment = case
    code, answer = call(model_service_pb2_grpc.ModelServiceStub(endpoints.channel).GetModelStatus, request)
    if code != expected:
        raise Crash(f"status of {request.model_spec}: expected {expected.name}, got {code.name} {answer!r:.300}")
    if code == grpc.StatusCode.OK:
        if [(s.version, s.state) for s in answer.model_version_status] != [(VERSION, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]:
            raise Crash(f"status of {request.model_spec}: {answer}")
    elif fragment not in answer:
        raise Crash(f"status message lacks {fragment!r}: {answer!r:.300}")
    return code.name


# -- REST :predict bodies -------------------------------------------------------------------

huge_number = st.one_of(st.integers(-(10**400), 10**400), st.sampled_from([2**31, -(2**31) - 1, 2**63, 2**64, 10**309]),
                        st.floats(allow_nan=True, allow_infinity=True))
b64_object = st.one_of(st.binary(max_size=12).map(lambda raw: {"b64": base64.b64encode(raw).decode()}),
                       st.text(max_size=12).map(lambda text: {"b64": text}),
                       st.dictionaries(st.sampled_from(["b64", "B64", "x"]), st.integers() | st.text(max_size=4), max_size=2))
json_leaf = st.one_of(st.none(), st.booleans(), huge_number, st.text(max_size=12), b64_object)
json_value = st.recursive(json_leaf, lambda children: st.lists(children, max_size=4)
                          | st.dictionaries(st.one_of(st.sampled_from(sorted(INPUTS)), st.text(max_size=8)), children, max_size=4),
                          max_leaves=16)


def _json_array(array: np.ndarray):
    """An input as JSON: strings as text when they are UTF-8, else as {"b64": ...}."""
    if array.dtype != object:
        return array.tolist()
    as_text = np.vectorize(lambda raw: _text_or_b64(raw), otypes=[object])(array) if array.size else array
    return as_text.tolist()


def _text_or_b64(raw: bytes):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(raw).decode()}


@st.composite
def rest_bodies(draw) -> bytes:
    """A :predict body: a valid one in either format with some values replaced (wrong types,
    huge numbers, NaN/Infinity, b64 objects, any JSON), arbitrary JSON or bytes, or nesting
    thousands deep."""
    shape = draw(st.sampled_from(["valid", "mutated", "json", "bytes", "deep"]))
    if shape == "bytes":
        return draw(st.binary(max_size=200))
    if shape == "json":
        return json.dumps(draw(st.dictionaries(st.sampled_from(["instances", "inputs", "signature_name", "x"]), json_value, max_size=3))).encode()
    inputs = {name: _json_array(array) for name, array in draw(valid_inputs()).items()}
    row = draw(st.booleans())
    if shape == "mutated":
        for name in draw(st.lists(st.sampled_from(sorted(INPUTS)), min_size=1, max_size=3, unique=True)):
            inputs[name] = draw(json_value) if draw(st.booleans()) else [draw(json_value) for _ in inputs[name]]
    rows = len(inputs[contract.K]) if isinstance(inputs[contract.K], list) else 1
    if row:
        document = {"instances": [{name: value[index] if isinstance(value, list) and index < len(value) else value
                                   for name, value in inputs.items()} for index in range(rows)]}
    else:
        document = {"inputs": inputs}
    if draw(st.integers(0, 4)) == 0:
        document["signature_name"] = draw(json_value)
    text = json.dumps(document)
    if shape == "deep":  # built as text: json.dumps would recurse as deep as the value
        depth = draw(st.integers(100, 20_000))
        leaf = draw(st.sampled_from(['"x"', "1", "{}", '{"b64": "eA=="}']))
        text = text.replace('"view"', "[" * depth + leaf + "]" * depth, 1)
    return text.encode()


def check_rest(endpoints: Endpoints, body: bytes) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", endpoints.rest_port, timeout=DEADLINE_S)
    try:
        connection.request("POST", f"/v1/models/{MODEL}:predict", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        status, raw = response.status, response.read()
    except (OSError, http.client.HTTPException) as error:
        raise Crash(f"REST body {body[:200]!r}: no answer ({type(error).__name__}: {error})") from None
    finally:
        connection.close()
    try:
        answer = json.loads(raw)
    except ValueError:
        raise Crash(f"REST body {body[:200]!r}: HTTP {status} with a body that is not JSON: {raw[:200]!r}") from None
    if status == 200:
        if not isinstance(answer, dict) or not {"predictions", "outputs"} & set(answer):
            raise Crash(f"REST body {body[:200]!r}: 200 without predictions or outputs: {raw[:200]!r}")
    elif status not in (400, 404, 413, 429) or not isinstance(answer, dict) or not answer.get("error"):
        raise Crash(f"REST body {body[:200]!r}: HTTP {status} {raw[:300]!r}")
    return f"HTTP {status}"


# -- files the CLI reads ----------------------------------------------------------------------

def _deep(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


@st.composite
def run_config_files(draw) -> bytes:
    """A run config: sections and settings of the real names with any JSON values, any JSON,
    YAML (which the reader does not take), bytes that are not UTF-8, deep nesting."""
    from recsys.workflow import RUN_SECTIONS

    shape = draw(st.sampled_from(["sections", "sections", "json", "yaml", "bytes", "deep"]))
    if shape == "bytes":
        return draw(st.binary(max_size=120))
    if shape == "deep":
        return _deep(draw(st.integers(100, 50_000)), *draw(st.sampled_from([("[", "]"), ('{"train": ' * 1, "}")]))).encode()
    if shape == "json":
        return json.dumps(draw(json_value)).encode()
    settings = {}
    for section in draw(st.lists(st.sampled_from(sorted(RUN_SECTIONS) + ["extra"]), max_size=4, unique=True)):
        names = sorted(RUN_SECTIONS[section].__dataclass_fields__) if section in RUN_SECTIONS else ["x"]
        settings[section] = draw(st.dictionaries(st.sampled_from(names), json_value | st.integers(-3, 300), max_size=4))
    if shape == "yaml":
        return "".join(f"{section}:\n" + "".join(f"  {name}: {value}\n" for name, value in fields.items())
                       for section, fields in settings.items()).encode()
    return json.dumps(settings).encode()


EVENT_COLUMNS = ["session_id", "item_id", "timestamp", "user_id", "event_type", "query", "price", "Session ID"]
csv_field = st.one_of(st.integers(-(2**70), 2**70).map(str), st.floats().map(str), st.text(max_size=10),
                      st.sampled_from(["", "NaN", "null", "1700000000", "1700000000000", "2024-01-01T00:00:00", "2024-13-45",
                                       '"a,b"', '"', "view", "purchase", "\x00", "1e400", "-1", "inf"]))
csv_encoding = st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"])


@st.composite
def _good_events(draw) -> dict[str, list]:
    """Columns of a small event log that imports: sessions of four views a minute apart, of
    two items each seen often enough to survive cleaning."""
    rows = draw(st.integers(12, 40))
    return {"session_id": [f"s{row // 4}" for row in range(rows)], "item_id": [str(row % 2) for row in range(rows)],
            "timestamp": [1_700_000_000 + 60 * row for row in range(rows)]}


def _replace_some_fields(draw, columns: dict[str, list[str]], names: list[str]) -> None:
    """Up to 3 fields in each of up to 2 of ``names`` become any CSV field (a name missing
    from ``columns`` is added as an empty column first)."""
    for name in draw(st.lists(st.sampled_from(names), max_size=2)):
        column = columns.setdefault(name, [""] * len(next(iter(columns.values()))))
        for row in draw(st.lists(st.integers(0, len(column) - 1), max_size=3)):
            column[row] = draw(csv_field)


@st.composite
def csv_files(draw) -> bytes:
    """Event CSVs: a good log with some fields or columns replaced, or any columns and values,
    in several encodings and separators, or any bytes."""
    if draw(st.booleans()):
        columns = {name: list(map(str, values)) for name, values in draw(_good_events()).items()}
        _replace_some_fields(draw, columns, EVENT_COLUMNS)
        header, rows = list(columns), [list(fields) for fields in zip(*columns.values())]
    else:
        header = draw(st.lists(st.sampled_from(EVENT_COLUMNS) | st.text(max_size=6), min_size=1, max_size=6))
        rows = draw(st.lists(st.lists(csv_field, min_size=0, max_size=len(header) + 1), max_size=8))
    separator = draw(st.sampled_from([",", ",", ";", "\t"]))
    text = "\n".join(separator.join(fields) for fields in [header, *rows]) + draw(st.sampled_from(["", "\n", "\r\n"]))
    return text.encode(draw(csv_encoding), "replace") if draw(st.integers(0, 9)) else draw(st.binary(max_size=120))


parquet_column = st.one_of(
    st.lists(st.integers(-(2**63), 2**63 - 1) | st.none(), min_size=1, max_size=6),
    st.lists(st.floats() | st.none(), min_size=1, max_size=6),
    st.lists(csv_field | st.none(), min_size=1, max_size=6),
    st.lists(st.binary(max_size=6) | st.none(), min_size=1, max_size=6),
    st.lists(st.booleans(), min_size=1, max_size=6),
    st.lists(st.lists(st.integers(-5, 5), max_size=3), min_size=1, max_size=6),
    st.lists(st.datetimes(timezones=st.none() | st.timezones()), min_size=1, max_size=6),
)


@st.composite
def parquet_files(draw) -> bytes:
    """Event Parquet files: a good log with columns replaced or added, or any columns of any
    types, or damaged bytes."""
    import pandas as pd

    columns = {name: pd.Series(values) for name, values in draw(_good_events()).items()} if draw(st.booleans()) else {}
    rows = len(columns["item_id"]) if columns else draw(st.integers(1, 6))
    names = draw(st.lists(st.sampled_from(EVENT_COLUMNS) | st.text(min_size=1, max_size=6), min_size=0 if columns else 1,
                          max_size=3 if columns else 5, unique=True))
    columns.update({name: pd.Series((draw(parquet_column) * rows)[:rows], dtype=object) for name in names})
    frame = pd.DataFrame(columns)
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer)
    except Exception:  # noqa: BLE001 - pyarrow cannot store this mix; a damaged file is just as good a case
        buffer = io.BytesIO(draw(st.binary(min_size=4, max_size=64)))
    data = buffer.getvalue()
    if draw(st.integers(0, 4)) == 0:  # cut or flip bytes: a file damaged in transfer
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] if draw(st.booleans()) else data[:cut] + bytes([draw(st.integers(0, 255))]) + data[cut + 1:]
    return data


@st.composite
def diginetica_view_files(draw) -> bytes:
    """Raw CIKM16 ``train-item-views.csv`` (``;``-separated, ``NA`` missing): a good log with
    some fields replaced (an event's time is ``eventdate`` plus ``timeframe`` milliseconds),
    or any bytes."""
    rows = draw(st.integers(12, 40))
    columns = {"session_id": [str(1 + row // 4) for row in range(rows)], "user_id": ["NA"] * rows,
               "item_id": [str(row % 2) for row in range(rows)], "timeframe": [str(60_000 * row) for row in range(rows)],
               "eventdate": ["2016-05-09"] * rows}
    _replace_some_fields(draw, columns, list(columns))
    text = "\n".join(";".join(fields) for fields in [list(columns), *zip(*columns.values())]) + "\n"
    return text.encode("utf-8", "replace") if draw(st.integers(0, 9)) else draw(st.binary(max_size=120))


event_files = st.one_of(st.tuples(st.just("csv"), csv_files()), st.tuples(st.just("parquet"), parquet_files()),
                        st.tuples(st.just("diginetica-raw"), diginetica_view_files()))


def run_cli(argv: list[str]) -> tuple[int, str]:
    """(exit code, stderr) of ``recsys argv`` run in this process; an exception escaping the
    CLI is what ``python -m recsys`` would show: a traceback and exit 1.

    Warnings (e.g. malformed CSV lines kept for cleaning to quarantine) are diagnostics the
    CLI may print before its result, so they are recorded apart rather than read as part
    of the one error line.
    """
    from recsys.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), warnings.catch_warnings(record=True):
        try:
            code = main(argv)
        except SystemExit as exit_info:  # argparse's own refusals
            code = exit_info.code
        except Exception:  # noqa: BLE001 - exactly what the fuzzing is looking for
            traceback.print_exc()
            code = 1
    return code, err.getvalue()


def _cli_outcome(what: str, code: int, err: str) -> str:
    if code == 0:
        return "exit 0"
    if code != 2 or "Traceback" in err or len(err.rstrip("\n").split("\n")) != 1 or not err.strip():
        last = err.strip().splitlines()[-1] if err.strip() else ""  # a traceback's exception, or the error line
        raise Crash(f"exit {code}, last line {last!r:.300}; stderr {err[-600:]!r} for {what}")
    return "exit 2"


def _scratch(endpoints: Endpoints, name: str, data: bytes) -> Path:
    path = endpoints.workdir / name
    path.write_bytes(data)
    return path


def check_run_config(endpoints: Endpoints, data: bytes) -> str:
    """``recsys train --config FILE`` with no data directory: the config is read first, so a
    good one ends in the one-line 'data directory not found', a bad one in its own line."""
    path = _scratch(endpoints, "run.json", data)
    missing = endpoints.workdir / "no-data"
    code, err = run_cli(["train", "--data", str(missing), "--run", str(endpoints.workdir / "run"), "--config", str(path)])
    if code == 0:
        raise Crash(f"run config {data[:200]!r}: train succeeded without data")
    outcome = _cli_outcome(f"run config {data[:200]!r}", code, err)
    return "exit 2 (config accepted)" if f"data directory not found: {missing}" in err else outcome


def check_event_file(endpoints: Endpoints, case) -> str:
    """``recsys data import --format csv|parquet|diginetica-raw`` of the file (for the raw
    CIKM16 format, a directory holding it as its views file): a dataset, or one line and exit 2."""
    fmt, data = case
    if fmt == "diginetica-raw":
        (endpoints.workdir / "diginetica").mkdir(exist_ok=True)
        path = _scratch(endpoints, "diginetica/train-item-views.csv", data).parent
    else:
        path = _scratch(endpoints, f"events.{fmt}", data)
    code, err = run_cli(["data", "import", "--format", fmt, "--input", str(path), "--out", str(endpoints.workdir / "data"),
                         "--overwrite"])
    return _cli_outcome(f"{fmt} events {data[:200]!r}", code, err)


# The TF Serving text configs the server and the CLI read, with the fields each knows.
SERVING_CONFIG_FIELDS = {
    "models": ["model_config_list", "config", "name", "base_path", "model_platform", "model_version_policy", "specific",
               "versions", "latest", "num_versions", "all", "version_labels", "key", "value", "custom_model_config"],
    "batching": ["max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads", "thread_pool_name",
                 "allowed_batch_sizes", "pad_variable_length_inputs", "value"],
    "monitoring": ["prometheus_config", "enable", "path"],
}
text_scalar = st.one_of(st.integers(-(2**70), 2**70).map(str), st.floats().map(repr), st.sampled_from(["true", "false", "tensorflow", "-"]),
                        st.text(max_size=10).map(json.dumps), st.binary(max_size=6).map(lambda raw: '"' + raw.hex() + '\\x' + '"'))


@st.composite
def serving_config_texts(draw):
    """(kind, bytes): text-format configs built from the real field names with any values
    and nesting, random text, or bytes that are not UTF-8."""
    kind = draw(st.sampled_from(sorted(SERVING_CONFIG_FIELDS)))
    shape = draw(st.sampled_from(["fields", "fields", "fields", "text", "bytes", "deep"]))
    if shape == "bytes":
        return kind, draw(st.binary(max_size=120))
    if shape == "text":
        return kind, draw(st.text(max_size=120)).encode()
    if shape == "deep":
        field = draw(st.sampled_from(SERVING_CONFIG_FIELDS[kind]))
        return kind, _deep(draw(st.integers(10, 5_000)), f"{field} {{ ", "}").encode()
    names = st.sampled_from(SERVING_CONFIG_FIELDS[kind])
    body = st.recursive(st.tuples(names, text_scalar).map(lambda pair: f"{pair[0]}: {pair[1]}"),
                        lambda inner: st.tuples(names, st.lists(inner, max_size=3)).map(lambda pair: f"{pair[0]} {{ {' '.join(pair[1])} }}"),
                        max_leaves=10)
    return kind, "\n".join(draw(st.lists(body, max_size=5))).encode()


def check_serving_config(endpoints: Endpoints, case) -> str:
    """The reader of each TF Serving config (models.config also through ``model_entries``):
    a value, or ConfigError/RecsysError with a one-line message; nothing else."""
    from serving.config_files import read_batching_options, read_model_server_config, read_prometheus_path
    from serving.server.manager import model_entries

    kind, data = case
    path = _scratch(endpoints, f"{kind}.config", data)
    readers = {
        "models": lambda: model_entries(read_model_server_config(path), endpoints.workdir),
        "batching": lambda: read_batching_options(path),
        "monitoring": lambda: read_prometheus_path(path),
    }
    try:
        readers[kind]()
    except RecsysError as error:
        if "\n" in str(error).strip() or not str(error):
            raise Crash(f"{kind} config {data[:200]!r}: {type(error).__name__} not on one line: {error!s:.600}") from None
        return type(error).__name__
    except Exception as error:  # noqa: BLE001 - exactly what the fuzzing is looking for
        raise Crash(f"{kind} config {data[:200]!r}: {type(error).__name__}: {error!s:.300}") from None
    return "ok"


@dataclass(frozen=True)
class Target:
    """A strategy of cases and the check one case must pass."""

    strategy: st.SearchStrategy
    check: object  # (Endpoints, case) -> outcome


TARGETS = {
    "predict": Target(st.sampled_from(KINDS).flatmap(predict_cases), check_predict),
    "tensor_proto": Target(tensor_proto_cases(), check_tensor_proto),
    "batched": Target(batched_cases, check_batched),
    "model_status": Target(status_cases(), check_status),
    "rest": Target(rest_bodies(), check_rest),
    "run_config": Target(run_config_files(), check_run_config),
    "event_file": Target(event_files, check_event_file),
    "serving_config": Target(serving_config_texts(), check_serving_config),
}
