"""Neighbour tables against hand-counted sessions."""

import numpy as np
import pandas as pd
import pytest

from recommenders.features.neighbours import NO_NEIGHBOUR, ItemNeighbours, NeighbourSpec, NeighbourTable
from recsys_base.errors import ConfigError, DataError


def test_window_both_directions_and_decay_count_every_pair_by_its_distance():
    # Session 0 1 2: pairs at distance 1 (0-1, 1-2) weigh 1, at distance 2 (0-2) weigh 0.5,
    # counted both ways. Row 0: item 1 -> 1, item 2 -> 0.5, total 1.5.
    table = NeighbourTable.build([[0, 1, 2]], num_items=4, window=2, both_directions=True, decay=0.5, max_neighbours=3)
    assert table.indices.tolist() == [[1, 2, -1], [0, 2, -1], [1, 0, -1], [-1, -1, -1]]
    assert table.weights[0] == pytest.approx([1 / 1.5, 0.5 / 1.5, 0.0])
    assert table.weights[1] == pytest.approx([0.5, 0.5, 0.0])
    assert table.weights[2] == pytest.approx([1 / 1.5, 0.5 / 1.5, 0.0])


def test_rows_keep_their_strongest_neighbours_as_shares_of_the_unpruned_total():
    # Item 0 is followed by 1 (three times), 2 (twice) and 3 (once): one slot keeps 1 at 3/6.
    sessions = [[0, 1], [0, 1], [0, 1], [0, 2], [0, 2], [0, 3]]
    table = NeighbourTable.build(sessions, num_items=4, max_neighbours=1)
    assert table.indices[0].tolist() == [1]
    assert table.weights[0] == pytest.approx([0.5])


def test_ties_keep_the_smaller_item_position_and_revisits_are_not_neighbours():
    table = NeighbourTable.build([[0, 3], [0, 2], [0, 0, 1]], num_items=4, max_neighbours=2)
    assert table.indices[0].tolist() == [1, 2], "1, 2 and 3 each follow 0 once; 0 -> 0 is a re-visit"
    assert table.weights[0] == pytest.approx([1 / 3, 1 / 3])


def test_pairs_never_cross_sessions():
    table = NeighbourTable.build([[0], [1]], num_items=2, window=3, both_directions=True)
    assert (table.indices == NO_NEIGHBOUR).all() and not table.weights.any()


def test_item_neighbours_order_events_by_time_and_skip_items_outside_the_vocabulary():
    events = pd.DataFrame({
        "session_id": ["s", "s", "s", "t", "t"],
        "item_id": ["b", "a", "zzz", "c", "a"],
        "timestamp": pd.to_datetime([2, 1, 3, 5, 4], unit="s"),
    })
    neighbours = ItemNeighbours.build(events, ["a", "b", "c"], [NeighbourSpec("transitions", max_neighbours=2)])
    table = neighbours.tables["transitions"]
    assert table.indices.tolist() == [[1, 2], [-1, -1], [-1, -1]], "a -> b in s and a -> c in t; zzz is skipped"
    assert table.weights[0] == pytest.approx([0.5, 0.5])


def test_item_neighbours_name_missing_columns():
    with pytest.raises(DataError, match=r"neighbour tables need event columns \['timestamp'\]"):
        ItemNeighbours.build(pd.DataFrame({"session_id": ["s"], "item_id": ["a"]}), ["a"], [NeighbourSpec("t")])


@pytest.mark.parametrize(("spec", "message"), [
    (NeighbourSpec("co occurrence"), "name must be an identifier"),
    (NeighbourSpec("t", window=0), "neighbour table t: window must be at least 1, got 0"),
    (NeighbourSpec("t", decay=0.0), r"neighbour table t: decay must be in \(0, 1\], got 0.0"),
    (NeighbourSpec("t", max_neighbours=0), "neighbour table t: max_neighbours must be at least 1, got 0"),
])
def test_bad_specs_are_named(spec, message):
    with pytest.raises(ConfigError, match=message):
        spec.validate()


def test_memory_is_items_times_neighbours_whatever_the_number_of_sessions():
    rng = np.random.default_rng(0)
    sessions = [list(rng.integers(0, 30, size=8)) for _ in range(2000)]
    table = NeighbourTable.build(sessions, num_items=30, window=3, both_directions=True, max_neighbours=5)
    assert table.indices.shape == table.weights.shape == (30, 5)
    assert (table.weights.sum(axis=1) <= 1 + 1e-6).all()


def test_recency_weighs_each_session_by_its_age_over_the_half_life():
    # Sessions end at 0 s, 50 s and 100 s: span 100 s, half-life 0.5 * 100 s. "a" is
    # followed by "b" in the oldest session (weight 0.25), by "c" in the middle one (0.5)
    # and by "b" again in the newest (1): row a = b 1.25, c 0.5, of 1.75.
    events = pd.DataFrame({"session_id": ["old", "old", "mid", "mid", "new", "new"],
                           "item_id": ["a", "b", "a", "c", "a", "b"],
                           "timestamp": pd.to_datetime([0, 0, 40, 50, 90, 100], unit="s")})
    specs = [NeighbourSpec("transitions", max_neighbours=2)]
    table = ItemNeighbours.build(events, ["a", "b", "c"], specs, half_life=0.5).tables["transitions"]
    assert table.indices[0].tolist() == [1, 2]
    assert table.weights[0] == pytest.approx([1.25 / 1.75, 0.5 / 1.75])
    undecayed = ItemNeighbours.build(events, ["a", "b", "c"], specs).tables["transitions"]
    assert undecayed.weights[0] == pytest.approx([2 / 3, 1 / 3])


def test_the_popularity_shift_is_counted_with_the_tables_recency():
    # The sessions above: clicks a 0.25 + 0.5 + 1, b 0.25 + 1, c 0.5 (recency weights), each
    # plus one, of 6.5; plain a 3, b 2, c 1, each plus one, of 9.
    events = pd.DataFrame({"session_id": ["old", "old", "mid", "mid", "new", "new"],
                           "item_id": ["a", "b", "a", "c", "a", "b"],
                           "timestamp": pd.to_datetime([0, 0, 40, 50, 90, 100], unit="s")})
    specs = [NeighbourSpec("transitions")]
    shift = ItemNeighbours.build(events, ["a", "b", "c"], specs, half_life=0.5).popularity_shift
    recent, overall = np.array([2.75, 2.25, 1.5]) / 6.5, np.array([4, 3, 2]) / 9
    assert np.exp(shift) == pytest.approx(recent / overall)
    assert ItemNeighbours.build(events, ["a", "b", "c"], specs).popularity_shift is None, "no recency, no shift"


def test_a_bad_half_life_is_named():
    from recommenders.features.neighbours import recency_weights

    with pytest.raises(ConfigError, match="half_life must be > 0, got -1"):
        recency_weights(np.array([0, 1]), np.array([0, 0]), half_life=-1)
