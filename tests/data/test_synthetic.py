"""The synthetic shop: determinism, schema, sizes and the learnable structure models rely on."""

import dataclasses
from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommenders.data import schema
from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
from recsys_base.errors import ConfigError

CONFIG = SyntheticShopConfig.small(seed=0)


@pytest.fixture(scope="module")
def clean_shop():
    return generate_shop(dataclasses.replace(CONFIG, clean=True))


@pytest.fixture(scope="module")
def dirty_shop():
    return generate_shop(CONFIG)


def _views_by_session(events: pd.DataFrame) -> pd.DataFrame:
    views = events[events["event_type"] == "view"]
    return views.groupby("session_id", sort=False).agg(
        items=("item_id", list), user=("user_id", "first"), start=("timestamp", "min")
    )


def _time_split(sessions: pd.DataFrame, fraction: float = 0.8):
    cut = sessions["start"].quantile(fraction)
    return sessions[sessions["start"] < cut], sessions[sessions["start"] >= cut]


def test_same_seed_gives_identical_frames_and_another_seed_does_not(dirty_shop):
    again = generate_shop(CONFIG)
    pdt.assert_frame_equal(again.events, dirty_shop.events)
    pdt.assert_frame_equal(again.catalog, dirty_shop.catalog)
    other = generate_shop(SyntheticShopConfig.small(seed=1))
    assert not other.catalog["title"].equals(dirty_shop.catalog["title"])
    assert not other.events["item_id"].head(1000).equals(dirty_shop.events["item_id"].head(1000))


def test_frames_follow_the_canonical_schema(clean_shop):
    events, catalog = clean_shop.events, clean_shop.catalog
    pdt.assert_series_equal(events.dtypes, schema.empty_events().dtypes)
    pdt.assert_series_equal(catalog.dtypes, schema.empty_catalog().dtypes)
    assert set(events["event_type"]) == set(schema.EVENT_TYPES)
    search = events["event_type"] == "search"
    assert events.loc[search, "item_id"].isna().all() and events.loc[~search, "item_id"].notna().all()
    assert events.loc[search, "query"].str.len().gt(0).all() and events.loc[~search, "query"].isna().all()
    assert events["session_id"].notna().all() and events["timestamp"].is_monotonic_increasing
    assert catalog["item_id"].is_unique and catalog["item_id"].str.fullmatch(r"item_\d{5}").all()
    assert set(events["item_id"].dropna()) <= set(catalog["item_id"])
    assert (catalog["price"] > 0).all() and catalog["title"].str.len().gt(0).all()


def test_sizes_follow_the_config(clean_shop):
    events, catalog = clean_shop.events, clean_shop.catalog
    assert len(catalog) == CONFIG.n_items
    assert catalog["category"].nunique() == CONFIG.n_categories
    assert catalog["brand"].nunique() <= CONFIG.n_brands
    assert events["session_id"].nunique() == CONFIG.n_sessions
    assert events["user_id"].nunique() <= CONFIG.n_users
    per_session = events.groupby("session_id")["user_id"].first()
    assert per_session.isna().mean() == pytest.approx(CONFIG.anonymous_rate, abs=0.03)
    start = pd.Timestamp(CONFIG.start_date)
    assert events["timestamp"].min() >= start
    assert events["timestamp"].max() < start + pd.Timedelta(days=CONFIG.days + 1)
    views_per_session = events[events["event_type"] == "view"].groupby("session_id").size()
    assert views_per_session.mean() == pytest.approx(CONFIG.mean_session_length, rel=0.1)
    assert views_per_session.max() <= CONFIG.max_session_length


def test_categories_beyond_the_named_list_are_invented():
    shop = generate_shop(SyntheticShopConfig(n_items=200, n_categories=60, n_users=50, n_sessions=100, clean=True))
    assert shop.catalog["category"].nunique() == 60


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    n_items=st.integers(2, 40),
    shape=st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
    n_users=st.integers(1, 10),
    n_sessions=st.integers(1, 30),
    clean=st.booleans(),
)
def test_tiny_and_odd_shops_are_still_well_formed(seed, n_items, shape, n_users, n_sessions, clean):
    config = SyntheticShopConfig(
        seed=seed,
        n_items=n_items,
        n_categories=1 + int(shape[0] * (n_items - 1)),
        n_brands=1 + int(shape[1] * 5),
        next_items_per_item=1 + int(shape[2] * (n_items - 2)),
        n_users=n_users,
        n_sessions=n_sessions,
        days=1,
        bot_session_rate=0.1,
        clean=clean,
    )
    shop = generate_shop(config)
    genuine = shop.events[shop.events["event_type"].isin(schema.EVENT_TYPES)]
    assert len(shop.catalog) == n_items
    assert set(genuine["item_id"].dropna()) <= set(shop.catalog["item_id"])
    assert genuine.loc[genuine["event_type"] == "view", "session_id"].nunique() >= n_sessions


