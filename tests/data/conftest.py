"""Builders of tiny hand-made shops for the data-layer tests."""

import pandas as pd
import pytest

from recommenders.data import schema

T0 = pd.Timestamp("2024-03-01 10:00:00")
COLUMNS = ["session_id", "user_id", "item_id", "event_type", "minute", "query"]


def events(rows) -> pd.DataFrame:
    """Canonical events from (session, user, item, type, minutes after T0 or None, query) tuples."""
    frame = pd.DataFrame(rows, columns=COLUMNS)
    minutes = pd.to_numeric(frame.pop("minute"))
    frame["timestamp"] = T0 + pd.to_timedelta(minutes, unit="min")
    return schema.conform_events(frame)


def catalog(rows) -> pd.DataFrame:
    """Canonical catalog from (item, price) tuples."""
    return schema.conform_catalog(pd.DataFrame(rows, columns=["item_id", "price"]))


@pytest.fixture
def make_shop():
    """``make_shop(event_rows, catalog_rows=())`` -> ShopData."""

    def build(event_rows, catalog_rows=()):
        return schema.ShopData(events(event_rows), catalog(list(catalog_rows)))

    return build
