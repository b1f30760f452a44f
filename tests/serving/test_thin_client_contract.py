"""The thin client's messages against TF Serving's official protos: same wire bytes."""

import subprocess
import sys

import numpy as np
import pytest

from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.client import messages, requests, sessions
from serving.client.tensors import to_array, to_tensor_proto

tf = tensorflow()
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2  # noqa: E402
from tensorflow.core.protobuf import meta_graph_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    status_pb2,
)

PAIRS = [
    (messages.TensorShapeProto, tensor_shape_pb2.TensorShapeProto),
    (messages.TensorProto, tensor_pb2.TensorProto),
    (messages.TensorInfo, meta_graph_pb2.TensorInfo),
    (messages.SignatureDef, meta_graph_pb2.SignatureDef),
    (messages.ModelSpec, model_pb2.ModelSpec),
    (messages.PredictRequest, predict_pb2.PredictRequest),
    (messages.PredictResponse, predict_pb2.PredictResponse),
    (messages.StatusProto, status_pb2.StatusProto),
    (messages.ModelVersionStatus, get_model_status_pb2.ModelVersionStatus),
    (messages.GetModelStatusRequest, get_model_status_pb2.GetModelStatusRequest),
    (messages.GetModelStatusResponse, get_model_status_pb2.GetModelStatusResponse),
    (messages.GetModelMetadataRequest, get_model_metadata_pb2.GetModelMetadataRequest),
    (messages.GetModelMetadataResponse, get_model_metadata_pb2.GetModelMetadataResponse),
    (messages.SignatureDefMap, get_model_metadata_pb2.SignatureDefMap),
]


def _describe(descriptor, seen=None):
    """Every declared field, recursively: (path, number, type, label, type name, oneof)."""
    seen = seen if seen is not None else set()
    if descriptor.full_name in seen:
        return []
    seen.add(descriptor.full_name)
    rows = []
    for field in descriptor.fields:
        type_name = (field.message_type or field.enum_type).full_name if (field.message_type or field.enum_type) else ""
        oneof = field.containing_oneof.name if field.containing_oneof else ""
        rows.append((f"{descriptor.full_name}.{field.name}", field.number, field.type, field.is_repeated, type_name, oneof))
        if field.message_type is not None:
            rows.extend(_describe(field.message_type, seen))
    return rows


@pytest.mark.parametrize("thin, official", PAIRS, ids=[pair[1].DESCRIPTOR.full_name for pair in PAIRS])
def test_every_thin_field_matches_the_official_field(thin, official):
    official_fields = {row[0]: row for row in _describe(official.DESCRIPTOR)}
    for row in _describe(thin.DESCRIPTOR):
        assert official_fields.get(row[0]) == row


def test_thin_enums_match_the_official_values():
    official_types = {v.name: v.number for v in tensor_pb2.TensorProto.DESCRIPTOR.fields_by_name["dtype"].enum_type.values}
    assert all(official_types[name] == number for name, number in messages.DATA_TYPE.items())
    code_enum = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type
    assert {v.number: v.name for v in code_enum.values if v.number <= 16} == messages.ERROR_CODE_NAME
    state_enum = get_model_status_pb2.ModelVersionStatus.State.DESCRIPTOR
    assert {v.number: v.name for v in state_enum.values} == messages.STATE_NAME