def test_session_times_look_like_shopping(clean_shop):
    events = clean_shop.events
    gaps = events.groupby("session_id")["timestamp"].diff().dropna()
    assert gaps.min() >= pd.Timedelta(seconds=1)
    # Within the 30-minute inactivity gap sessionizers use, so they agree with session_id.
    assert gaps.max() <= pd.Timedelta(minutes=20)
    assert pd.Timedelta(seconds=10) < gaps.median() < pd.Timedelta(minutes=2)
    hours = events.groupby("session_id")["timestamp"].min().dt.hour
    assert (hours.between(19, 21)).sum() > 5 * (hours.between(2, 4)).sum()


def test_funnel_purchase_within_cart_within_view(clean_shop):
    events = clean_shop.events
    pairs = {
        kind: set(map(tuple, events.loc[events["event_type"] == kind, ["session_id", "item_id"]].to_numpy()))
        for kind in ("view", "cart", "purchase")
    }
    assert pairs["purchase"] <= pairs["cart"] <= pairs["view"]
    counts = events["event_type"].value_counts()
    assert 0.03 < counts["cart"] / counts["view"] < 0.2
    assert 0.3 < counts["purchase"] / counts["cart"] < 0.9
    carts = events[events["event_type"] == "cart"]
    assert not carts.duplicated(["session_id", "item_id"]).any()
    # Purchases happen at checkout: after every other event of their session.
    last_other = events[events["event_type"] != "purchase"].groupby("session_id")["timestamp"].max()
    purchases = events[events["event_type"] == "purchase"]
    assert (purchases["timestamp"].to_numpy() > last_other[purchases["session_id"]].to_numpy()).all()


def test_carts_favour_the_sessions_main_category(clean_shop):
    events = clean_shop.events.merge(clean_shop.catalog[["item_id", "category"]], on="item_id")
    views = events[events["event_type"] == "view"]
    per_category = views.groupby(["session_id", "category"]).size().sort_values(ascending=False, kind="stable")
    main = per_category.reset_index().drop_duplicates("session_id").set_index("session_id")["category"]
    carted = set(map(tuple, events.loc[events["event_type"] == "cart", ["session_id", "item_id"]].to_numpy()))
    was_carted = np.array([pair in carted for pair in map(tuple, views[["session_id", "item_id"]].to_numpy())])
    on_main = (views["category"] == main[views["session_id"]].to_numpy()).to_numpy()
    assert was_carted[on_main].mean() > 1.5 * was_carted[~on_main].mean()


def test_search_queries_come_from_the_next_viewed_title(clean_shop):
    events = clean_shop.events.sort_values(["session_id", "timestamp"], kind="stable").reset_index(drop=True)
    titles = clean_shop.catalog.set_index("item_id")["title"].str.lower().str.split()
    following = events.groupby("session_id")["item_id"].shift(-1)
    searches = events.index[events["event_type"] == "search"]
    assert len(searches) > 0.05 * (events["event_type"] == "view").sum()
    assert following[searches].notna().all()
    for query, item in zip(events.loc[searches, "query"], following[searches]):
        assert set(query.split()) <= set(titles[item]), (query, titles[item])


def test_title_nouns_name_one_category(clean_shop):
    catalog = clean_shop.catalog
    nouns = catalog["title"].str.split().str[-1]
    assert (catalog.groupby(nouns)["category"].nunique() == 1).all()


def _next_item_hit_rates(shop, k: int = 10) -> dict[str, float]:
    """HR@k on held-out sessions of three count models: popularity, last item, whole prefix."""
    index = {item: i for i, item in enumerate(shop.catalog["item_id"])}
    train, test = _time_split(_views_by_session(shop.events))
    n = len(index)
    transitions, popularity = np.zeros((n, n)), np.zeros(n)
    seen = np.zeros((len(train), n))
    for row, items in enumerate(train["items"]):
        ids = np.array([index[i] for i in items])
        np.add.at(popularity, ids, 1)
        np.add.at(transitions, (ids[:-1], ids[1:]), 1)
        seen[row, ids] = 1
    together = seen.T @ seen  # sessions in which two items were both viewed
    np.fill_diagonal(together, 0)
    last, prefix, target = [], [], []
    for items in test["items"]:
        ids = np.array([index[i] for i in items])
        counts = np.zeros(n)
        for position in range(1, len(ids)):
            counts[ids[position - 1]] += 1
            last.append(ids[position - 1])
            prefix.append(counts.copy())
            target.append(ids[position])
    target = np.array(target)

    def hit_rate(scores: np.ndarray) -> float:
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        return float((top == target[:, None]).any(axis=1).mean())

    return {
        "pairs": len(target),
        "popularity": hit_rate(np.broadcast_to(popularity, (len(target), n))),
        "last_item": hit_rate(transitions[last]),
        "order_free": hit_rate(np.array(prefix) @ together),
    }


