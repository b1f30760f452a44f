"""RecommenderClient against a toy server (version 1 labelled stable, 50 items)."""

import time

import grpc
import pytest

from serving import contract
from serving.client import RecommenderClient, ServingError
from serving.testing import expected_top_k, item_scores

NUM_ITEMS = 50


@pytest.fixture(scope="module")
def client(target):
    with RecommenderClient([target], deadline_s=5.0) as client:
        yield client


def test_recommend_returns_the_models_top_k_without_excluded_items(client):
    session = ["item-001", ("item-002", "cart", 1700000000)]
    assert client.recommend(session, k=5) == expected_top_k(NUM_ITEMS, 1, 5)
    excluded = tuple(item for item, _ in expected_top_k(NUM_ITEMS, 1, 2))
    assert client.recommend(session, k=5, exclude=list(excluded), user="u1") == expected_top_k(NUM_ITEMS, 1, 5, excluded)


def test_retrieve_returns_the_top_k(client):
    assert client.retrieve(["item-001"], k=3, query="shoes") == expected_top_k(NUM_ITEMS, 1, 3)


def test_rank_orders_candidates_by_model_score(client):
    candidates = ["item-003", "item-010", "item-020"]
    scores = item_scores(NUM_ITEMS, 1)
    expected = sorted(((c, float(scores[int(c[-3:])])) for c in candidates), key=lambda pair: -pair[1])
    assert client.rank(["item-001"], candidates) == expected


def test_status_and_metadata_describe_the_served_version(client):
    assert [(s.version, s.state, s.error_code) for s in client.status(contract.RECOMMEND_MODEL)] == [(1, "AVAILABLE", "OK")]
    signatures = client.metadata(contract.RECOMMEND_MODEL)
    assert set(signatures) == {contract.SIGNATURES[contract.RECOMMEND_MODEL], contract.DEFAULT_SIGNATURE}
    inputs = signatures[contract.DEFAULT_SIGNATURE]["inputs"]
    assert {name: (dtype, len(shape)) for name, (dtype, shape) in inputs.items()} == contract.INPUTS[contract.RECOMMEND_MODEL]


def test_pinned_label_and_version_reach_the_labelled_version(target):
    with RecommenderClient([target], version_label=contract.STABLE_LABEL) as client:
        assert client.predict(contract.RECOMMEND_MODEL, _one_row(k=2)).version == 1
    with RecommenderClient([target], version=1) as client:
        assert client.recommend(["item-001"], k=2) == expected_top_k(NUM_ITEMS, 1, 2)


def test_unknown_label_is_refused_and_unknown_version_and_model_are_not_found(target):
    with RecommenderClient([target], version_label="nightly") as client:
        with pytest.raises(ServingError, match="nightly") as caught:
            client.recommend(["item-001"], k=2)
        assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT  # as TF Serving (server_core.cc)
    with RecommenderClient([target], version=99) as client:
        with pytest.raises(ServingError, match=r"Specific\(recommend, 99\)") as caught:
            client.recommend(["item-001"], k=2)
        assert caught.value.code is grpc.StatusCode.NOT_FOUND
    with RecommenderClient([target]) as client:
        with pytest.raises(ServingError, match="'no-such-model'") as caught:
            client.status("no-such-model")
        assert caught.value.code is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("k", [0, NUM_ITEMS + 1, -3])
def test_k_out_of_range_is_invalid_argument_naming_k(client, k):
    with pytest.raises(ServingError, match=r"\bk must be (in 1\.\.50|at least 1)") as caught:
        client.recommend(["item-001"], k=k)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_bad_sessions_fail_locally_naming_the_event(client):
    with pytest.raises(ValueError, match="session event 1"):
        client.recommend(["item-001", ("item-2", "view")], k=3)
    with pytest.raises(ValueError, match="timestamp 'soon'"):
        client.recommend([("item-2", "view", "soon")], k=3)
    with pytest.raises(ValueError, match="candidates"):
        client.rank(["item-001"], "item-002")


