"""TF Serving's gRPC services on the official servicer base classes."""

from __future__ import annotations

import logging
import time

import grpc

from recsys_base.errors import ConfigError
from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.server.errors import RequestFailed
from serving.server.manager import ModelManager, model_entries

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
UNKNOWN_MODEL_LABEL = "_unknown"
_STATES = {name: get_model_status_pb2.ModelVersionStatus.State.Value(name) for name in ("LOADING", "AVAILABLE", "UNLOADING", "END")}


def _spec(model_spec) -> tuple[str, int | None, str | None]:
    version = model_spec.version.value if model_spec.HasField("version") else None
    return model_spec.name, version, model_spec.version_label or None


class _Answering:
    """Times a request, records its metrics and turns failures into gRPC statuses."""

    def __init__(self, metrics, method: str, model: str, context, known_models):
        # Names of unknown models would give clients an unbounded set of metric labels.
        model = model if not model or model in known_models else UNKNOWN_MODEL_LABEL
        self.metrics, self.method, self.model, self.context = metrics, method, model, context
        self.version = None
        self.start = time.perf_counter()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None:
            self.metrics.observe(self.model, self.version, self.method, "OK", time.perf_counter() - self.start)
            return False
        if not isinstance(error, RequestFailed):
            if isinstance(error, Exception):
                log.exception("%s of model %r failed unexpectedly", self.method, self.model)
                error = RequestFailed(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
            else:
                return False
        self.metrics.observe(self.model, self.version, self.method, error.code.name, time.perf_counter() - self.start)
        self.context.abort(error.code, error.message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata over the manager's servables.

    Usage::

        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(manager, metrics), server)
    """

    def __init__(self, manager: ModelManager, metrics):
        self._manager = manager
        self._metrics = metrics

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        name, version, label = _spec(request.model_spec)
        with _Answering(self._metrics, "Predict", name, context, self._manager.model_names()) as answering:
            servable = self._manager.servable(name, version, label)
            answering.version = servable.version
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
                outputs = batcher.submit(signature, arrays) if batcher is not None else servable.run(signature, arrays)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature
            for output, value in outputs.items():
                if not request.output_filter or output in request.output_filter:
                    response.outputs[output].CopyFrom(tf.make_tensor_proto(value))
            return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        name, version, label = _spec(request.model_spec)
        with _Answering(self._metrics, "GetModelMetadata", name, context, self._manager.model_names()) as answering:
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise RequestFailed(
                    grpc.StatusCode.INVALID_ARGUMENT, f"metadata_field must be ['signature_def'] (the only metadata served), got {fields}"
                )
            servable = self._manager.servable(name, version, label)
            answering.version = servable.version
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for signature, definition in servable.signature_defs.items():
                signature_map.signature_def[signature].CopyFrom(definition)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = name
            response.model_spec.version.value = servable.version
            response.metadata["signature_def"].Pack(signature_map)
            return response

    def _unimplemented(self, method: str, request, context):
        with _Answering(self._metrics, method, request.model_spec.name, context, self._manager.model_names()):
            raise RequestFailed(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{method} is not implemented: the recommendation models export Predict signatures only; call Predict",
            )

    def Classify(self, request, context):  # noqa: N802
        return self._unimplemented("Classify", request, context)

    def Regress(self, request, context):  # noqa: N802
        return self._unimplemented("Regress", request, context)

    def MultiInference(self, request, context):  # noqa: N802
        name = request.tasks[0].model_spec.name if request.tasks else ""
        with _Answering(self._metrics, "MultiInference", name, context, self._manager.model_names()):
            raise RequestFailed(
                grpc.StatusCode.UNIMPLEMENTED,
                "MultiInference is not implemented: the recommendation models export Predict signatures only; call Predict",
            )


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus and HandleReloadConfigRequest over the manager."""

    def __init__(self, manager: ModelManager, metrics, model_base):
        self._manager = manager
        self._metrics = metrics
        self._model_base = model_base

    def GetModelStatus(self, request, context):  # noqa: N802
        name, version, label = _spec(request.model_spec)
        with _Answering(self._metrics, "GetModelStatus", name, context, self._manager.model_names()):
            response = get_model_status_pb2.GetModelStatusResponse()
            for state in self._manager.statuses(name, version, label):
                status = response.model_version_status.add(version=state.version, state=_STATES[state.state])
                status.status.error_code = state.error_code.value[0]
                status.status.error_message = state.error_message
            return response

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        with _Answering(self._metrics, "HandleReloadConfigRequest", "", context, self._manager.model_names()):
            try:
                entries = model_entries(request.config, self._model_base)
            except ConfigError as error:
                raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
            self._manager.apply(entries)
            return model_management_pb2.ReloadConfigResponse()
