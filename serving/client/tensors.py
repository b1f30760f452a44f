"""numpy arrays <-> TensorProto, encoded exactly as ``tf.make_tensor_proto`` does.

Numeric tensors (but bools) of more than one element travel as little-endian ``tensor_content``
bytes, single values in their ``*_val`` field and strings as ``string_val``, so a request
built here is byte-identical to one built with TensorFlow.
Decoding also accepts the ``*_val`` fields and TF's "one value fills the shape" rule,
which other TF Serving clients and servers use.
"""

from __future__ import annotations

import numpy as np

from serving.client import messages

_NUMPY_TO_DTYPE = {
    np.dtype(np.float32): "DT_FLOAT",
    np.dtype(np.float64): "DT_DOUBLE",
    np.dtype(np.int32): "DT_INT32",
    np.dtype(np.int64): "DT_INT64",
    np.dtype(np.uint8): "DT_UINT8",
    np.dtype(np.int16): "DT_INT16",
    np.dtype(np.int8): "DT_INT8",
    np.dtype(np.uint16): "DT_UINT16",
    np.dtype(np.uint32): "DT_UINT32",
    np.dtype(np.uint64): "DT_UINT64",
    np.dtype(np.float16): "DT_HALF",
    np.dtype(np.bool_): "DT_BOOL",
}
_DTYPE_TO_NUMPY = {name: dtype for dtype, name in _NUMPY_TO_DTYPE.items()}
# Where each dtype's values go when not packed into tensor_content.
_VALUE_FIELD = {
    "DT_FLOAT": "float_val",
    "DT_DOUBLE": "double_val",
    "DT_INT32": "int_val",
    "DT_INT16": "int_val",
    "DT_INT8": "int_val",
    "DT_UINT8": "int_val",
    "DT_UINT16": "int_val",
    "DT_HALF": "half_val",
    "DT_INT64": "int64_val",
    "DT_BOOL": "bool_val",
    "DT_UINT32": "uint32_val",
    "DT_UINT64": "uint64_val",
}


def to_tensor_proto(values, dtype: str | None = None):
    """A TensorProto for ``values`` (array-like; str/bytes become DT_STRING).

    ``dtype`` (a TF DataType name such as ``"DT_INT32"``) forces the numeric type;
    Python ints otherwise become DT_INT64 as in numpy.
    """
    array = np.asarray(values)
    proto = messages.TensorProto()
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if dtype == "DT_STRING" or array.dtype.kind in "USO":
        proto.dtype = messages.DATA_TYPE["DT_STRING"]
        proto.string_val.extend(_to_bytes(value) for value in array.reshape(-1).tolist())
        return proto
    if dtype is not None:
        array = array.astype(_DTYPE_TO_NUMPY[dtype])
    if array.dtype not in _NUMPY_TO_DTYPE:
        raise ValueError(f"cannot send numpy dtype {array.dtype} to TF Serving")
    proto.dtype = messages.DATA_TYPE[_NUMPY_TO_DTYPE[array.dtype]]
    if array.size > 1 and array.dtype != np.bool_:  # TF never packs bools
        proto.tensor_content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    elif array.dtype == np.float16:
        proto.half_val.extend(array.reshape(-1).view(np.uint16).tolist())
    else:
        getattr(proto, _VALUE_FIELD[_NUMPY_TO_DTYPE[array.dtype]]).extend(array.reshape(-1).tolist())
    return proto


def _to_bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ValueError(f"string tensors take str or bytes, got {type(value).__name__}: {value!r}")


def to_array(proto) -> np.ndarray:
    """The numpy array a TensorProto holds (strings as an object array of bytes)."""
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    dtype_name = messages.DATA_TYPE_NAME.get(proto.dtype, str(proto.dtype))
    if dtype_name == "DT_STRING":
        return _fill(np.array(list(proto.string_val), dtype=object), shape, dtype_name)
    if dtype_name not in _DTYPE_TO_NUMPY:
        raise ValueError(f"cannot decode TensorProto of dtype {dtype_name}")
    dtype = _DTYPE_TO_NUMPY[dtype_name]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    values = getattr(proto, _VALUE_FIELD[dtype_name])
    if dtype_name == "DT_HALF":
        flat = np.array(list(values), dtype=np.uint16).view(np.float16)
    else:
        flat = np.array(list(values), dtype=dtype)
    return _fill(flat, shape, dtype_name)


def _fill(flat: np.ndarray, shape: tuple, dtype_name: str) -> np.ndarray:
    size = int(np.prod(shape)) if shape else 1
    if flat.size == size:
        return flat.reshape(shape)
    if flat.size and flat.size < size:
        # TensorFlow's compact form: the last value repeats to fill the shape.
        padded = np.concatenate([flat, np.repeat(flat[-1:], size - flat.size)])
        return padded.reshape(shape)
    if size == 0:
        return flat.reshape(shape)
    raise ValueError(f"{dtype_name} TensorProto has {flat.size} values for shape {list(shape)}")
