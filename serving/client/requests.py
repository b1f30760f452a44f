"""Building TF Serving requests and reading responses as plain Python values."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from serving.client import messages
from serving.client.tensors import to_array, to_tensor_proto


@dataclass(frozen=True)
class VersionStatus:
    """One model version as GetModelStatus reports it."""

    version: int
    state: str  # UNKNOWN / START / LOADING / AVAILABLE / UNLOADING / END
    error_code: str = "OK"
    error_message: str = ""


@dataclass(frozen=True)
class Prediction:
    """A Predict answer: output arrays and which model version produced them."""

    outputs: dict[str, np.ndarray]
    model: str
    version: int
    target: str = field(default="", compare=False)


def model_spec(spec, model: str, version: int | None = None, label: str | None = None, signature: str | None = None):
    """Fills ModelSpec ``spec`` (a message field) for ``model`` pinned to a version or label."""
    spec.name = model
    if version is not None:
        spec.version.value = int(version)
    elif label:
        spec.version_label = label
    if signature:
        spec.signature_name = signature


def predict_request(model, inputs, signature=None, version=None, label=None, output_filter=()):
    """A PredictRequest for ``inputs`` (name -> array-like; dtypes as tf.make_tensor_proto)."""
    request = messages.PredictRequest()
    model_spec(request.model_spec, model, version, label, signature)
    for name, values in inputs.items():
        if isinstance(values, messages.TensorProto):
            request.inputs[name].CopyFrom(values)
        else:
            request.inputs[name].CopyFrom(to_tensor_proto(values))
    request.output_filter.extend(output_filter)
    return request


def prediction(response, target: str = "") -> Prediction:
    """The PredictResponse as a :class:`Prediction`."""
    return Prediction(
        outputs={name: to_array(tensor) for name, tensor in response.outputs.items()},
        model=response.model_spec.name,
        version=response.model_spec.version.value,
        target=target,
    )


def status_request(model: str, version=None):
    """A GetModelStatusRequest for ``model`` (all versions unless one is pinned)."""
    request = messages.GetModelStatusRequest()
    model_spec(request.model_spec, model, version)
    return request


def version_statuses(response) -> list[VersionStatus]:
    """GetModelStatusResponse as VersionStatus values, newest version first."""
    statuses = [
        VersionStatus(
            version=status.version,
            state=messages.STATE_NAME.get(status.state, str(status.state)),
            error_code=messages.ERROR_CODE_NAME.get(status.status.error_code, str(status.status.error_code)),
            error_message=status.status.error_message,
        )
        for status in response.model_version_status
    ]
    return sorted(statuses, key=lambda status: -status.version)


def metadata_request(model: str, version=None, label=None):
    """A GetModelMetadataRequest asking for the signature_def metadata."""
    request = messages.GetModelMetadataRequest()
    model_spec(request.model_spec, model, version, label)
    request.metadata_field.append("signature_def")
    return request


def signatures(response) -> dict[str, dict]:
    """Signature name -> {"inputs"/"outputs": {name: (dtype name, shape)}, "method_name"}.

    Shapes use -1 for unknown dimensions and None for unknown rank.
    """
    packed = response.metadata["signature_def"]
    if packed.type_url != messages.SIGNATURE_DEF_MAP_TYPE_URL:
        raise ValueError(f"signature_def metadata has type {packed.type_url!r}, expected {messages.SIGNATURE_DEF_MAP_TYPE_URL!r}")
    signature_map = messages.SignatureDefMap.FromString(packed.value)

    def describe(infos):
        return {
            name: (
                messages.DATA_TYPE_NAME.get(info.dtype, str(info.dtype)),
                None if info.tensor_shape.unknown_rank else [dim.size for dim in info.tensor_shape.dim],
            )
            for name, info in infos.items()
        }

    return {
        name: {"inputs": describe(sig.inputs), "outputs": describe(sig.outputs), "method_name": sig.method_name}
        for name, sig in signature_map.signature_def.items()
        if not name.startswith("__")  # TF's internal init signature, not callable by clients
    }
