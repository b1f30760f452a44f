"""TF Serving's request/response messages, declared without TensorFlow.

Same proto packages, message names and field numbers as ``tensorflow/core/framework``,
``tensorflow_serving/apis`` and ``xla/tsl/protobuf/error_codes.proto``, so the bytes on
the wire are interchangeable with the official ``*_pb2`` classes (the contract tests
check this field by field). Only the fields this project sends or reads are declared;
anything else a server sends is kept as unknown fields. The classes live in a private
descriptor pool, so they coexist with the official modules in one process.

Usage::

    from serving.client import messages
    request = messages.PredictRequest()
    request.model_spec.name = "recommend"
"""

from __future__ import annotations

from serving.contract.protodef import ANY_FILE, WRAPPERS_FILE, add_file, enum, message, message_class, new_pool

_DATA_TYPES = [
    ("DT_INVALID", 0), ("DT_FLOAT", 1), ("DT_DOUBLE", 2), ("DT_INT32", 3), ("DT_UINT8", 4),
    ("DT_INT16", 5), ("DT_INT8", 6), ("DT_STRING", 7), ("DT_COMPLEX64", 8), ("DT_INT64", 9),
    ("DT_BOOL", 10), ("DT_BFLOAT16", 14), ("DT_UINT16", 17), ("DT_COMPLEX128", 18),
    ("DT_HALF", 19), ("DT_UINT32", 22), ("DT_UINT64", 23),
]  # fmt: skip
_ERROR_CODES = [
    ("OK", 0), ("CANCELLED", 1), ("UNKNOWN", 2), ("INVALID_ARGUMENT", 3), ("DEADLINE_EXCEEDED", 4),
    ("NOT_FOUND", 5), ("ALREADY_EXISTS", 6), ("PERMISSION_DENIED", 7), ("UNAUTHENTICATED", 16),
    ("RESOURCE_EXHAUSTED", 8), ("FAILED_PRECONDITION", 9), ("ABORTED", 10), ("OUT_OF_RANGE", 11),
    ("UNIMPLEMENTED", 12), ("INTERNAL", 13), ("UNAVAILABLE", 14), ("DATA_LOSS", 15),
]  # fmt: skip
MODEL_VERSION_STATES = [("UNKNOWN", 0), ("START", 10), ("LOADING", 20), ("AVAILABLE", 30), ("UNLOADING", 40), ("END", 50)]

