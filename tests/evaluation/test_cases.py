import numpy as np
import pandas as pd

from recommenders.data import schema
from recommenders.evaluation.cases import make_next_item_cases, order_events

T0 = pd.Timestamp("2024-01-01")
COLUMNS = ["session_id", "user_id", "item_id", "event_type", "second", "query"]
ROWS = [
    ("s1", "u1", "B", "cart", 280, None),  # rows of s1 arrive out of time order
    ("s1", "u1", "A", "view", 100, None),
    ("s1", "u1", None, "search", 160, "red shoes"),
    ("s1", "u1", "C", "purchase", 340, None),
    ("s1", "u1", "B", "view", 220, None),
    ("s2", None, None, "search", 50, "lamp"),
    ("s2", None, "L", "view", 60, None),
    ("s2", None, "M", "view", 60, None),  # same second as L: input order decides
    ("s3", None, "X", "view", 10, None),  # a lone view has no context: no case
]


def events():
    frame = pd.DataFrame(ROWS, columns=COLUMNS)
    frame["timestamp"] = T0 + pd.to_timedelta(frame.pop("second"), unit="s")
    return schema.conform_events(frame)


def test_every_prefix_with_context_becomes_a_case():
    cases = make_next_item_cases(events())
    assert cases.session_ids.tolist() == ["s1", "s1", "s1", "s2", "s2"]
    assert cases.prefix_item_ids == [["A"], ["A", "B"], ["A", "B", "B"], [], ["L"]]
    assert cases.prefix_event_types == [["view"], ["view", "view"], ["view", "view", "cart"], [], ["view"]]
    assert cases.targets.tolist() == ["B", "B", "C", "L", "M"]


def test_queries_and_users_ride_along():
    cases = make_next_item_cases(events())
    assert cases.queries.tolist() == ["red shoes", "red shoes", "red shoes", "lamp", "lamp"]
    assert cases.user_ids.tolist() == ["u1", "u1", "u1", "", ""]


def test_timestamps_are_unix_seconds():
    cases = make_next_item_cases(events())
    start = int(T0.timestamp())
    assert cases.prefix_timestamps[2].dtype == np.int64
    assert (cases.prefix_timestamps[2] - start).tolist() == [100, 220, 280]
    assert (cases.prefix_timestamps[4] - start).tolist() == [60]


def test_take_selects_cases_in_the_given_order():
    picked = make_next_item_cases(events()).take([4, 0])
    assert picked.prefix_item_ids == [["L"], ["A"]]
    assert picked.targets.tolist() == ["M", "B"]
    assert len(picked) == 2


def test_subset_is_a_fixed_random_choice_in_case_order():
    cases = make_next_item_cases(events())
    picked = cases.subset(3, seed=1)
    positions = [cases.prefix_item_ids.index(prefix) for prefix in picked.prefix_item_ids]  # prefixes are unique here
    assert len(set(positions)) == 3 and positions == sorted(positions)
    assert cases.subset(3, seed=1).prefix_item_ids == picked.prefix_item_ids  # the same seed, the same cases
    assert cases.subset(None) is cases and cases.subset(5) is cases  # no cap, or the cap not reached: every case


def test_order_events_keeps_first_appearance_session_order():
    ordered, codes, seconds = order_events(events())
    assert ordered["session_id"].drop_duplicates().tolist() == ["s1", "s2", "s3"]
    assert codes.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 2]
    assert np.all(np.diff(seconds[codes == 0]) > 0)


def test_no_events_give_no_cases():
    assert len(make_next_item_cases(schema.empty_events())) == 0
