"""TF Serving's REST JSON <-> TensorProto conversion, so a REST client sees the same shapes,
types and messages from the embedded server as from tensorflow_model_server.

The request is turned into a PredictRequest proto (as TF Serving does) and answered by the
same Predict path as gRPC; only the conversion lives here. Where each behaviour is defined
in TF Serving (all in tensorflow_serving/util/json_tensor.cc unless named otherwise):

- row format ``"instances"`` (a plain list for one input, else a list of objects with exactly the inputs as keys): json_tensor.cc FillTensorMapFromInstancesList
- columnar format ``"inputs"`` (a value for one input, else an object; keys beyond the inputs ignored): json_tensor.cc FillTensorMapFromInputsMap
- ``"signature_name"`` optional and a string, exactly one of ``instances``/``inputs``: json_tensor.cc FillPredictRequestFromJson
- JSON type checks per dtype (ints for integer types, any number for floats, ``{"b64": ...}`` for strings): json_tensor.cc AddValueToTensor, FillTensorProto
- the document parsed with NaN/Infinity allowed and anything after the first value ignored: json_tensor.cc ParseJson
- ``"predictions"`` for row requests, ``"outputs"`` for columnar ones, one output not in an object: json_tensor.cc MakeJsonFromTensors
- floats with six significant digits unless that does not round-trip, whole numbers with ``.0``, ``NaN``/``Infinity``: json_tensor.cc WriteDecimal
- strings as JSON strings, base64 ``{"b64": ...}`` for DT_STRING outputs whose name ends in ``_bytes``: json_tensor.cc IsNamedTensorBytes
- errors as ``{"error": "<message>"}``: json_tensor.cc MakeJsonFromStatus

One deliberate difference: a columnar value of the wrong type or shape is reported with the
input's name in front of TF Serving's message (``Failed to process input: k of 'inputs'
object. Error: ...``), as the row format already does; TF Serving's own text omits the name.
Whitespace of the answers differs (TF Serving pretty-prints); JSON clients cannot tell.

>>> format_decimal(0.2, np.float32), format_decimal(3.0, np.float32), format_decimal(float("-inf"), np.float32)
('0.2', '3.0', '-Infinity')
>>> format_decimal(1 / 3, np.float64)
'0.33333333333333331'
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping

import grpc
import numpy as np

from recsys_base.tf_compat import tensorflow
from serving.server.errors import RequestFailed

tf = tensorflow()
from tensorflow.core.framework import types_pb2  # noqa: E402

ROW = "instances"
COLUMNAR = "inputs"
SIGNATURE_KEY = "signature_name"
_RESPONSE_KEYS = {ROW: "predictions", COLUMNAR: "outputs"}
_BASE64_KEY = "b64"
_BYTES_SUFFIX = "_bytes"
_DEBUG_CHARS = 256  # TF Serving truncates JSON quoted in messages to this length

# A TensorShape has at most 254 dimensions, so no request nests deeper than that plus the
# object, the "instances" list and an instance object around a tensor. Deeper documents are
# refused before anything walks them: Python's parser and the recursive walks below (and
# json.dumps quoting a value in a message) would run out of stack and drop the connection.
_MAX_DEPTH = 254 + 3

_INT32_TYPES = (types_pb2.DT_INT32, types_pb2.DT_INT16, types_pb2.DT_INT8, types_pb2.DT_UINT8)


def _integer_in(low: int, high: int):
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and low <= value < high


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# dtype -> (TensorProto field, accepts(JSON value)). bool is an int in Python but never a JSON number.
_FIELDS = {
    types_pb2.DT_FLOAT: ("float_val", _is_number),
    types_pb2.DT_DOUBLE: ("double_val", _is_number),
    **{dtype: ("int_val", _integer_in(-(2**31), 2**31)) for dtype in _INT32_TYPES},
    types_pb2.DT_INT64: ("int64_val", _integer_in(-(2**63), 2**63)),
    types_pb2.DT_BOOL: ("bool_val", lambda value: isinstance(value, bool)),
    types_pb2.DT_UINT32: ("uint32_val", _integer_in(0, 2**32)),
    types_pb2.DT_UINT64: ("uint64_val", _integer_in(0, 2**64)),
    types_pb2.DT_STRING: ("string_val", lambda value: isinstance(value, str)),
}


def _invalid(message: str) -> RequestFailed:
    return RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, message)


def _status_text(failure: RequestFailed) -> str:
    """absl's Status::ToString(), which TF Serving embeds in wrapped messages."""
    return f"{failure.code.name}: {failure.message}"