POOL = new_pool()
add_file(POOL, "thin/tensorflow/error_codes.proto", "tensorflow.error", [], enums=[enum("Code", _ERROR_CODES)])
add_file(
    POOL,
    "thin/tensorflow/framework.proto",
    "tensorflow",
    [
        message(
            "TensorShapeProto",
            [("dim", 2, "repeated .tensorflow.TensorShapeProto.Dim"), ("unknown_rank", 3, "bool")],
            nested=[message("Dim", [("size", 1, "int64"), ("name", 2, "string")])],
        ),
        message(
            "TensorProto",
            [
                ("dtype", 1, "enum .tensorflow.DataType"),
                ("tensor_shape", 2, ".tensorflow.TensorShapeProto"),
                ("version_number", 3, "int32"),
                ("tensor_content", 4, "bytes"),
                ("half_val", 13, "repeated int32"),
                ("float_val", 5, "repeated float"),
                ("double_val", 6, "repeated double"),
                ("int_val", 7, "repeated int32"),
                ("string_val", 8, "repeated bytes"),
                ("scomplex_val", 9, "repeated float"),
                ("int64_val", 10, "repeated int64"),
                ("bool_val", 11, "repeated bool"),
                ("dcomplex_val", 12, "repeated double"),
                ("uint32_val", 16, "repeated uint32"),
                ("uint64_val", 17, "repeated uint64"),
            ],
        ),
        message(
            "TensorInfo",
            [
                ("name", 1, "string", "encoding"),
                ("dtype", 2, "enum .tensorflow.DataType"),
                ("tensor_shape", 3, ".tensorflow.TensorShapeProto"),
            ],
        ),
        message(
            "SignatureDef",
            [
                ("inputs", 1, "map string .tensorflow.TensorInfo"),
                ("outputs", 2, "map string .tensorflow.TensorInfo"),
                ("method_name", 3, "string"),
                ("defaults", 4, "map string .tensorflow.TensorProto"),
            ],
        ),
    ],
    enums=[enum("DataType", _DATA_TYPES)],
)
add_file(
    POOL,
    "thin/tensorflow_serving/apis.proto",
    "tensorflow.serving",
    [
        message(
            "ModelSpec",
            [
                ("name", 1, "string"),
                ("version", 2, ".google.protobuf.Int64Value", "version_choice"),
                ("version_label", 4, "string", "version_choice"),
                ("signature_name", 3, "string"),
            ],
        ),
        message(
            "PredictRequest",
            [
                ("model_spec", 1, ".tensorflow.serving.ModelSpec"),
                ("inputs", 2, "map string .tensorflow.TensorProto"),
                ("output_filter", 3, "repeated string"),
            ],
        ),
        message(
            "PredictResponse",
            [
                ("model_spec", 2, ".tensorflow.serving.ModelSpec"),
                ("outputs", 1, "map string .tensorflow.TensorProto"),
            ],
        ),
        message(
            "StatusProto",
            [("error_code", 1, "enum .tensorflow.error.Code"), ("error_message", 2, "string")],
        ),
        message(
            "ModelVersionStatus",
            [
                ("version", 1, "int64"),
                ("state", 2, "enum .tensorflow.serving.ModelVersionStatus.State"),
                ("status", 3, ".tensorflow.serving.StatusProto"),
            ],
            enums=[enum("State", MODEL_VERSION_STATES)],
        ),
        message("GetModelStatusRequest", [("model_spec", 1, ".tensorflow.serving.ModelSpec")]),
        message("GetModelStatusResponse", [("model_version_status", 1, "repeated .tensorflow.serving.ModelVersionStatus")]),
        message(
            "GetModelMetadataRequest",
            [("model_spec", 1, ".tensorflow.serving.ModelSpec"), ("metadata_field", 2, "repeated string")],
        ),
        message(
            "GetModelMetadataResponse",
            [
                ("model_spec", 1, ".tensorflow.serving.ModelSpec"),
                ("metadata", 2, "map string .google.protobuf.Any"),
            ],
        ),
        message("SignatureDefMap", [("signature_def", 1, "map string .tensorflow.SignatureDef")]),
    ],
    deps=[WRAPPERS_FILE, ANY_FILE, "thin/tensorflow/error_codes.proto", "thin/tensorflow/framework.proto"],
)

TensorShapeProto = message_class(POOL, "tensorflow.TensorShapeProto")
TensorProto = message_class(POOL, "tensorflow.TensorProto")
TensorInfo = message_class(POOL, "tensorflow.TensorInfo")
SignatureDef = message_class(POOL, "tensorflow.SignatureDef")
ModelSpec = message_class(POOL, "tensorflow.serving.ModelSpec")
PredictRequest = message_class(POOL, "tensorflow.serving.PredictRequest")
PredictResponse = message_class(POOL, "tensorflow.serving.PredictResponse")
StatusProto = message_class(POOL, "tensorflow.serving.StatusProto")
ModelVersionStatus = message_class(POOL, "tensorflow.serving.ModelVersionStatus")
GetModelStatusRequest = message_class(POOL, "tensorflow.serving.GetModelStatusRequest")
GetModelStatusResponse = message_class(POOL, "tensorflow.serving.GetModelStatusResponse")
GetModelMetadataRequest = message_class(POOL, "tensorflow.serving.GetModelMetadataRequest")
GetModelMetadataResponse = message_class(POOL, "tensorflow.serving.GetModelMetadataResponse")
SignatureDefMap = message_class(POOL, "tensorflow.serving.SignatureDefMap")

DATA_TYPE = dict(_DATA_TYPES)
DATA_TYPE_NAME = {number: name for name, number in _DATA_TYPES}
STATE_NAME = {number: name for name, number in MODEL_VERSION_STATES}
ERROR_CODE_NAME = {number: name for name, number in _ERROR_CODES}
SIGNATURE_DEF_MAP_TYPE_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
