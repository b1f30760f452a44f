"""Session sequences: exact padding, chunking, query placement, tf.data batches."""

import numpy as np
import pandas as pd
import pytest

from recommenders.evaluation.cases import make_next_item_cases
from recommenders.features.sequences import SESSION_QUERIES, cases_to_arrays, sessions_to_arrays, to_dataset
from serving import contract


@pytest.fixture
def events():
    return pd.DataFrame({
        "session_id": ["a"] * 6 + ["b"] + ["c"] * 3,
        "user_id": ["u1"] * 6 + [None] + ["u2"] * 3,
        "item_id": ["1", "2", None, "3", "4", "5", "9", None, "7", "8"],
        "event_type": ["view", "view", "search", "cart", "view", "view", "view", "search", "view", "purchase"],
        "timestamp": pd.to_datetime(np.arange(10) * 60, unit="s"),
        "query": [None, None, "red shoes", None, None, None, None, "hat", None, None],
    })


def test_long_sessions_become_overlapping_chunks_and_short_ones_are_dropped(events):
    arrays = sessions_to_arrays(events, max_length=3)
    assert arrays.item_ids.tolist() == [["1", "2", "3"], ["3", "4", "5"], ["7", "8", ""]]
    assert arrays.event_types.tolist() == [["view", "view", "cart"], ["cart", "view", "view"], ["view", "purchase", ""]]
    assert arrays.timestamps.tolist() == [[0, 60, 180], [180, 240, 300], [480, 540, 0]]
    assert arrays.user_ids.tolist() == ["u1", "u1", "u2"]


def test_a_search_stays_in_force_from_where_the_next_item_is_chosen(events):
    arrays = sessions_to_arrays(events, max_length=3)
    # "red shoes" came between items 2 and 3; "hat" before any item of session c.
    assert arrays.queries.tolist() == [
        ["", "red shoes", "red shoes"], ["red shoes", "red shoes", "red shoes"], ["hat", "hat", ""]
    ]


def test_training_queries_match_the_evaluation_cases(events):
    arrays = sessions_to_arrays(events, max_length=10)
    cases = make_next_item_cases(events)
    for row in range(len(arrays)):
        items = [i for i in arrays.item_ids[row] if i]
        for t in range(1, len(items)):
            case = [c for c in range(len(cases)) if list(cases.prefix_item_ids[c]) == items[:t]][0]
            assert arrays.queries[row, t - 1] == cases.queries[case]


def test_every_transition_survives_chunking(events):
    whole = sessions_to_arrays(events, max_length=10)
    chunked = sessions_to_arrays(events, max_length=3)

    def transitions(arrays):
        pairs = []
        for row in arrays.item_ids:
            items = [i for i in row if i]
            pairs += list(zip(items, items[1:]))
        return sorted(pairs)

    assert transitions(whole) == transitions(chunked)


def test_cases_put_the_latest_query_at_the_last_position(events):
    cases = make_next_item_cases(events)
    arrays = cases_to_arrays(cases, max_length=2)
    third = [i for i, prefix in enumerate(cases.prefix_item_ids) if prefix == ["1", "2"]][0]
    assert arrays.item_ids[third].tolist() == ["1", "2"]
    assert arrays.queries[third].tolist() == ["", "red shoes"]
    assert arrays.features()[contract.QUERY][third] == "red shoes"


def test_bucketed_batches_are_trimmed_to_their_longest_session(events):
    arrays = sessions_to_arrays(pd.concat([events] * 3), max_length=8)
    batches = list(to_dataset(arrays, batch_size=4, bucket_by_length=True))
    for batch in batches:
        lengths = (batch[contract.SESSION_ITEM_IDS].numpy() != b"").sum(axis=1)
        assert batch[contract.SESSION_ITEM_IDS].shape[1] == lengths.max()
        assert batch[SESSION_QUERIES].shape == batch[contract.SESSION_ITEM_IDS].shape
    assert sum(len(b[contract.USER_ID]) for b in batches) == len(arrays)