def _debug(value) -> str:
    return json.dumps(value, ensure_ascii=False)[:_DEBUG_CHARS]


def _type_name(value) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return str(value)
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def _dtype_string(dtype: int) -> str:
    """TensorFlow's DataTypeString: DT_FLOAT -> 'float'."""
    return types_pb2.DataType.Name(dtype)[len("DT_") :].lower() if dtype in types_pb2.DataType.values() else str(dtype)


def _is_base64_object(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(_BASE64_KEY), str)


def _first_member_wins(pairs):
    # rapidjson keeps duplicate keys and looks up the first; a dict would keep the last.
    members = {}
    for key, value in pairs:
        members.setdefault(key, value)
    return members


def _parse(body: bytes) -> dict:
    if not body:
        raise _invalid("JSON Parse error: The document is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _invalid(f"JSON Parse error: Invalid encoding in string. at offset: {error.start}") from None
    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        document, _ = json.JSONDecoder(object_pairs_hook=_first_member_wins).raw_decode(text, start)
    except json.JSONDecodeError as error:
        raise _invalid(f"JSON Parse error: {error.msg} at offset: {error.pos}") from None
    except ValueError as error:  # an integer of more digits than Python converts (4300)
        raise _invalid(f"JSON Parse error: {error}") from None
    except RecursionError:
        raise _invalid(f"JSON Parse error: nested deeper than {_MAX_DEPTH} levels (a tensor has at most 254 dimensions)") from None
    if _deeper_than(document, _MAX_DEPTH):
        raise _invalid(f"JSON Parse error: nested deeper than {_MAX_DEPTH} levels (a tensor has at most 254 dimensions)")
    if not isinstance(document, dict):
        raise _invalid(f"JSON Value: {_debug(document)} Is not object")
    return document


def _deeper_than(document, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels (walked without recursion)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return False


def _dense_shape(value) -> list[int]:
    """The shape a nested list claims, read along its first elements."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value, level: int, shape: list[int], dtype: int, out: list) -> None:
    """Appends ``value``'s leaves to ``out`` after checking they form a dense ``shape``."""
    if not isinstance(value, list):
        if level != len(shape):
            raise _invalid(f"JSON Value: {_debug(value)} found at incorrect level: {level + 1} in the JSON DOM. Expected at level: {len(shape)}")
        if isinstance(value, dict) and dtype == types_pb2.DT_STRING:
            out.append(_decode_base64(value))
            return
        field = _FIELDS.get(dtype)
        if field is None:
            raise RequestFailed(grpc.StatusCode.UNIMPLEMENTED, f"Conversion of JSON Value: {_debug(value)} to type: {_dtype_string(dtype)}")
        if not field[1](value):
            raise _invalid(f"JSON Value: {_debug(value)} Type: {_type_name(value)} is not of expected type: {_dtype_string(dtype)}")
        out.append(value.encode("utf-8", "surrogatepass") if dtype == types_pb2.DT_STRING else value)
        return
    if level >= len(shape):
        raise _invalid(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise _invalid(f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: {shape[level]}")
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def _decode_base64(value) -> bytes:
    if not _is_base64_object(value):
        raise _invalid(f"JSON Value: {_debug(value)} not formatted correctly for base64 data")
    text = value[_BASE64_KEY]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("Unable to base64 decode") from None


def _tensor(tensor, dtype: int, shape: list[int], values: list) -> None:
    tensor.dtype = dtype
    for size in shape:
        tensor.tensor_shape.dim.add(size=size)
    if values:  # none: an empty tensor, whose dtype may have no JSON conversion at all
        getattr(tensor, _FIELDS[dtype][0]).extend(values)


def _from_instances(instances: list, dtypes: Mapping[str, int], inputs) -> None:
    if not isinstance(instances[0], dict) and len(dtypes) > 1:
        raise _invalid("instances is a plain list, but expecting list of objects as multiple input tensors required as per tensorinfo_map")

    def is_named(item) -> bool:
        return isinstance(item, dict) and not _is_base64_object(item)

    named = is_named(instances[0])
    values: dict[str, list] = {}
    shapes: dict[str, tuple[list[int], int]] = {}

    def add(item, name: str) -> None:
        if name not in dtypes:
            raise _invalid(f"JSON object: does not have named input: {name}")
        shape, out = _dense_shape(item), []
        _fill(item, 0, shape, dtypes[name], out)
        if name not in shapes:
            shapes[name] = (shape, len(out))
        elif shapes[name][1] != len(out):
            raise _invalid(f"Expecting tensor size: {shapes[name][1]} but got: {len(out)}")
        elif shapes[name][0] != shape:
            raise _invalid(f"Expecting shape [{','.join(map(str, shapes[name][0]))}] but got: [{','.join(map(str, shape))}]")
        values.setdefault(name, []).extend(out)

    for index, item in enumerate(instances):
        if named:
            if not is_named(item):
                raise _invalid(f"Expecting object but got list at item {index} of input list")
            for name, value in item.items():
                try:
                    add(value, name)
                except RequestFailed as failure:
                    raise _invalid(f"Failed to process element: {index} key: {name} of 'instances' list. Error: {_status_text(failure)}") from None
            if set(item) != set(dtypes):
                raise _invalid(
                    f"Failed to process element: {index} of 'instances' list. JSON object: {_debug(item)} keys must be equal to: {','.join(sorted(dtypes))}"
                )
        else:
            if is_named(item):
                raise _invalid(f"Expecting value/list but got object at item {index} of input list")
            try:
                add(item, next(iter(dtypes)))
            except RequestFailed as failure:
                raise _invalid(f"Failed to process element: {index} of 'instances' list. Error: {_status_text(failure)}") from None
    for name, out in values.items():
        _tensor(inputs[name], dtypes[name], [len(instances)] + shapes[name][0], out)


def _from_inputs(value, dtypes: Mapping[str, int], inputs) -> None:
    if not isinstance(value, dict) or _is_base64_object(value):
        if len(dtypes) > 1:
            raise _invalid("inputs is a plain value/list, but expecting an object as multiple input tensors required as per tensorinfo_map")
        items = [(next(iter(dtypes)), value)]
    else:
        missing = [name for name in sorted(dtypes) if name not in value]
        if missing:
            raise _invalid(f"Missing named input: {missing[0]} in 'inputs' object.")
        items = [(name, value[name]) for name in sorted(dtypes)]
    for name, item in items:
        shape, out = _dense_shape(item), []
        try:
            _fill(item, 0, shape, dtypes[name], out)
        except RequestFailed as failure:
            raise RequestFailed(failure.code, f"Failed to process input: {name} of 'inputs' object. Error: {_status_text(failure)}") from None
        _tensor(inputs[name], dtypes[name], shape, out)


def fill_predict_request(body: bytes, input_dtypes: Callable[[str], Mapping[str, int]], request) -> str:
    """Parses a REST predict body into ``request`` (a PredictRequest whose model_spec names
    the model); returns its format, :data:`ROW` or :data:`COLUMNAR`.

    ``input_dtypes(signature_name)`` gives the signature's input names -> DataType enums (it
    resolves the model, so an unknown model fails before the body's tensors are read).
    """
    document = _parse(body)
    signature = document.get(SIGNATURE_KEY, "")
    if not isinstance(signature, str):
        raise _invalid(f"JSON Value: {_debug(document)} not formatted correctly. 'signature_name' key must be a string value.")
    request.model_spec.signature_name = signature
    dtypes = input_dtypes(signature)
    if not dtypes:
        raise _invalid(f"Failed to get input map for signature: {signature or 'DEFAULT'}")
    if ROW in document and COLUMNAR in document:
        raise _invalid(f"JSON Value: {_debug(document)} Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ")
    if ROW in document:
        if not isinstance(document[ROW], list):
            raise _invalid(f"JSON Value: {_debug(document)} Expecting 'instances' to be an list/array")
        if not document[ROW]:
            raise _invalid(f"JSON Value: {_debug(document)} No values in 'instances' array")
        _from_instances(document[ROW], dtypes, request.inputs)
        return ROW
    if COLUMNAR in document:
        _from_inputs(document[COLUMNAR], dtypes, request.inputs)
        return COLUMNAR
    raise _invalid("Missing 'inputs' or 'instances' key")


def format_decimal(value: float, dtype) -> str:
    """A float as TF Serving writes it (``dtype``: np.float32 or np.float64)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:.6g}"
    if dtype(float(text)) != dtype(value):
        text = f"{value:.{9 if dtype is np.float32 else 17}g}"  # max_digits10
    return text if "." in text or "e" in text else text + ".0"


def _scalar(value, dtype: int, as_bytes: bool) -> str:
    if dtype == types_pb2.DT_STRING:
        if as_bytes:
            return json.dumps({_BASE64_KEY: base64.b64encode(value).decode()})
        # Bytes go out as they are (rapidjson does not check UTF-8); see encode_answer().
        return json.dumps(value.decode("utf-8", "surrogateescape"), ensure_ascii=False)
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        return format_decimal(float(value), np.float32 if dtype == types_pb2.DT_FLOAT else np.float64)
    if dtype == types_pb2.DT_BOOL:
        return "true" if value else "false"
    if dtype in _FIELDS:
        return str(int(value))
    raise _invalid(f"Failed to write JSON value for tensor type: {_dtype_string(dtype)}")


def _values(value, dtype: int, as_bytes: bool) -> str:
    """A (nested) JSON list of an array's values; a scalar or 0-d array as a bare value."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _scalar(value[()], dtype, as_bytes)
        return "[" + ", ".join(_values(part, dtype, as_bytes) for part in value) + "]"
    return _scalar(value, dtype, as_bytes)


def predict_answer(outputs: Mapping, request_format: str) -> str:
    """The JSON body answering a predict request of ``request_format`` with ``outputs``
    (PredictResponse.outputs: name -> TensorProto)."""
    if not outputs:
        raise _invalid("Cannot convert empty tensor map to JSON")
    tensors = {name: (tf.make_ndarray(proto), proto.dtype) for name, proto in sorted(outputs.items())}
    single = len(tensors) == 1

    def named(parts: dict[str, str]) -> str:
        return next(iter(parts.values())) if single else "{" + ", ".join(f"{json.dumps(name)}: {text}" for name, text in parts.items()) + "}"

    def as_bytes(name: str, dtype: int) -> bool:
        return dtype == types_pb2.DT_STRING and name.endswith(_BYTES_SUFFIX)

    if request_format == COLUMNAR:
        body = named({name: _values(array, dtype, as_bytes(name, dtype)) for name, (array, dtype) in tensors.items()})
    else:
        batch = None
        for name, (array, _) in tensors.items():
            if array.ndim == 0:
                raise _invalid(f"Tensor name: {name} has no shape information ")
            if batch is not None and array.shape[0] != batch:
                raise _invalid(f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: {batch}")
            batch = array.shape[0]
        rows = [named({name: _values(array[row], dtype, as_bytes(name, dtype)) for name, (array, dtype) in tensors.items()}) for row in range(batch)]
        body = "[" + ", ".join(rows) + "]"
    return f'{{"{_RESPONSE_KEYS[request_format]}": {body}}}'


def error_answer(message: str) -> str:
    """The JSON body of a failed REST call: ``{"error": ...}``, indented as TF Serving's."""
    return json.dumps({"error": message}, indent=4, ensure_ascii=False)


def encode_answer(text: str) -> bytes:
    """A JSON body's bytes: string outputs that were not UTF-8 go out byte for byte, as TF Serving's."""
    return text.encode("utf-8", "surrogateescape")
