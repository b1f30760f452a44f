"""Turns a shopper's session into the contract's input tensors (see serving/contract/__init__.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from serving import contract


def normalize_session(session) -> list[tuple[str, str, int]]:
    """``session`` as (item_id, event_type, timestamp) events, oldest first.

    Accepts a list of item ids (events default to ``view`` at time 0) or of
    ``(item_id, event_type, timestamp)`` tuples; raises ValueError naming a bad event.
    """
    if isinstance(session, (str, bytes)) or not isinstance(session, Sequence):
        raise ValueError(f"a session is a list of item ids or (item_id, event_type, timestamp) tuples, got {type(session).__name__}")
    events = []
    for position, event in enumerate(session):
        if isinstance(event, str):
            events.append((event, contract.VIEW, 0))
        elif isinstance(event, (tuple, list)) and len(event) == 3 and isinstance(event[0], str) and isinstance(event[1], str):
            try:
                events.append((event[0], event[1], int(event[2])))
            except (TypeError, ValueError):
                raise ValueError(f"session event {position}: timestamp {event[2]!r} is not an integer") from None
        else:
            raise ValueError(f"session event {position}: expected an item id or (item_id, event_type, timestamp), got {event!r}")
    return events


def pad_rows(rows: list[list], fill, dtype) -> np.ndarray:
    """A [len(rows), max width] array of ``rows`` right-padded with ``fill``."""
    # At least one column: TF Serving's batching cannot pad an empty tensor and fails
    # the whole batch (see serving/contract); the row lengths say the column is padding.
    width = max([len(row) for row in rows] + [1])
    return np.array([list(row) + [fill] * (width - len(row)) for row in rows], dtype=dtype)


def session_inputs(sessions: list, users: list[str | None], queries: list[str | None]) -> dict[str, np.ndarray]:
    """The shared session inputs for a batch of sessions, padded to one width, with each row's length."""
    normalized = [normalize_session(session) for session in sessions]
    return {
        contract.SESSION_ITEM_IDS: pad_rows([[e[0] for e in s] for s in normalized], "", object),
        contract.SESSION_EVENT_TYPES: pad_rows([[e[1] for e in s] for s in normalized], "", object),
        contract.SESSION_TIMESTAMPS: pad_rows([[e[2] for e in s] for s in normalized], 0, np.int64),
        contract.SESSION_LENGTH: np.array([len(s) for s in normalized], dtype=np.int32),
        contract.USER_ID: np.array([user or "" for user in users], dtype=object),
        contract.QUERY: np.array([query or "" for query in queries], dtype=object),
    }


def exclude_inputs(rows: list[Sequence[str] | None]) -> dict[str, np.ndarray]:
    """``exclude_item_ids`` and ``exclude_length`` for one exclusion list per session."""
    lists = [id_list(row, "exclude") for row in rows]
    return {
        contract.EXCLUDE_ITEM_IDS: pad_rows(lists, "", object),
        contract.EXCLUDE_LENGTH: np.array([len(row) for row in lists], dtype=np.int32),
    }


def id_list(values: Sequence[str] | None, what: str) -> list[str]:
    """``values`` checked to be a list of string item ids (``what`` names it in errors)."""
    if values is None:
        return []
    if isinstance(values, (str, bytes)) or not all(isinstance(value, str) for value in values):
        raise ValueError(f"{what} must be a list of item id strings, got {values!r}")
    return list(values)


def ranked_items(item_ids: np.ndarray, scores: np.ndarray) -> list[tuple[str, float]]:
    """(item_id, score) pairs of one output row, dropping the contract's padding."""
    return [
        (item.decode("utf-8") if isinstance(item, bytes) else str(item), float(score))
        for item, score in zip(item_ids.tolist(), scores.tolist())
        if item not in (b"", "") and score != float("-inf")
    ]
