"""Warmup records: written as PredictionLogs TF Serving replays, replayed by the server."""

import numpy as np
import pytest

from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.contract.warmup import WARMUP_FILE, read_warmup_requests, write_warmup_requests
from serving.testing import export_toy_models, toy_request

tf = tensorflow()
from tensorflow_serving.apis import prediction_log_pb2  # noqa: E402


def test_records_are_prediction_logs_with_the_given_inputs(tmp_path):
    requests = [toy_request(contract.RECOMMEND_MODEL), toy_request(contract.RECOMMEND_MODEL)]
    path = write_warmup_requests(tmp_path, contract.RECOMMEND_MODEL, requests, signature_name="recommend")
    assert path == tmp_path / WARMUP_FILE
    raw = [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in tf.data.TFRecordDataset(str(path))]
    assert len(raw) == 2 and raw == read_warmup_requests(tmp_path)
    request = raw[0].predict_log.request
    assert (request.model_spec.name, request.model_spec.signature_name) == ("recommend", "recommend")
    assert tf.make_ndarray(request.inputs[contract.K]).tolist() == [10]
    assert tf.make_ndarray(request.inputs[contract.SESSION_ITEM_IDS]).tolist() == [[b"item-000", b"item-001", b"item-002"]]


def test_empty_request_lists_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least one request"):
        write_warmup_requests(tmp_path, "m", [])


def test_the_server_replays_warmup_on_load(tmp_path):
    from serving.server.manager import ModelEntry, ModelManager

    export_toy_models(tmp_path, models=(contract.RANKING_MODEL,))
    version_dir = tmp_path / contract.RANKING_MODEL / "1"
    bad = toy_request(contract.RANKING_MODEL)
    bad[contract.SESSION_TIMESTAMPS] = np.array([["yesterday", "today", "now"]], dtype=object)
    write_warmup_requests(version_dir, contract.RANKING_MODEL, [bad])  # a warmup that cannot run fails the load
    manager = ModelManager([ModelEntry(contract.RANKING_MODEL, tmp_path / contract.RANKING_MODEL, "latest")])
    manager.poll()
    [state] = manager.statuses(contract.RANKING_MODEL)
    assert state.state == "END" and "session_timestamps" in state.error_message
    manager.stop()
