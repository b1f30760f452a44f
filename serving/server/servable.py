"""One loaded SavedModel version: signature lookup, request validation, execution."""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np

from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.server.errors import RequestFailed, from_tf_error
from serving.server.limits import MAX_INPUT_ELEMENTS

tf = tensorflow()
from tensorflow.core.framework import types_pb2  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402


def _dtype_name(number: int) -> str:
    return types_pb2.DataType.Name(number) if number in types_pb2.DataType.values() else str(number)


def _check_batch(arrays: dict[str, np.ndarray], where: str) -> None:
    """Every input of a contract signature has the batch first; rows must agree and exist.

    Without this a mismatched request is either answered with rows that belong to no one
    or, with server-side batching, shifts the rows of the requests merged with it.
    """
    rows = {name: array.shape[0] for name, array in arrays.items() if array.ndim >= 1}
    if len(set(rows.values())) > 1:
        raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, f"inputs disagree on the batch size (dimension 0): {dict(sorted(rows.items()))} for {where}")
    if rows and next(iter(rows.values())) == 0:
        raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, f"empty batch: every input has 0 rows for {where}")


def _check_row_lengths(arrays: dict[str, np.ndarray], where: str) -> None:
    """The contract's row lengths (``contract.ROW_LENGTHS``) checked per request, before batching.

    Inside a batch a row's inputs are padded to the batch's widths, so the models' own
    checks (lengths within the width, event types as wide as item ids) pass or fail
    depending on the neighbours; checked here, a request gets the same answer alone or
    batched, and a malformed one never reaches (and fails) a batch of good ones.
    """
    groups: dict[str, list[str]] = {}
    for name, length_name in contract.ROW_LENGTHS.items():
        if name in arrays and length_name in arrays:
            groups.setdefault(length_name, []).append(name)
    for length_name, names in groups.items():
        shapes = {name: list(arrays[name].shape) for name in names}
        if len({tuple(shape) for shape in shapes.values()}) > 1:
            raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, f"inputs {sorted(names)} need one shape, got {shapes} for {where}")
        shape, lengths = arrays[names[0]].shape, arrays[length_name]
        if len(shape) != 2 or shape[1] < 1:
            raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT,
                                f"{names[0]} must be [rows, width] with width >= 1 (pad with \"\" and set {length_name}), got {list(shape)}")
        if lengths.ndim != 1 or ((lengths < 0) | (lengths > shape[1])).any():
            raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT,
                                f"{length_name} must hold one count in 0..{shape[1]} (the width of {names[0]}) per row, got {lengths.tolist()}")
    if contract.K in arrays and (arrays[contract.K] < 1).any():
        raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, f"{contract.K} must be at least 1, got {arrays[contract.K].tolist()}")


class _FlatCaller:
    """Calls a restored signature function with its inputs already in flat order.

    The public call (``function(**tensors)``) binds the keyword arguments to the
    function's structured signature and casts each tensor against its spec on every
    request: about half of the per-request Python time around a small model (see
    ``benchmarks/serving_benchmark.py``). A signature takes keyword arguments only, which
    ``tf.nest`` flattens in sorted key order, and its captured inputs (variables, tables)
    are fixed once loaded, so both are worked out here once, with each input's dtype
    (which an empty string tensor needs: numpy cannot tell it from a float one).
    """

    def __init__(self, function):
        self._function = function
        specs = function.structured_input_signature[1]
        self._inputs = [(name, specs[name].dtype) for name in tf.nest.flatten({name: name for name in specs})]
        self._captured = function.captured_inputs

    def __call__(self, arrays: dict[str, np.ndarray]) -> dict:
        # _call_flat is the step the public __call__ ends in once it has bound and checked the inputs.
        return self._function._call_flat([tf.constant(arrays[name], dtype) for name, dtype in self._inputs], self._captured)


