"""TF Serving's gRPC services on the official servicer base classes."""

from __future__ import annotations

import ipaddress
import logging
import time

import grpc

from recsys_base.errors import ConfigError
from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.server.errors import RequestFailed
from serving.server.manager import ModelManager, model_entries
from serving.server.metrics import GRPC, RUNTIME, micros_since, model_label

tf = tensorflow()
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

log = logging.getLogger(__name__)
_STATES = {name: get_model_status_pb2.ModelVersionStatus.State.Value(name) for name in ("LOADING", "AVAILABLE", "UNLOADING", "END")}


def _spec(model_spec) -> tuple[str, int | None, str | None]:
    version = model_spec.version.value if model_spec.HasField("version") else None
    return model_spec.name, version, model_spec.version_label or None


# -- the request paths both transports share (gRPC below, REST in serving.server.http) ------


def predict(manager: ModelManager, metrics, request) -> predict_pb2.PredictResponse:
    """Answers a PredictRequest: resolves the servable, validates the inputs, runs them
    (through the batcher when batching is on) and records TF Serving's runtime_latency."""
    name, version, label = _spec(request.model_spec)
    servable = manager.servable(name, version, label)
    signature = request.model_spec.signature_name or contract.DEFAULT_SIGNATURE
    with servable.in_use():
        arrays = servable.decode_inputs(signature, request.inputs)
        unknown = sorted(set(request.output_filter) - set(servable.signature_def(signature).outputs))
        if unknown:
            raise RequestFailed(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output_filter names unknown output(s) {unknown}; signature {signature!r} has {sorted(servable.signature_def(signature).outputs)}",
            )
        batcher = servable.batcher
        start = time.perf_counter()
        outputs = batcher.submit(signature, arrays) if batcher is not None else servable.run(signature, arrays)
        # The servable resolved, so ``name`` is served: no model_label lookup on the hot path.
        metrics.runtime_latency.add(name, "Predict", RUNTIME, value=micros_since(start))
    response = predict_pb2.PredictResponse()
    response.model_spec.name = name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = signature
    for output, value in outputs.items():
        if not request.output_filter or output in request.output_filter:
            response.outputs[output].CopyFrom(tf.make_tensor_proto(value))
    return response