def test_a_dead_replica_never_fails_a_call(target, dead_target):
    # round_robin only picks connected replicas; waitForReady holds the first calls until one is.
    with RecommenderClient([dead_target(), target], deadline_s=5.0) as client:
        assert client.target.startswith("ipv4:127.0.0.1:")
        for _ in range(6):
            assert client.recommend(["item-001"], k=1) == expected_top_k(NUM_ITEMS, 1, 1)


def test_unavailable_from_a_live_replica_is_retried_on_the_other(target, unavailable_replica):
    with RecommenderClient([unavailable_replica.target, target], deadline_s=5.0, retries=4) as client:
        # Once both are connected, round robin sends every other attempt to the failing replica.
        for _ in range(50):
            assert client.recommend(["item-001"], k=1) == expected_top_k(NUM_ITEMS, 1, 1)
            if unavailable_replica.calls >= 5:
                break
    assert unavailable_replica.calls >= 5


def test_without_retries_unavailable_reaches_the_caller(target, unavailable_replica):
    with RecommenderClient([unavailable_replica.target, target], deadline_s=5.0, retries=0) as client:
        codes = set()
        for _ in range(10):
            try:
                client.recommend(["item-001"], k=1)
                codes.add(grpc.StatusCode.OK)
            except ServingError as error:
                codes.add(error.code)
    assert codes == {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}


def test_a_status_that_is_not_retryable_is_not_retried(not_found_replica):
    with RecommenderClient([not_found_replica.target], deadline_s=5.0, retries=4) as client:
        with pytest.raises(ServingError, match="status server answers NOT_FOUND") as caught:
            client.status(contract.RECOMMEND_MODEL)
    assert caught.value.code is grpc.StatusCode.NOT_FOUND and caught.value.target == not_found_replica.target
    assert not_found_replica.calls == 1


def test_no_live_replica_fails_within_the_deadline(dead_target):
    with RecommenderClient([dead_target(), dead_target()], deadline_s=0.5) as client:
        started = time.monotonic()
        with pytest.raises(ServingError) as caught:
            client.recommend(["item-001"], k=1)
        assert 0.4 < time.monotonic() - started < 2.0  # waited for a replica until the deadline
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert caught.value.target == client.target


def test_without_wait_for_ready_no_live_replica_fails_fast(dead_target):
    with RecommenderClient([dead_target()], deadline_s=5.0, wait_for_ready=False, backoff_cap_s=0.05) as client:
        started = time.monotonic()
        with pytest.raises(ServingError) as caught:
            client.recommend(["item-001"], k=1)
        assert time.monotonic() - started < 2.0
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE


def test_label_split_sends_each_user_to_its_label(target):
    with RecommenderClient([target], label_split={contract.STABLE_LABEL: 50, "nightly": 50}) as client:
        outcomes = {}
        for user in (f"user-{i}" for i in range(20)):
            try:
                client.recommend(["item-001"], k=1, user=user)
                outcomes[user] = contract.STABLE_LABEL
            except ServingError as error:
                assert error.code is grpc.StatusCode.INVALID_ARGUMENT  # a label the server does not know
                outcomes[user] = "nightly"
        assert outcomes == {user: client.label_for(user) for user in outcomes}
        assert set(outcomes.values()) == {contract.STABLE_LABEL, "nightly"}


def _one_row(k):
    return {
        contract.SESSION_ITEM_IDS: [["item-001"]],
        contract.SESSION_EVENT_TYPES: [["view"]],
        contract.SESSION_TIMESTAMPS: [[0]],
        contract.SESSION_LENGTH: __import__("numpy").array([1], dtype="int32"),
        contract.USER_ID: [""],
        contract.QUERY: [""],
        contract.K: __import__("numpy").array([k], dtype="int32"),
        contract.EXCLUDE_ITEM_IDS: [[""]],
        contract.EXCLUDE_LENGTH: __import__("numpy").array([0], dtype="int32"),
    }
