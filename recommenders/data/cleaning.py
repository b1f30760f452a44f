"""Cleaning: from raw canonical events to trustworthy sessions, with every drop accounted for.

Rules run in this order and each dropped event row is counted under the first reason
that applies (:data:`EVENT_REASONS`, a fixed order so reports compare across runs):

1. ``invalid_event_type``: not one of view/cart/purchase/search (after trimming and
   lower-casing); ``invalid_timestamp``: no parsable time; ``missing_session``: neither a
   session id nor a user id to sessionize by; ``missing_item``: a view/cart/purchase
   without an item; ``empty_query``: a search without query text.
2. ``duplicate``: an exact copy of an earlier row.
3. Sessionization (drops nothing): rows without a session id are grouped by user, and
   any session is cut where the shopper was inactive longer than ``session_gap_minutes``.
4. Bots, whole sessions: ``bot_session_length`` (more than ``max_events_per_session``
   events) and ``bot_event_rate`` (more than ``max_events_per_minute`` events within a minute).
5. Support, repeated until stable as in the standard session-recommendation preprocessing:
   ``rare_item`` (view/cart/purchase events of items with fewer than ``min_item_support``
   such events) and ``short_session`` (whole sessions with fewer than
   ``min_session_length`` view/cart/purchase events, their searches included).

The catalog is cleaned too (:data:`CATALOG_REASONS`): rows without an item id and
repeated item ids (the last row wins, as a later row updates an earlier one) are
dropped. A price that is not positive, or whose logarithm lies more than
``price_iqr_factor`` interquartile ranges outside the quartiles, is an outlier: the
product stays (it is still sold) and its price becomes unknown (``NaN``). Items seen in
events but absent from the catalog get a row with empty text and unknown price.

Example:

>>> from recommenders.data import schema
>>> import pandas as pd
>>> events = pd.DataFrame({"session_id": ["s", "s", "s"], "item_id": ["a", "b", "a"],
...     "event_type": ["view", "view", "teleport"], "timestamp": pd.date_range("2024-01-01", periods=3, freq="min")})
>>> result = clean(schema.ShopData(events, schema.empty_catalog()), CleaningConfig(min_item_support=1))
>>> result.report.dropped["invalid_event_type"], len(result.shop.events)
(1, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommenders.data import schema
from recommenders.data.report import CleaningReport, DropLedger, quarantine_catalog, quarantine_events
from recsys_base.errors import ConfigError, DataError
from recsys_base.fields import check_fields

EVENT_REASONS = (
    "invalid_event_type",
    "invalid_timestamp",
    "missing_session",
    "missing_item",
    "empty_query",
    "duplicate",
    "bot_session_length",
    "bot_event_rate",
    "rare_item",
    "short_session",
)
CATALOG_REASONS = ("missing_item_id", "duplicate_item_id")
# Below this many priced products quartiles say nothing about what an outlier is.
MIN_PRICES_FOR_IQR = 20


@dataclass
class CleaningConfig:
    """Thresholds of the cleaning rules; ``None`` switches a cap off.

    Example:

    >>> CleaningConfig(session_gap_minutes=60).validate().session_gap_minutes
    60.0
    """

    session_gap_minutes: float = 30.0
    max_events_per_session: int | None = 200
    max_events_per_minute: int | None = 30
    min_item_support: int = 5
    min_session_length: int = 2
    price_iqr_factor: float | None = 1.5

    def validate(self) -> CleaningConfig:
        """Checks every value once (types, then ranges); returns ``self`` with numbers normalized."""
        check_fields(self)
        if not self.session_gap_minutes > 0:
            raise ConfigError(f"session_gap_minutes must be > 0, got {self.session_gap_minutes}")
        for name in ("max_events_per_session", "max_events_per_minute", "min_item_support", "min_session_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1{' or None' if name.startswith('max_') else ''}, got {value}")
        if self.price_iqr_factor is not None and not self.price_iqr_factor > 0:
            raise ConfigError(f"price_iqr_factor must be > 0 or None, got {self.price_iqr_factor}")
        return self


@dataclass
class CleanResult:
    """Output of :func:`clean`: the clean shop, the counts, and every dropped row.

    Example:

    >>> from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
    >>> result = clean(generate_shop(SyntheticShopConfig.small()))
    >>> result.quarantine.groupby("reason").size()
    reason
    bot_session_length    3344
    duplicate              358
    invalid_event_type     107
    missing_item           141
    short_session          598
    dtype: int64
    """

    shop: schema.ShopData
    report: CleaningReport
    quarantine: pd.DataFrame
    catalog_quarantine: pd.DataFrame


def _blank_to_na(values: pd.Series) -> pd.Series:
    values = values.str.strip()
    return values.mask(values == "")


def _normalize(events: pd.DataFrame) -> pd.DataFrame:
    return events.assign(
        session_id=_blank_to_na(events["session_id"]),
        user_id=_blank_to_na(events["user_id"]),
        item_id=_blank_to_na(events["item_id"]),
        event_type=events["event_type"].str.strip().str.lower(),
        query=_blank_to_na(events["query"]),
    )


def _drop_invalid(events: pd.DataFrame, ledger: DropLedger) -> pd.DataFrame:
    events = ledger.take(events, ~events["event_type"].isin(schema.EVENT_TYPES), "invalid_event_type")
    events = ledger.take(events, events["timestamp"].isna(), "invalid_timestamp")
    events = ledger.take(events, events["session_id"].isna() & events["user_id"].isna(), "missing_session")
    is_search = events["event_type"] == schema.SEARCH
    events = ledger.take(events, ~is_search & events["item_id"].isna(), "missing_item")
    is_search = events["event_type"] == schema.SEARCH
    return ledger.take(events, is_search & events["query"].isna(), "empty_query")


def _sessionize(events: pd.DataFrame, gap_minutes: float) -> tuple[pd.DataFrame, int, int]:
    """Assigns final session ids; returns events sorted by session, then time."""
    from_user = events["session_id"].isna()
    key = events["session_id"].where(~from_user, "user-" + events["user_id"])
    events = events.assign(_key=key).sort_values(["_key", "timestamp"], kind="stable")
    same_key = (events["_key"] == events["_key"].shift()).fillna(False).astype(bool)
    gap = events["timestamp"].diff() > pd.Timedelta(minutes=gap_minutes)
    starts = ~same_key | gap
    part = starts.astype(np.int64).groupby(events["_key"]).cumsum()
    keep_id = ~from_user.loc[events.index] & (part == 1)
    session_id = events["_key"].where(keep_id, events["_key"] + "~" + part.astype("string"))
    sessions_from_users = int((starts & from_user.loc[events.index]).sum())
    split_by_gap = int((same_key & gap).sum())
    return events.drop(columns="_key").assign(session_id=session_id), sessions_from_users, split_by_gap


def _drop_bots(events: pd.DataFrame, config: CleaningConfig, ledger: DropLedger) -> pd.DataFrame:
    """Drops whole sessions that are too long or too fast; ``events`` sorted by session, time."""
    if config.max_events_per_session is not None:
        length = events.groupby("session_id")["session_id"].transform("size")
        events = ledger.take(events, length > config.max_events_per_session, "bot_session_length")
    if config.max_events_per_minute is not None:
        lag = config.max_events_per_minute
        # More than `lag` events within a minute <=> some event and the one `lag` rows earlier in
        # the same session are less than a minute apart (rows are time-sorted per session).
        sessions = events["session_id"].to_numpy()
        times = events["timestamp"].to_numpy().astype(np.int64)
        fast = np.zeros(len(events), dtype=bool)
        if len(events) > lag:
            fast[lag:] = (sessions[lag:] == sessions[:-lag]) & (times[lag:] - times[:-lag] < 60 * 10**9)
        bots = pd.Series(fast, index=events.index).groupby(events["session_id"]).transform("any")
        events = ledger.take(events, bots, "bot_event_rate")
    return events


def _enforce_support(events: pd.DataFrame, config: CleaningConfig, ledger: DropLedger) -> pd.DataFrame:
    while True:
        is_item = events["event_type"] != schema.SEARCH
        support = events.loc[is_item, "item_id"].value_counts()
        rare = is_item & (events["item_id"].map(support).fillna(0) < config.min_item_support)
        events = ledger.take(events, rare, "rare_item")
        is_item = events["event_type"] != schema.SEARCH
        length = is_item.groupby(events["session_id"]).transform("sum")
        short = length < config.min_session_length
        events = ledger.take(events, short, "short_session")
        if not rare.any() and not short.any():
            return events


def _clean_catalog(catalog: pd.DataFrame, config: CleaningConfig, ledger: DropLedger) -> tuple[pd.DataFrame, dict[str, int]]:
    catalog = catalog.assign(item_id=_blank_to_na(catalog["item_id"]))
    catalog = ledger.take(catalog, catalog["item_id"].isna(), "missing_item_id")
    catalog = ledger.take(catalog, catalog["item_id"].duplicated(keep="last"), "duplicate_item_id")
    price = catalog["price"].where(np.isfinite(catalog["price"]))
    nonpositive = price <= 0
    outlier = pd.Series(False, index=catalog.index)
    log_price = np.log(price[price > 0])
    if config.price_iqr_factor is not None and len(log_price) >= MIN_PRICES_FOR_IQR:
        q1, q3 = log_price.quantile([0.25, 0.75])
        reach = config.price_iqr_factor * (q3 - q1)
        outlier = ((log_price < q1 - reach) | (log_price > q3 + reach)).reindex(catalog.index, fill_value=False)
    cleared = {"nonpositive_price": int(nonpositive.sum()), "outlier_price": int(outlier.sum())}
    catalog = catalog.assign(price=price.mask(nonpositive | outlier))
    return catalog, cleared


def _ordered(events: pd.DataFrame) -> pd.DataFrame:
    """Sessions in order of their first event, events in time order within each."""
    start = events.groupby("session_id")["timestamp"].transform("min")
    ordered = events.assign(_start=start).sort_values(["_start", "session_id", "timestamp"], kind="stable")
    return ordered.drop(columns="_start").reset_index(drop=True)


def _nothing_left(counts: dict[str, int], rows_in: int) -> DataError:
    reasons = ", ".join(f"{reason}={n}" for reason, n in counts.items() if n) or "the input has no rows"
    return DataError(f"no events left after cleaning: {rows_in} rows in, dropped {reasons}")


def clean(shop: schema.ShopData, config: CleaningConfig | None = None) -> CleanResult:
    """Applies the cleaning rules (see the module docstring) to ``shop``.

    Nothing is lost: ``report.rows_in == report.rows_out + len(quarantine)``, and the
    ``reason`` column of ``quarantine`` says why each row went. Raises DataError when no
    event survives, listing the counts by reason.
    """
    config = (config or CleaningConfig()).validate()
    ledger = DropLedger(EVENT_REASONS)
    events = _normalize(shop.events.reset_index(drop=True))
    rows_in = len(events)
    events = _drop_invalid(events, ledger)
    events = ledger.take(events, events.duplicated(keep="first"), "duplicate")
    events, from_users, split_by_gap = _sessionize(events, config.session_gap_minutes)
    events = _drop_bots(events, config, ledger)
    events = _enforce_support(events, config, ledger)
    if events.empty:
        raise _nothing_left(ledger.counts, rows_in)
    events = _ordered(events)

    catalog_ledger = DropLedger(CATALOG_REASONS)
    catalog, cleared = _clean_catalog(shop.catalog, config, catalog_ledger)
    event_items = events["item_id"].dropna().unique()
    unlisted = pd.Index(event_items).difference(pd.Index(catalog["item_id"]))
    if len(unlisted):
        catalog = pd.concat([catalog, pd.DataFrame({"item_id": pd.array(unlisted, dtype="string")})], ignore_index=True)
    clean_shop = schema.ShopData(events, catalog)

    report = CleaningReport(
        rows_in=rows_in,
        rows_out=len(events),
        dropped=dict(ledger.counts),
        sessions_out=int(events["session_id"].nunique()),
        items_out=int(events["item_id"].nunique()),
        sessions_from_users=from_users,
        sessions_split_by_gap=split_by_gap,
        catalog_rows_in=len(shop.catalog),
        catalog_rows_out=len(clean_shop.catalog),
        catalog_dropped=dict(catalog_ledger.counts),
        catalog_prices_cleared=cleared,
        catalog_rows_added=len(unlisted),
    )
    return CleanResult(clean_shop, report, quarantine_events(ledger), quarantine_catalog(catalog_ledger))