def model_metadata(manager: ModelManager, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """Answers a GetModelMetadataRequest: the servable's SignatureDefs (the only metadata served)."""
    fields = list(request.metadata_field)
    if fields != ["signature_def"]:
        raise RequestFailed(
            grpc.StatusCode.INVALID_ARGUMENT, f"metadata_field must be ['signature_def'] (the only metadata served), got {fields}"
        )
    name, version, label = _spec(request.model_spec)
    servable = manager.servable(name, version, label)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for signature, definition in servable.signature_defs.items():
        signature_map.signature_def[signature].CopyFrom(definition)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = name
    response.model_spec.version.value = servable.version
    response.metadata["signature_def"].Pack(signature_map)
    return response


def model_status(manager: ModelManager, request) -> get_model_status_pb2.GetModelStatusResponse:
    """Answers a GetModelStatusRequest: the state of every version of the model, or of the version the spec names.

    A ``version_label`` is ignored, as TF Serving's get_model_status_impl.cc reads only ``version``.
    """
    response = get_model_status_pb2.GetModelStatusResponse()
    name, version, _ = _spec(request.model_spec)
    for state in manager.statuses(name, version):
        status = response.model_version_status.add(version=state.version, state=_STATES[state.state])
        status.status.error_code = state.error_code.value[0]
        status.status.error_message = state.error_message
    return response


class _Answering:
    """Turns failures into gRPC statuses; for ``api`` (Predict, Classify, Regress: the calls
    TF Serving measures) records request_count and, on success, request_latency."""

    def __init__(self, context, metrics=None, api: str | None = None, model: str = "", served: list[str] = ()):
        self.context, self.metrics, self.api = context, metrics, api
        self.model = model_label(model, served)
        self.start = time.perf_counter()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None:
            if self.api:
                self.metrics.request_count.increment(self.model, "OK")
                self.metrics.request_latency.add(self.model, self.api, GRPC, value=micros_since(self.start))
            return False
        if not isinstance(error, RequestFailed):
            if isinstance(error, Exception):
                log.exception("%s of model %r failed unexpectedly", self.api or "request", self.model)
                error = RequestFailed(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
            else:
                return False
        if self.api:
            self.metrics.request_count.increment(self.model, error.code.name)
        self.context.abort(error.code, error.message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata over the manager's servables.

    Usage::

        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(manager, metrics), server)
    """

    def __init__(self, manager: ModelManager, metrics):
        self._manager = manager
        self._metrics = metrics

    def _answering(self, context, api: str | None, model: str) -> _Answering:
        return _Answering(context, self._metrics, api, model, self._manager.model_names())

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        with self._answering(context, "Predict", request.model_spec.name):
            return predict(self._manager, self._metrics, request)

    def GetModelMetadata(self, request, context):  # noqa: N802
        with self._answering(context, None, request.model_spec.name):
            return model_metadata(self._manager, request)

    def _unimplemented(self, method: str, request, context):
        with self._answering(context, method, request.model_spec.name):
            raise RequestFailed(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{method} is not implemented: the recommendation models export Predict signatures only; call Predict",
            )

    def Classify(self, request, context):  # noqa: N802
        return self._unimplemented("Classify", request, context)

    def Regress(self, request, context):  # noqa: N802
        return self._unimplemented("Regress", request, context)

    def MultiInference(self, request, context):  # noqa: N802
        with self._answering(context, None, ""):
            raise RequestFailed(
                grpc.StatusCode.UNIMPLEMENTED,
                "MultiInference is not implemented: the recommendation models export Predict signatures only; call Predict",
            )


def is_loopback_peer(peer: str) -> bool:
    """Whether a gRPC peer string (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``, ``unix:...``) is this machine.

    >>> [is_loopback_peer(peer) for peer in ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", "ipv4:10.0.0.7:5000", "unix:/tmp/s")]
    [True, True, False, True]
    """
    scheme, _, address = peer.partition(":")
    if scheme == "unix":
        return True
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus and HandleReloadConfigRequest over the manager.

    A reload replaces the served models, so anyone who may call it can unload them all.
    TF Serving answers it for every caller; here it is refused (PERMISSION_DENIED) unless
    the server was started with ``allow_config_reload``, and then it is answered only for
    callers on loopback or authenticated by a client certificate (mutual TLS).
    """

    def __init__(self, manager: ModelManager, metrics, model_base, allow_reload: bool = False, mutual_tls: bool = False):
        self._manager = manager
        self._metrics = metrics
        self._model_base = model_base
        self._allow_reload = allow_reload
        self._mutual_tls = mutual_tls

    def _check_reload_allowed(self, context) -> None:
        if not self._allow_reload:
            raise RequestFailed(grpc.StatusCode.PERMISSION_DENIED,
                                "HandleReloadConfigRequest is disabled on this server (start it with allow_config_reload, "
                                "`recsys serve --allow-config-reload`)")
        if not (self._mutual_tls or is_loopback_peer(context.peer())):
            raise RequestFailed(grpc.StatusCode.PERMISSION_DENIED,
                                f"HandleReloadConfigRequest is answered only on loopback or over mutual TLS, not for {context.peer()}")

    def GetModelStatus(self, request, context):  # noqa: N802
        with _Answering(context):
            return model_status(self._manager, request)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        with _Answering(context):
            self._check_reload_allowed(context)
            try:
                entries = model_entries(request.config, self._model_base)
            except ConfigError as error:
                raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
            self._manager.apply(entries)
            return model_management_pb2.ReloadConfigResponse()