class Servable:
    """A SavedModel version ready to answer Predict for any of its signatures.

    Usage::

        servable = Servable("recommend", 3, "saved_models/recommend/3")
        outputs = servable.run("serving_default", {"k": np.array([5], np.int32), ...})
    """

    def __init__(self, name: str, version: int, path: str | Path, max_input_elements: int = MAX_INPUT_ELEMENTS):
        self.name = name
        self.max_input_elements = max_input_elements
        self.version = version
        self.path = Path(path)
        meta_graph = saved_model_pb2.SavedModel.FromString((self.path / "saved_model.pb").read_bytes()).meta_graphs[0]
        self.signature_defs = dict(meta_graph.signature_def)
        self._loaded = tf.saved_model.load(str(self.path))
        self._functions = dict(self._loaded.signatures)
        self._callers = {name: _FlatCaller(function) for name, function in self._functions.items()}
        self.batcher = None  # set by the manager when batching is on
        self._in_flight = 0
        self._idle = threading.Condition()

    def signature_def(self, signature_name: str):
        """The SignatureDef called ``signature_name`` ('' means serving_default)."""
        name = signature_name or contract.DEFAULT_SIGNATURE
        if name not in self._functions or name not in self.signature_defs:
            raise RequestFailed(
                grpc.StatusCode.NOT_FOUND,
                f"signature {name!r} not found in model {self.name!r} version {self.version}; "
                f"it has {sorted(self._functions)}",
            )
        return self.signature_defs[name]

    def decode_inputs(self, signature_name: str, tensors: dict) -> dict[str, np.ndarray]:
        """Request TensorProtos checked against the signature and decoded to numpy.

        Missing or unexpected inputs, wrong dtypes, ranks or fixed dimensions raise
        INVALID_ARGUMENT naming the input.
        """
        signature = self.signature_def(signature_name)
        where = f"signature {signature_name or contract.DEFAULT_SIGNATURE!r} of model {self.name!r}"
        missing = sorted(set(signature.inputs) - set(tensors))
        extra = sorted(set(tensors) - set(signature.inputs))
        if missing or extra:
            problems = ([f"missing input(s) {missing}"] if missing else []) + ([f"unexpected input(s) {extra}"] if extra else [])
            raise RequestFailed(
                grpc.StatusCode.INVALID_ARGUMENT, f"{' and '.join(problems)}: {where} takes {sorted(signature.inputs)}"
            )
        arrays = {}
        for name, tensor in tensors.items():
            info = signature.inputs[name]
            if tensor.dtype != info.dtype:
                raise RequestFailed(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input {name!r} has dtype {_dtype_name(tensor.dtype)}, {where} expects {_dtype_name(info.dtype)}",
                )
            shape = [dim.size for dim in tensor.tensor_shape.dim]
            if any(size < 0 for size in shape):
                raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, f"input {name!r} has a negative dimension in shape {shape}")
            if math.prod(shape) > self.max_input_elements:
                # TF's compact encoding lets one value fill any declared shape: cap what a tiny message can make us allocate.
                raise RequestFailed(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"input {name!r} declares shape {shape} ({math.prod(shape)} elements); this server decodes at most "
                    f"{self.max_input_elements} per input (max_input_elements)",
                )
            if not info.tensor_shape.unknown_rank:
                expected = [dim.size for dim in info.tensor_shape.dim]
                if len(shape) != len(expected) or any(e >= 0 and e != s for e, s in zip(expected, shape)):
                    raise RequestFailed(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"input {name!r} has shape {shape}, {where} expects {expected} (-1: any size)",
                    )
            try:
                arrays[name] = tf.make_ndarray(tensor)
            except (ValueError, TypeError) as error:
                raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, f"input {name!r} cannot be decoded: {error}") from None
        _check_batch(arrays, where)
        _check_row_lengths(arrays, where)
        return arrays

    def run(self, signature_name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs the signature on already validated inputs; model errors become RequestFailed."""
        try:
            outputs = self._callers[signature_name or contract.DEFAULT_SIGNATURE](arrays)
        except tf.errors.OpError as error:
            raise from_tf_error(error) from None
        return {name: value.numpy() for name, value in outputs.items()}

    @contextmanager
    def in_use(self):
        """Marks a request in flight so unloading waits for it."""
        with self._idle:
            self._in_flight += 1
        try:
            yield self
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Waits until no request uses this version; False if ``timeout_s`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout_s)
