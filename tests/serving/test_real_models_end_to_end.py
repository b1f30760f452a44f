"""Trained small-shop models, exported, served by the embedded server and called by the thin client."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import recsys_base  # noqa: F401
from recommenders.data.dataset import load_prepared
from recommenders.evaluation.cases import make_next_item_cases
from recsys.workflow import TrainedModels, export_run
from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.client import RecommenderClient
from serving.client.sessions import exclude_inputs, session_inputs
from serving.deployment import DeploymentConfig, write_configs
from serving.server import ServerConfig, serve

tf = tensorflow()


@pytest.fixture(scope="module")
def served(trained_run_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    export_run(trained_run_dir, root / "models", version=1)
    # 'all': a new export loads next to the labelled one (the deployment's 'specific' would wait for a label).
    configs = write_configs(DeploymentConfig(model_base=str(root / "models"), version_policy="all", stable_version=1), root / "config")
    server = serve(ServerConfig(configs["models.config"], model_base=root / "models", port=0, poll_seconds=0.2))
    client = RecommenderClient([f"127.0.0.1:{server.port}"], deadline_s=20)
    yield root, server, client
    server.stop()


@pytest.fixture(scope="module")
def sessions(small_shop_dir):
    cases = make_next_item_cases(load_prepared(small_shop_dir).test)
    with_items = np.flatnonzero([len(prefix) > 0 for prefix in cases.prefix_item_ids])
    return cases.take(with_items[np.linspace(0, len(with_items) - 1, 12).astype(int)])


def _session(cases, row):
    return [(item, kind, int(ts)) for item, kind, ts in
            zip(cases.prefix_item_ids[row], cases.prefix_event_types[row], cases.prefix_timestamps[row])]


def test_thin_client_gets_the_same_top_k_as_in_process(served, trained_run_dir, sessions):
    _, _, client = served
    models = TrainedModels(trained_run_dir)
    for row in range(len(sessions)):
        session, user, query = _session(sessions, row), sessions.user_ids[row] or None, sessions.queries[row] or None
        exclude = [sessions.prefix_item_ids[row][-1]]
        over_grpc = client.recommend(session, k=10, user=user, query=query, exclude=exclude)
        in_process = models.recommend.recommend(
            session_item_ids=tf.constant([[s[0] for s in session]]), session_event_types=tf.constant([[s[1] for s in session]]),
            session_timestamps=tf.constant([[s[2] for s in session]], tf.int64), session_length=tf.constant([len(session)]),
            user_id=tf.constant([user or ""]), query=tf.constant([query or ""]), k=tf.constant([10]),
            exclude_item_ids=tf.constant([exclude]), exclude_length=tf.constant([len(exclude)]))
        expected_ids = [i.decode() for i in in_process[contract.ITEM_IDS].numpy()[0] if i]
        assert [item for item, _ in over_grpc] == expected_ids
        np.testing.assert_allclose([s for _, s in over_grpc], in_process[contract.SCORES].numpy()[0][: len(expected_ids)],
                                   rtol=1e-5)
        assert exclude[0] not in expected_ids


def test_a_new_version_is_picked_up_without_a_failed_request(served, trained_run_dir, sessions):
    root, _, client = served
    failures, answered_by, stop = [], set(), threading.Event()

    def steady_load():
        while not stop.is_set():
            try:
                answered_by.add(client.predict(contract.RECOMMEND_MODEL, {
                    **_inputs(sessions), contract.K: np.array([5], np.int32), **exclude_inputs([None])}).version)
            except Exception as exc:  # noqa: BLE001 - any failure is what this test counts
                failures.append(repr(exc))

    load = threading.Thread(target=steady_load)
    load.start()
    try:
        export_run(trained_run_dir, root / "models", version=2)
        deadline = time.monotonic() + 60
        while 2 not in answered_by and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        load.join()
    assert failures == []
    assert 2 in answered_by
    # The stable label still names version 1 until the config moves it.
    assert client.predict(contract.RECOMMEND_MODEL, {**_inputs(sessions), contract.K: np.array([5], np.int32), **exclude_inputs([None])},
                          label=contract.STABLE_LABEL).version == 1


def _inputs(cases):
    return session_inputs([_session(cases, 0)], [None], [None])
