"""Every exported signature answers the same alone and batched by TF Serving with longer requests.

TF Serving's batching pads each request's tensors to the batch's widest shape with that
tensor's first element and splits outputs along dimension 0 only
(tensorflow_serving/batching/batching_util.cc, batching_session.cc). The contract's row
lengths (``session_length``, ``exclude_length``) make that padding invisible; these tests
replay it on the trained exports, directly on the SavedModels and through the embedded
server under concurrent load.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import recsys_base  # noqa: F401
from recommenders.data.dataset import load_prepared
from recommenders.evaluation.cases import make_next_item_cases
from recsys.workflow import export_run
from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.client import RecommenderClient
from serving.client.sessions import exclude_inputs, session_inputs
from serving.deployment import DeploymentConfig, write_configs
from serving.server import ServerConfig, serve
from serving.server.batching import merge

tf = tensorflow()


@pytest.fixture(scope="module")
def exported(trained_run_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("padding")
    export_run(trained_run_dir, root / "models", version=1)
    return root


@pytest.fixture(scope="module")
def shop_sessions(small_shop_dir):
    """Test-split sessions of lengths 1, 2, 4 and 9 (the long one revisits its first item)."""
    cases = make_next_item_cases(load_prepared(small_shop_dir).test)
    by_length = {len(prefix): row for row, prefix in enumerate(cases.prefix_item_ids)}
    long_row = max(by_length.values(), key=lambda row: len(cases.prefix_item_ids[row]))

    def events(row, n=None):
        triples = list(zip(cases.prefix_item_ids[row], cases.prefix_event_types[row], (int(t) for t in cases.prefix_timestamps[row])))
        return triples[:n] if n else triples

    long_session = events(long_row, 8)
    long_session.append((long_session[0][0], contract.VIEW, long_session[-1][2] + 30))
    return [events(by_length[1]), events(by_length[2]), events(by_length[4]), long_session]


def _request(model: str, sessions: list, item_ids: list[str], widths: tuple[int, int]) -> dict[str, np.ndarray]:
    """A request for ``sessions`` with ``k``, exclusions and candidates varying per row."""
    inputs = session_inputs(sessions, [None] * len(sessions), [None] * len(sessions))
    model_inputs = contract.INPUTS[model]
    if contract.K in model_inputs:
        inputs[contract.K] = np.array([widths[0] + row for row in range(len(sessions))], dtype=np.int32)
    if contract.EXCLUDE_ITEM_IDS in model_inputs:
        inputs.update(exclude_inputs([item_ids[row : row + widths[1] + row] for row in range(len(sessions))]))
    if contract.CANDIDATE_ITEM_IDS in model_inputs:
        inputs[contract.CANDIDATE_ITEM_IDS] = np.array([item_ids[row : row + widths[0]] for row in range(len(sessions))], dtype=object)
    return inputs


def _call(signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    tensors = {name: tf.constant(values.astype(bytes) if values.dtype == object else values) for name, values in inputs.items()}
    return {name: value.numpy() for name, value in signature(**tensors).items()}


def _assert_same_answer(alone: dict, batched: dict, what: str):
    """``batched`` (possibly wider: TF Serving does not trim) matches ``alone`` on its own columns."""
    for name, expected in alone.items():
        got = batched[name][:, : expected.shape[1]]
        if expected.dtype == object:
            assert got.tolist() == expected.tolist(), f"{what}: {name} differs"
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=f"{what}: {name} differs")
        # The columns past this request's own width hold only blanks or the padding's scores.
        if name == contract.ITEM_IDS:
            assert (batched[name][:, expected.shape[1] :] == b"").all(), f"{what}: {name} past k is not blank"


@pytest.mark.parametrize("model", contract.MODELS)
def test_saved_model_answers_alike_alone_and_padded_as_tf_serving_pads(exported, shop_sessions, model):
    from serving.server.batching import _Task

    loaded = tf.saved_model.load(str(exported / "models" / model / "1"))
    signature = loaded.signatures[contract.SIGNATURES[model]]
    item_ids = [item for session in shop_sessions for item, _, _ in session]
    short = _request(model, shop_sessions[:2], item_ids, widths=(3, 1))  # two rows: row 1 is padded with row 0's first element
    long = _request(model, shop_sessions[2:], item_ids, widths=(9, 5))
    merged = merge([_Task(contract.SIGNATURES[model], short, 2), _Task(contract.SIGNATURES[model], long, 2)], pad=True)
    assert merged[contract.SESSION_ITEM_IDS].shape[1] > short[contract.SESSION_ITEM_IDS].shape[1]
    batched = _call(signature, merged)
    _assert_same_answer(_call(signature, short), {name: value[:2] for name, value in batched.items()}, f"{model}: short request")
    _assert_same_answer(_call(signature, long), {name: value[2:] for name, value in batched.items()}, f"{model}: long request")


def test_embedded_server_batches_concurrent_requests_of_different_lengths_without_changing_answers(exported, shop_sessions):
    deployment = DeploymentConfig(model_base=str(exported / "models"), stable_version=1, max_batch_size=len(shop_sessions),
                                  batch_timeout_micros=300_000, num_batch_threads=1)
    configs = write_configs(deployment, exported / "config")
    server = serve(ServerConfig(configs["models.config"], model_base=exported / "models", port=0, enable_batching=True,
                                batching_parameters_file=configs["batching_parameters.txt"]))
    client = RecommenderClient([f"127.0.0.1:{server.port}"], deadline_s=30)
    try:
        item_ids = [item for session in shop_sessions for item, _, _ in session]
        requests = [_request(contract.RECOMMEND_MODEL, [session], item_ids[row:], widths=(3 + 4 * row, row))
                    for row, session in enumerate(shop_sessions)]
        alone = [client.predict(contract.RECOMMEND_MODEL, request).outputs for request in requests]
        batched = [None] * len(requests)
        barrier = threading.Barrier(len(requests))

        def send(row):
            barrier.wait()
            batched[row] = client.predict(contract.RECOMMEND_MODEL, requests[row]).outputs

        threads = [threading.Thread(target=send, args=(row,)) for row in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        widest = max(request[contract.K][0] for request in requests)
        assert all(outputs[contract.ITEM_IDS].shape[1] == widest for outputs in batched), "the requests did not share a batch"
        for row in range(len(requests)):
            _assert_same_answer(alone[row], batched[row], f"session {row}")
    finally:
        client.close()
        server.stop()
