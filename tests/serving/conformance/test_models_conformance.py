"""What a client learns about the served models: signatures, versions and labels, over gRPC."""

from __future__ import annotations

import pytest

from serving import contract
from serving.contract.warmup import warmup_inputs


@pytest.mark.parametrize("model", contract.MODELS)
def test_metadata_lists_exactly_the_contract_inputs_and_outputs(client, model):
    """get_model_metadata_impl.cc: the SignatureDefMap; serving/contract: each model's signature, also as serving_default."""
    signatures = client.metadata(model)
    for name in (contract.SIGNATURES[model], contract.DEFAULT_SIGNATURE):
        assert name in signatures, f"{model}: no signature {name!r}; has {sorted(signatures)}"
        signature = signatures[name]
        inputs = {input_name: (dtype, None if shape is None else len(shape)) for input_name, (dtype, shape) in signature["inputs"].items()}
        assert inputs == contract.INPUTS[model], f"{model}/{name} inputs (dtype, rank)"
        assert {output: dtype for output, (dtype, _) in signature["outputs"].items()} == contract.OUTPUTS[model], f"{model}/{name} outputs"


@pytest.mark.parametrize("model", contract.MODELS)
def test_the_served_version_is_available_and_the_stable_label_resolves_to_one(target, client, model):
    """get_model_status_impl.cc (states per version); server_core.cc ``ServableRequestFromModelSpec`` (labels)."""
    available = [status.version for status in client.status(model) if status.state == "AVAILABLE"]
    assert available, f"{model}: no AVAILABLE version"
    if target.stable_version is not None:
        assert target.stable_version in available
    answer = client.predict(model, warmup_inputs(model, target.item_ids), label=contract.STABLE_LABEL)
    assert answer.model == model and answer.version in available
    if target.stable_version is not None:
        assert answer.version == target.stable_version


def test_model_status_ignores_the_version_label(target, client):
    """get_model_status_impl.cc reads only ``version``: with any label, even an unknown one, every version is listed."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name, request.model_spec.version_label = contract.RECOMMEND_MODEL, "no-such-label"
    with grpc.insecure_channel(target.grpc) as channel:
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    assert sorted(status.version for status in response.model_version_status) == sorted(
        status.version for status in client.status(contract.RECOMMEND_MODEL))
