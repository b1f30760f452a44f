"""The time split: whole sessions by end time, no leakage, holdout filtering reported."""

import pandas as pd
import pytest

from recommenders.data.cleaning import clean
from recommenders.data.split import SPLIT_REASONS, time_split
from recsys_base.errors import ConfigError, DataError

from .conftest import events


def sessions_of(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["session_id"]))


def ten_sessions() -> pd.DataFrame:
    rows = []
    for n in range(10):
        rows += [(f"s{n}", None, "a", "view", 60 * n, None), (f"s{n}", None, "b", "view", 60 * n + 1, None)]
    return events(rows)


def test_last_sessions_by_end_time_are_held_out():
    result = time_split(ten_sessions(), validation_fraction=0.2, test_fraction=0.3)
    assert sessions_of(result.train) == [f"s{n}" for n in range(5)]
    assert sessions_of(result.validation) == ["s5", "s6"]
    assert sessions_of(result.test) == ["s7", "s8", "s9"]
    assert result.cutoffs.validation_start == result.validation["timestamp"].max() - pd.Timedelta(minutes=60)
    assert result.report.parts["test"].sessions == 3 and result.report.rows_out == 20


def test_no_training_event_is_later_than_any_held_out_session_end():
    from recommenders.data.synthetic import SyntheticShopConfig, generate_shop

    shop = clean(generate_shop(SyntheticShopConfig.small(seed=2))).shop
    result = time_split(shop.events, 0.1, 0.1)
    ends = {name: part.groupby("session_id")["timestamp"].max() for name, part in zip(("v", "t"), result[1:3])}
    assert result.train["timestamp"].max() < result.cutoffs.validation_start <= ends["v"].min()
    assert ends["v"].max() < result.cutoffs.test_start <= ends["t"].min()
    for part in result[:3]:
        assert len(part) > 0
    assert set(result.train["session_id"]).isdisjoint(result.validation["session_id"])
    assert set(result.validation["session_id"]).isdisjoint(result.test["session_id"])
    # Cleaned synthetic data: only the holdout filters may remove rows.
    assert result.report.rows_in == result.report.rows_out + len(result.quarantine)


def test_held_out_items_unseen_in_train_are_dropped_then_short_sessions():
    frame = events(
        [
            ("old", None, "a", "view", 0, None),
            ("old", None, "b", "view", 1, None),
            ("new1", None, "a", "view", 10, None),
            ("new1", None, "fresh", "view", 11, None),  # unseen: dropped, then new1 is too short
            ("new2", None, "a", "view", 20, None),
            ("new2", None, None, "search", 21, "anything"),  # searches are never unseen
            ("new2", None, "fresh", "cart", 22, None),
            ("new2", None, "b", "view", 23, None),
        ]
    )
    result = time_split(frame, validation_fraction=0.0, test_fraction=0.67)
    assert result.report.dropped == {"unseen_item": 2, "short_session_after_split": 1}
    assert list(result.test["item_id"].fillna("-")) == ["a", "-", "b"]
    assert list(result.quarantine["reason"]) == ["unseen_item", "unseen_item", "short_session_after_split"]
    assert list(result.quarantine["session_id"]) == ["new1", "new2", "new1"]
    assert tuple(result.report.dropped) == SPLIT_REASONS


def test_sessions_ending_at_a_cutoff_go_to_the_later_part():
    frame = events(
        [
            ("s0", None, "a", "view", 0, None),
            ("s0", None, "b", "view", 1, None),
            ("s1", None, "a", "view", 5, None),
            ("s1", None, "b", "view", 9, None),
            ("s2", None, "b", "view", 8, None),
            ("s2", None, "a", "view", 9, None),
        ]
    )
    result = time_split(frame, validation_fraction=0.0, test_fraction=0.34)
    assert sessions_of(result.test) == ["s1", "s2"]


def test_empty_holdouts_have_cutoffs_after_the_data():
    result = time_split(ten_sessions(), validation_fraction=0.0, test_fraction=0.0)
    assert len(result.train) == 20 and result.validation.empty and result.test.empty
    assert result.cutoffs.validation_start == result.cutoffs.test_start > result.train["timestamp"].max()


@pytest.mark.parametrize(
    "fractions, message",
    [((-0.1, 0.1), "validation_fraction must be in"), ((0.1, 1.0), "test_fraction must be in"), ((0.5, 0.5), "must be < 1")],
)
def test_bad_fractions_are_refused(fractions, message):
    with pytest.raises(ConfigError, match=message):
        time_split(ten_sessions(), *fractions)


def test_a_split_without_training_data_is_refused():
    frame = events([("s0", None, "a", "view", 0, None), ("s1", None, "a", "view", 0, None)])
    with pytest.raises(DataError, match="no training data"):
        time_split(frame, 0.0, 0.5)
