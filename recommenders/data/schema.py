"""Canonical event and catalog tables every loader produces and every consumer reads.

Events (one row per shopper action), ``pandas.DataFrame`` with columns:

=============  ==================  ===================================================
column         dtype               meaning
=============  ==================  ===================================================
session_id     string              shopping session; sessionized by gap when absent
user_id        string, nullable    logged-in shopper (``<NA>`` for anonymous)
item_id        string, nullable    product; ``<NA>`` only on ``search`` events
event_type     string              one of :data:`EVENT_TYPES`
timestamp      datetime64[ns]      UTC, timezone-naive
query          string, nullable    search text; set only on ``search`` events
=============  ==================  ===================================================

Catalog (one row per product): ``item_id`` (string), ``title`` (string), ``category``
(string), ``brand`` (string), ``price`` (float64). Missing title/brand are ``""``;
a missing price is ``NaN``.

Example:

>>> from recommenders.data import schema
>>> events = schema.empty_events()
>>> list(events.columns) == list(schema.EVENT_COLUMNS)
True
"""

from __future__ import annotations

import pandas as pd

from recsys_base.errors import DataError
from serving import contract

# Events on an item: the contract's session event types, in funnel order (the strength of
# interest an event shows, used as ranking labels).
INTERACTION_TYPES = contract.EVENT_TYPES
# A search: a query and no item. Data only: a serving request carries its query as the
# ``query`` input, never as a session event.
SEARCH = "search"
EVENT_TYPES = (*INTERACTION_TYPES, SEARCH)

EVENT_COLUMNS = {
    "session_id": "string",
    "user_id": "string",
    "item_id": "string",
    "event_type": "string",
    "timestamp": "datetime64[ns]",
    "query": "string",
}
CATALOG_COLUMNS = {
    "item_id": "string",
    "title": "string",
    "category": "string",
    "brand": "string",
    "price": "float64",
}


def empty_events() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in EVENT_COLUMNS.items()})


def empty_catalog() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in CATALOG_COLUMNS.items()})


def _require_columns(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} is missing column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}")


def conform_events(frame: pd.DataFrame, what: str = "events") -> pd.DataFrame:
    """Returns ``frame`` with exactly the canonical event columns and dtypes.

    ``user_id`` and ``query`` may be absent (filled with ``<NA>``); the rest must exist.
    Values are not validated here: that is cleaning's job, which reports what it drops.
    """
    frame = frame.copy()
    for optional in ("user_id", "query"):
        if optional not in frame.columns:
            frame[optional] = pd.NA
    _require_columns(frame, EVENT_COLUMNS, what)
    out = frame[list(EVENT_COLUMNS)]
    return out.astype({c: t for c, t in EVENT_COLUMNS.items() if c != "timestamp"}).assign(
        timestamp=pd.to_datetime(out["timestamp"]).astype("datetime64[ns]")
    )


def conform_catalog(frame: pd.DataFrame, what: str = "catalog") -> pd.DataFrame:
    """Returns ``frame`` with exactly the canonical catalog columns and dtypes.

    Only ``item_id`` is required; missing text columns become ``""`` and price ``NaN``.
    """
    frame = frame.copy()
    _require_columns(frame, ["item_id"], what)
    for column in ("title", "category", "brand"):
        if column not in frame.columns:
            frame[column] = ""
    if "price" not in frame.columns:
        frame["price"] = float("nan")
    out = frame[list(CATALOG_COLUMNS)].astype(CATALOG_COLUMNS)
    for column in ("title", "category", "brand"):
        out[column] = out[column].fillna("")
    return out.reset_index(drop=True)


class ShopData:
    """A shop's cleaned events and catalog, the unit every later stage consumes.

    Example:

    >>> shop = ShopData(empty_events(), empty_catalog())
    >>> len(shop.events), len(shop.catalog)
    (0, 0)
    """

    def __init__(self, events: pd.DataFrame, catalog: pd.DataFrame):
        self.events = conform_events(events)
        self.catalog = conform_catalog(catalog)

    def __repr__(self) -> str:
        return (
            f"ShopData({len(self.events)} events, {self.events['session_id'].nunique()} sessions, "
            f"{len(self.catalog)} items)"
        )