def test_last_item_transitions_beat_popularity_and_order_free_counts(clean_shop):
    rates = _next_item_hit_rates(clean_shop)
    assert rates["pairs"] > 2_000
    assert rates["last_item"] > 0.5 and rates["last_item"] > 3 * rates["popularity"], rates
    # The order of a session matters: its last item says more than all its items together...
    assert rates["last_item"] > rates["order_free"] + 0.05, rates
    # ...but not everything: intent and taste leave room for better models.
    assert rates["last_item"] < 0.9, rates


def test_users_have_stable_tastes(clean_shop):
    category = dict(zip(clean_shop.catalog["item_id"], clean_shop.catalog["category"]))
    train, test = _time_split(_views_by_session(clean_shop.events))
    history = defaultdict(Counter)
    for items, user in zip(train["items"], train["user"]):
        if isinstance(user, str):
            history[user].update(category[i] for i in items)
    overall = {c for c, _ in Counter(category[i] for items in train["items"] for i in items).most_common(3)}
    known = [(items, user) for items, user in zip(test["items"], test["user"]) if history.get(user)]
    personal = np.mean([category[items[0]] in {c for c, _ in history[user].most_common(3)} for items, user in known])
    global_ = np.mean([category[items[0]] in overall for items, _ in known])
    # A returning shopper's own top categories miss less than half as often as the shop's.
    assert len(known) > 200 and 1 - personal < (1 - global_) / 2, (personal, global_)


def test_dirt_is_only_added_rows(clean_shop, dirty_shop):
    dirty, clean = dirty_shop.events, clean_shop.events
    genuine_sessions = set(clean["session_id"])
    bot = ~dirty["session_id"].isin(genuine_sessions)
    bot_lengths = dirty[bot].groupby("session_id").size()
    assert len(bot_lengths) == round(CONFIG.bot_session_rate * CONFIG.n_sessions)
    assert bot_lengths.min() >= 250
    unknown = ~dirty["event_type"].isin(schema.EVENT_TYPES)
    assert set(dirty.loc[unknown, "event_type"]) == {"wishlist", "compare", "share"}
    itemless_views = (dirty["event_type"] == "view") & dirty["item_id"].isna()
    duplicates = dirty.duplicated()
    for kind in (unknown, itemless_views, duplicates):
        assert kind.sum() > 0
    recovered = dirty[~(bot | unknown | itemless_views | duplicates)].reset_index(drop=True)
    pdt.assert_frame_equal(recovered, clean)

    prices = dirty_shop.catalog["price"]
    changed = prices != clean_shop.catalog["price"]
    assert changed.sum() == round(CONFIG.price_outlier_rate * CONFIG.n_items)
    assert set(prices[changed]) <= {0.0, 1e6}
    pdt.assert_frame_equal(dirty_shop.catalog.drop(columns="price"), clean_shop.catalog.drop(columns="price"))


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"n_items": 0}, "n_items"),
        ({"n_sessions": 10.5}, "n_sessions"),
        ({"seed": -1}, "seed"),
        ({"n_categories": 400}, "n_categories"),
        ({"search_probability": 1.5}, "search_probability"),
        ({"duplicate_rate": -0.1}, "duplicate_rate"),
        ({"anonymous_rate": float("nan")}, "anonymous_rate"),
        ({"mean_session_length": 0.5}, "mean_session_length"),
        ({"next_items_per_item": 300}, "next_items_per_item"),
        ({"transition_probability": 0.9, "noise_probability": 0.2}, "transition_probability"),
        ({"start_date": "soon"}, "start_date"),
        ({"clean": "yes"}, "clean"),
    ],
)
def test_bad_config_fields_are_named(overrides, field):
    with pytest.raises(ConfigError, match=rf"SyntheticShopConfig\.{field}\b"):
        SyntheticShopConfig.small(**overrides).validate()


def test_new_items_are_released_day_by_day_and_never_seen_before_their_day():
    from recommenders.data.synthetic import release_days, session_days

    config = SyntheticShopConfig.small(n_sessions=2_000, new_item_days=3, new_items_per_day=4, clean=True)
    shop = generate_shop(config)
    release = release_days(config)
    assert release.value_counts().to_dict() == {0: 288, 11: 4, 12: 4, 13: 4}
    views = shop.events.dropna(subset=["item_id"])
    day = views["session_id"].map(session_days(shop.events, config)).to_numpy()
    released = views["item_id"].map(release).to_numpy()
    assert (released <= day).all()
    # Launched and promoted: most of each day's new items are viewed on their first day.
    for new_day in (11, 12, 13):
        fresh = set(views["item_id"][(released == new_day) & (day == new_day)])
        assert len(fresh) >= 3, new_day
    assert generate_shop(config).events.equals(shop.events)


def test_new_item_settings_are_checked():
    with pytest.raises(ConfigError, match="new_item_days and new_items_per_day must both"):
        SyntheticShopConfig.small(new_item_days=2).validate()
    with pytest.raises(ConfigError, match="new_item_days must be less than days"):
        SyntheticShopConfig.small(new_item_days=14, new_items_per_day=1).validate()
