"""Tiny hand-made sessions for the evaluation tests."""

import pandas as pd

from recommenders.data import schema


def view_events(sessions: dict[str, list[str]]) -> pd.DataFrame:
    """Canonical view events; sessions start an hour apart in dict order, clicks a minute apart."""
    rows = [
        (session, item, pd.Timestamp("2024-01-01") + pd.Timedelta(hours=s, minutes=i))
        for s, (session, items) in enumerate(sessions.items())
        for i, item in enumerate(items)
    ]
    frame = pd.DataFrame(rows, columns=["session_id", "item_id", "timestamp"]).assign(event_type="view")
    return schema.conform_events(frame)


def catalog_of(item_ids) -> pd.DataFrame:
    """Canonical catalog listing ``item_ids`` in that order."""
    return schema.conform_catalog(pd.DataFrame({"item_id": list(item_ids)}))