def _official_request(inputs, model, signature, version=None, label=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    return request


@pytest.mark.parametrize("pin", [{"version": 7}, {"label": "canary"}, {}])
def test_thin_request_is_byte_identical_to_the_official_one(pin):
    inputs = sessions.session_inputs([["a", ("b", "cart", 1700000000)], ["c"]], ["u1", None], [None, "red shoes"])
    inputs[contract.K] = np.array([3, 10], dtype=np.int32)
    inputs.update(sessions.exclude_inputs([["a"], None]))
    thin = requests.predict_request("recommend", inputs, "recommend", **pin)
    official = _official_request(inputs, "recommend", "recommend", **pin)
    assert thin.SerializeToString(deterministic=True) == official.SerializeToString(deterministic=True)
    assert predict_pb2.PredictRequest.FromString(thin.SerializeToString()) == official


@pytest.mark.parametrize(
    "values",
    [
        np.array([[1.5, -2.0], [0.0, np.inf]], dtype=np.float32),
        np.array([1, -(2**40)], dtype=np.int64),
        np.array([[3]], dtype=np.int32),
        np.array([0.25], dtype=np.float64),
        np.array([1.5, 2.0], dtype=np.float16),
        np.array([-1.5], dtype=np.float16),
        np.array([True, False]),
        np.array([["é", ""], ["x", "y"]], dtype=object),
        np.zeros((2, 0), dtype=np.int32),
    ],
    ids=["float32", "int64", "int32", "float64", "half", "one-half", "bool", "string", "empty"],
)
def test_tensors_round_trip_both_ways(values):
    thin = to_tensor_proto(values)
    official = tf.make_tensor_proto(values)
    assert tensor_pb2.TensorProto.FromString(thin.SerializeToString()) == official
    decoded = to_array(messages.TensorProto.FromString(official.SerializeToString()))
    expected = tf.make_ndarray(official)
    assert decoded.shape == expected.shape
    assert decoded.tolist() == expected.tolist()


def test_compact_official_tensors_decode_like_make_ndarray():
    official = tensor_pb2.TensorProto(dtype=1, float_val=[0.5])  # one value fills the shape
    official.tensor_shape.dim.add(size=2)
    official.tensor_shape.dim.add(size=3)
    decoded = to_array(messages.TensorProto.FromString(official.SerializeToString()))
    assert decoded.tolist() == tf.make_ndarray(official).tolist()


def test_official_predict_response_parses_in_the_thin_client():
    response = predict_pb2.PredictResponse()
    response.model_spec.name = "recommend"
    response.model_spec.version.value = 12
    response.outputs["item_ids"].CopyFrom(tf.make_tensor_proto(np.array([[b"i3", b"i9", b""]], dtype=object)))
    response.outputs["scores"].CopyFrom(tf.make_tensor_proto(np.array([[2.5, 1.0, -np.inf]], dtype=np.float32)))
    parsed = requests.prediction(messages.PredictResponse.FromString(response.SerializeToString()))
    assert (parsed.model, parsed.version) == ("recommend", 12)
    assert sessions.ranked_items(parsed.outputs["item_ids"][0], parsed.outputs["scores"][0]) == [("i3", 2.5), ("i9", 1.0)]


def test_official_status_response_parses_in_the_thin_client():
    response = get_model_status_pb2.GetModelStatusResponse()
    response.model_version_status.add(version=1, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    failed = response.model_version_status.add(version=2, state=get_model_status_pb2.ModelVersionStatus.END)
    failed.status.error_code = 3
    failed.status.error_message = "saved_model.pb is truncated"
    parsed = requests.version_statuses(messages.GetModelStatusResponse.FromString(response.SerializeToString()))
    assert [(s.version, s.state, s.error_code, s.error_message) for s in parsed] == [
        (2, "END", "INVALID_ARGUMENT", "saved_model.pb is truncated"),
        (1, "AVAILABLE", "OK", ""),
    ]


def test_official_metadata_response_parses_in_the_thin_client():
    signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    signature.inputs["k"].CopyFrom(meta_graph_pb2.TensorInfo(name="k:0", dtype=3))
    signature.inputs["k"].tensor_shape.dim.add(size=-1)
    signature.outputs["scores"].CopyFrom(meta_graph_pb2.TensorInfo(name="s:0", dtype=1))
    signature.outputs["scores"].tensor_shape.unknown_rank = True
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    signature_map.signature_def["recommend"].CopyFrom(signature)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = "recommend"
    response.metadata["signature_def"].Pack(signature_map)
    parsed = requests.signatures(messages.GetModelMetadataResponse.FromString(response.SerializeToString()))
    assert parsed == {
        "recommend": {
            "inputs": {"k": ("DT_INT32", [-1])},
            "outputs": {"scores": ("DT_FLOAT", None)},
            "method_name": "tensorflow/serving/predict",
        }
    }


def test_importing_the_thin_client_never_imports_tensorflow():
    code = (
        "import sys, serving.client; serving.client.RecommenderClient(['127.0.0.1:1']).close(); "
        "print('tensorflow' in sys.modules, 'tensorflow_serving' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
