"""Each cleaning rule on tiny hand-made shops: exact counts and exactly which rows go."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from recommenders.data import schema
from recommenders.data.cleaning import CATALOG_REASONS, EVENT_REASONS, CleaningConfig, clean
from recsys_base.errors import ConfigError, DataError

# Support rules off, so each test sees only the rule it is about.
LENIENT = CleaningConfig(min_item_support=1, min_session_length=1)


def lenient(**changes) -> CleaningConfig:
    return dataclasses.replace(LENIENT, **changes)


def dropped(result) -> dict:
    return {reason: n for reason, n in result.report.dropped.items() if n}


def assert_nothing_lost(result):
    report = result.report
    assert report.rows_in == report.rows_out + len(result.quarantine)
    assert len(result.shop.events) == report.rows_out
    assert result.quarantine["reason"].value_counts().to_dict() == dropped(result)


def test_invalid_rows_are_quarantined_under_their_first_reason(make_shop):
    shop = make_shop(
        [
            ("s1", None, "a", "view", 0, None),
            ("s1", None, "b", " View ", 1, None),  # normalized, kept
            ("s1", None, "c", "teleport", 2, None),
            ("s1", None, "d", None, 3, None),
            ("s1", None, "e", "view", None, None),
            (None, None, "f", "view", 4, None),
            ("s1", None, None, "cart", 5, None),
            ("s1", None, "  ", "purchase", 6, None),
            ("s1", None, None, "search", 7, "red shoes"),  # searches need no item
            ("s1", None, None, "search", 8, "   "),
            ("s1", None, None, "search", 9, None),
        ]
    )
    result = clean(shop, LENIENT)
    assert dropped(result) == {
        "invalid_event_type": 2,
        "invalid_timestamp": 1,
        "missing_session": 1,
        "missing_item": 2,
        "empty_query": 2,
    }
    assert list(result.shop.events["event_type"]) == ["view", "view", "search"]
    assert list(result.quarantine["reason"]) == [
        "invalid_event_type",
        "invalid_event_type",
        "invalid_timestamp",
        "missing_session",
        "missing_item",
        "missing_item",
        "empty_query",
        "empty_query",
    ]
    assert list(result.quarantine["item_id"].fillna("-"))[:4] == ["c", "d", "e", "f"]
    assert_nothing_lost(result)


def test_exact_duplicates_keep_the_first_copy(make_shop):
    row = ("s1", "u1", "a", "view", 0, None)
    shop = make_shop([row, ("s1", "u1", "b", "view", 1, None), row, row, ("s1", "u1", "a", "cart", 0, None)])
    result = clean(shop, LENIENT)
    assert dropped(result) == {"duplicate": 2}
    assert len(result.shop.events) == 3
    assert_nothing_lost(result)


def test_sessions_come_from_users_and_inactivity_gaps(make_shop):
    shop = make_shop(
        [
            (None, "u1", "a", "view", 0, None),
            (None, "u1", "b", "view", 20, None),
            (None, "u1", "c", "view", 51, None),  # 31 minutes later: new session
            (None, "u2", "a", "view", 5, None),
            ("s9", "u1", "a", "view", 0, None),
            ("s9", "u1", "b", "view", 29, None),
            ("s9", "u1", "c", "view", 90, None),  # the given session is cut too
        ]
    )
    result = clean(shop, LENIENT)
    sessions = result.shop.events.groupby("session_id")["item_id"].apply(list).to_dict()
    assert sorted(sessions.values()) == [["a"], ["a", "b"], ["a", "b"], ["c"], ["c"]]
    assert sessions["s9"] == ["a", "b"]
    assert result.report.sessions_from_users == 3
    assert result.report.sessions_split_by_gap == 2
    assert result.report.sessions_out == 5
    assert_nothing_lost(result)


def test_session_gap_is_configurable(make_shop):
    shop = make_shop([("s", None, "a", "view", 0, None), ("s", None, "b", "view", 45, None)])
    assert clean(shop, lenient(session_gap_minutes=60)).report.sessions_out == 1
    assert clean(shop, lenient(session_gap_minutes=30)).report.sessions_out == 2


def test_bot_sessions_are_dropped_whole(make_shop):
    long_session = [("long", None, f"i{n}", "view", n, None) for n in range(11)]
    fast_session = [("fast", None, f"i{n}", "view", 100 + n / 10, None) for n in range(6)]
    slow_session = [("slow", None, f"i{n}", "view", 200 + n, None) for n in range(6)]
    shop = make_shop(long_session + fast_session + slow_session)
    result = clean(shop, lenient(max_events_per_session=10, max_events_per_minute=5))
    assert dropped(result) == {"bot_session_length": 11, "bot_event_rate": 6}
    assert set(result.shop.events["session_id"]) == {"slow"}
    assert set(result.quarantine["session_id"]) == {"long", "fast"}
    assert_nothing_lost(result)


def test_event_rate_counts_events_within_one_minute(make_shop):
    # Six events spread over exactly one minute: at most five within any open minute.
    edge = [("edge", None, f"i{n}", "view", n / 5, None) for n in range(6)]
    human = [("human", None, "a", "view", 100, None)]
    assert clean(make_shop(edge + human), lenient(max_events_per_minute=5)).report.dropped["bot_event_rate"] == 0
    assert clean(make_shop(edge + human), lenient(max_events_per_minute=4)).report.dropped["bot_event_rate"] == 6


def test_caps_can_be_switched_off(make_shop):
    shop = make_shop([("s", None, "a", "view", n / 100, None) for n in range(300)])
    result = clean(shop, lenient(max_events_per_session=None, max_events_per_minute=None))
    assert result.report.rows_out == 300


def test_item_support_iterates_with_session_length(make_shop):
    # "x" has 2 events; dropping "rare" (1 event) leaves s3 with one item event, so s3 goes,
    # which leaves "x" with 1 event: it goes too, and then s2 is too short.
    shop = make_shop(
        [
            ("s1", None, "a", "view", 0, None),
            ("s1", None, "a", "cart", 1, None),
            ("s1", None, None, "search", 2, "words"),
            ("s2", None, "a", "view", 10, None),
            ("s2", None, "x", "view", 11, None),
            ("s3", None, "x", "view", 20, None),
            ("s3", None, "rare", "view", 21, None),
            ("s3", None, None, "search", 22, "more words"),
        ]
    )
    result = clean(shop, CleaningConfig(min_item_support=2, min_session_length=2))
    assert dropped(result) == {"rare_item": 2, "short_session": 3}
    assert list(result.shop.events["session_id"]) == ["s1", "s1", "s1"]
    assert sorted(result.quarantine["item_id"].dropna()) == ["a", "rare", "x", "x"]
    assert_nothing_lost(result)


def test_nothing_left_names_the_reasons(make_shop):
    shop = make_shop([("s1", None, "a", "teleport", 0, None), ("s1", None, "b", "view", None, None)])
    with pytest.raises(DataError, match=r"no events left after cleaning: 2 rows in, dropped invalid_event_type=1, invalid_timestamp=1"):
        clean(shop, LENIENT)


def test_catalog_cleaning_is_reported_separately(make_shop):
    prices = [(f"p{n}", float(10 + n)) for n in range(30)]
    shop = make_shop(
        [("s", None, "p0", "view", 0, None), ("s", None, "unlisted", "view", 1, None)],
        prices + [("p1", 12.5), (None, 5.0), ("zero", 0.0), ("huge", 1e7), ("tiny", 1e-4), ("unknown", np.nan)],
    )
    result = clean(shop, LENIENT)
    report = result.report
    assert report.catalog_dropped == {"missing_item_id": 1, "duplicate_item_id": 1}
    assert report.catalog_prices_cleared == {"nonpositive_price": 1, "outlier_price": 2}
    assert report.catalog_rows_in == 36 and report.catalog_rows_added == 1 and report.catalog_rows_out == 35
    prices_out = result.shop.catalog.set_index("item_id")["price"]
    assert prices_out["p1"] == 12.5  # the later row wins
    assert prices_out[["zero", "huge", "tiny", "unknown", "unlisted"]].isna().all()
    assert list(result.catalog_quarantine["reason"]) == ["missing_item_id", "duplicate_item_id"]
    assert list(result.catalog_quarantine["price"]) == [5.0, 11.0]


def test_output_is_ordered_sessions_of_time_ordered_events(make_shop):
    shop = make_shop(
        [
            ("late", None, "b", "view", 50, None),
            ("early", None, "b", "view", 5, None),
            ("late", None, "a", "view", 40, None),
            ("early", None, "a", "view", 0, None),
        ]
    )
    out = clean(shop, LENIENT).shop.events
    assert list(out["session_id"]) == ["early", "early", "late", "late"]
    assert list(out["item_id"]) == ["a", "b", "a", "b"]
    assert dict(out.dtypes.astype(str)) == dict(schema.EVENT_COLUMNS.items())


def test_report_reasons_have_a_fixed_order(make_shop):
    result = clean(make_shop([("s", None, "a", "view", 0, None)]), LENIENT)
    assert tuple(result.report.dropped) == EVENT_REASONS
    assert tuple(result.report.catalog_dropped) == CATALOG_REASONS
    assert result.quarantine.empty and list(result.quarantine.columns) == [*schema.EVENT_COLUMNS, "reason"]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"session_gap_minutes": 0}, "session_gap_minutes must be > 0"),
        ({"session_gap_minutes": float("inf")}, "session_gap_minutes must be a finite number, got inf"),
        ({"min_item_support": 0}, "min_item_support must be >= 1"),
        ({"min_item_support": True}, "min_item_support must be an integer, got True"),
        ({"max_events_per_minute": 2.5}, "max_events_per_minute must be an integer, got 2.5"),
        ({"max_events_per_minute": 0}, "max_events_per_minute must be >= 1 or None"),
        ({"price_iqr_factor": -1.0}, "price_iqr_factor must be > 0 or None"),
    ],
)
def test_bad_config_is_refused(make_shop, changes, message):
    with pytest.raises(ConfigError, match=message):
        clean(make_shop([("s", None, "a", "view", 0, None)]), lenient(**changes))


def test_synthetic_dirt_is_removed():
    from recommenders.data.synthetic import SyntheticShopConfig, generate_shop

    shop = generate_shop(SyntheticShopConfig.small(seed=1))
    result = clean(shop)
    counts = result.report.dropped
    for reason in ("invalid_event_type", "missing_item", "duplicate", "bot_session_length"):
        assert counts[reason] > 0, reason
    events = result.shop.events
    assert events["event_type"].isin(schema.EVENT_TYPES).all()
    assert not events.drop(columns=["user_id", "query", "item_id"]).isna().any().any()
    assert not events.duplicated().any()
    assert events.groupby("session_id").size().max() <= 200
    assert result.report.catalog_prices_cleared["nonpositive_price"] + result.report.catalog_prices_cleared["outlier_price"] > 0
    assert_nothing_lost(result)
    assert pd.Index(events["item_id"].dropna()).isin(result.shop.catalog["item_id"]).all()
