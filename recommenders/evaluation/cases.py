"""Next-item test cases: every prefix of every session, paired with the item that came next.

A case is what a recommender sees at one moment of a session (the items so far, their
event types and times, the shopper and the latest search query) and the item event that
actually followed. Search events are never targets; their text rides along as the latest
query of the prefix, so a session that opens with a search yields a case with an empty
item prefix and a query (personalized search).

Example:

>>> import pandas as pd
>>> from recommenders.data import schema
>>> events = schema.conform_events(pd.DataFrame({
...     "session_id": ["s", "s", "s"], "item_id": ["a", "b", "c"],
...     "event_type": ["view", "view", "cart"],
...     "timestamp": pd.to_datetime([0, 60, 120], unit="s")}))
>>> cases = make_next_item_cases(events)
>>> cases.prefix_item_ids, list(cases.targets)
([['a'], ['a', 'b']], ['b', 'c'])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommenders.data import schema


@dataclass(frozen=True)
class NextItemCases:
    """Parallel per-case fields; prefixes are oldest first.

    ``session_ids``, ``user_ids`` (``""`` for anonymous), ``queries`` (``""`` when the
    shopper has not searched yet) and ``targets`` are object arrays of ``str``;
    ``prefix_timestamps`` holds one ``int64`` array of unix seconds per case.

    Example (``events`` as in the module example)::

        first = make_next_item_cases(events).take([0])
        first.prefix_item_ids, list(first.targets)  # ([['a']], ['b'])
    """

    session_ids: np.ndarray
    prefix_item_ids: list[list[str]]
    prefix_event_types: list[list[str]]
    prefix_timestamps: list[np.ndarray]
    user_ids: np.ndarray
    queries: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, indices) -> NextItemCases:
        """Returns the cases at ``indices`` (an integer array, list or range), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return NextItemCases(
            session_ids=self.session_ids[indices],
            prefix_item_ids=[self.prefix_item_ids[i] for i in indices],
            prefix_event_types=[self.prefix_event_types[i] for i in indices],
            prefix_timestamps=[self.prefix_timestamps[i] for i in indices],
            user_ids=self.user_ids[indices],
            queries=self.queries[indices],
            targets=self.targets[indices],
        )

    def subset(self, max_cases: int | None, seed: int = 0) -> NextItemCases:
        """A fixed random subset of at most ``max_cases`` cases (``None``: all), in their order.

        The same ``seed`` picks the same cases, so scores of different models or epochs
        on a subset compare like for like.

        Example::

            cases.subset(5_000)  # every model scored on the same 5,000 cases
        """
        if max_cases is None or len(self) <= max_cases:
            return self
        return self.take(np.sort(np.random.default_rng(seed).choice(len(self), size=max_cases, replace=False)))


def _strings(series: pd.Series) -> np.ndarray:
    return series.astype("string").fillna("").to_numpy(dtype=object)


def order_events(events: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Returns canonical ``events`` grouped by session and ordered by time, with per-row
    session codes (0, 1, ... in order of first appearance) and unix seconds.

    Equal timestamps keep the input order: benchmark files often give a whole session one time.
    """
    events = schema.conform_events(events)
    session_codes, _ = pd.factorize(events["session_id"])
    seconds = events["timestamp"].to_numpy().astype("datetime64[s]").astype(np.int64)
    order = np.lexsort((np.arange(len(events)), seconds, session_codes))
    return events.iloc[order].reset_index(drop=True), session_codes[order], seconds[order]


def make_next_item_cases(events: pd.DataFrame) -> NextItemCases:
    """Returns one case per item event that has context: an earlier item event or a search.

    Cases follow :func:`order_events`: sessions in order of first appearance, time order within.
    """
    events, session_codes, seconds = order_events(events)

    is_item = events["event_type"].isin(schema.INTERACTION_TYPES).to_numpy() & events["item_id"].notna().to_numpy()
    searched = events["query"].where(events["event_type"] == schema.SEARCH)
    latest_query = _strings(searched.groupby(session_codes).ffill())

    item_rows = np.flatnonzero(is_item)
    item_sessions = session_codes[item_rows]
    # Position of each item event within its session's item events: a prefix is the run
    # of item events from the session's first one up to (excluding) the target.
    is_first = np.r_[True, item_sessions[1:] != item_sessions[:-1]]
    run_start = np.maximum.accumulate(np.where(is_first, np.arange(len(item_rows)), 0))
    prefix_lengths = np.arange(len(item_rows)) - run_start
    queries = latest_query[item_rows]
    keep = (prefix_lengths > 0) | (queries != "")
    targets_at = np.flatnonzero(keep)

    item_ids = _strings(events["item_id"])[item_rows]
    event_types = _strings(events["event_type"])[item_rows]
    item_seconds = seconds[item_rows]
    starts, ends = run_start[targets_at], targets_at
    return NextItemCases(
        session_ids=_strings(events["session_id"])[item_rows][targets_at],
        prefix_item_ids=[item_ids[s:e].tolist() for s, e in zip(starts, ends)],
        prefix_event_types=[event_types[s:e].tolist() for s, e in zip(starts, ends)],
        prefix_timestamps=[item_seconds[s:e] for s, e in zip(starts, ends)],
        user_ids=_strings(events["user_id"])[item_rows][targets_at],
        queries=queries[targets_at],
        targets=item_ids[targets_at],
    )
