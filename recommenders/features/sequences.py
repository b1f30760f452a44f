"""Session event logs -> padded per-position arrays -> ``tf.data`` pipelines.

A training sequence holds up to ``max_length`` item events of one session, right-padded
(``""`` / 0), so every position is one next-item example: the model predicts item ``t+1``
from items ``0..t``. ``queries[t]`` is the shopper's latest search before item ``t+1``
(searches stay in force until the next one): what they were looking for when the next
item was chosen, which is how a serving request's ``query`` is used (at the last position).

Feature names match ``serving.contract`` so training reads exactly what serving sends.

Example:

>>> import pandas as pd
>>> from recommenders.data import schema
>>> events = schema.conform_events(pd.DataFrame({"session_id": ["s1", "s1", "s1", "s2", "s2"],
...     "item_id": ["b", None, "a", "b", "c"], "event_type": ["view", "search", "view", "view", "cart"],
...     "query": [None, "red shoe", None, None, None], "timestamp": pd.date_range("2024-01-01", periods=5, freq="min")}))
>>> arrays = sessions_to_arrays(events, max_length=3)
>>> arrays.item_ids
array([['b', 'a', ''],
       ['b', 'c', '']], dtype=object)
>>> arrays.queries
array([['red shoe', 'red shoe', ''],
       ['', '', '']], dtype=object)
>>> dataset = to_dataset(arrays, batch_size=2, shuffle=True)
>>> sorted(next(iter(dataset)))
['query', 'session_event_types', 'session_item_ids', 'session_queries', 'session_timestamps', 'user_id']
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from recommenders.data.schema import INTERACTION_TYPES, SEARCH
from recommenders.features.neighbours import session_folds
from serving import contract

# Per-position query text; training-only (a serving request carries one ``query``).
SESSION_QUERIES = "session_queries"
# A training row's session fold (int32); training-only: serving reads the full neighbour tables.
NEIGHBOUR_FOLD = "neighbour_fold"


@dataclasses.dataclass
class SessionArrays:
    """Right-padded per-position session features, one row per (chunk of a) session."""

    item_ids: np.ndarray  # [N, T] str
    event_types: np.ndarray  # [N, T] str
    timestamps: np.ndarray  # [N, T] int64 unix seconds
    queries: np.ndarray  # [N, T] str
    user_ids: np.ndarray  # [N] str
    session_ids: np.ndarray  # [N] str: the session each row is (a chunk of)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def lengths(self) -> np.ndarray:
        return (self.item_ids != "").sum(axis=1)

    def features(self) -> dict[str, np.ndarray]:
        """The arrays under the names the model (and the serving contract) reads."""
        return {
            contract.SESSION_ITEM_IDS: self.item_ids,
            contract.SESSION_EVENT_TYPES: self.event_types,
            contract.SESSION_TIMESTAMPS: self.timestamps,
            SESSION_QUERIES: self.queries,
            contract.USER_ID: self.user_ids,
            # The request-level query is the one at the last position.
            contract.QUERY: self.queries[np.arange(len(self)), np.maximum(self.lengths - 1, 0)],
        }


def _unix_seconds(timestamps: pd.Series) -> np.ndarray:
    return timestamps.to_numpy(dtype="datetime64[ns]").astype(np.int64) // 1_000_000_000


def sessions_to_arrays(events: pd.DataFrame, max_length: int) -> SessionArrays:
    """Turns canonical events into padded sequences; longer sessions become several chunks.

    Consecutive chunks overlap by one item so no transition inside a session is lost.
    Sessions with fewer than two item events carry no next-item example and are left out.
    """
    if max_length < 2:
        raise ValueError("max_length must be at least 2")
    events = events.sort_values(["session_id", "timestamp"], kind="stable")
    sessions = events["session_id"].to_numpy()
    is_item = events["event_type"].isin(INTERACTION_TYPES).to_numpy()
    # Position of the latest item event at or before each row (-1 before the first item).
    position = pd.Series(is_item.astype(np.int64)).groupby(sessions).cumsum().to_numpy() - 1
    length = pd.Series(is_item.astype(np.int64)).groupby(sessions).transform("sum").to_numpy()
    session_codes, session_index = np.unique(sessions, return_inverse=True)

    # Chunk c covers positions c*(L-1) .. c*(L-1)+L-1: one item of overlap between chunks.
    stride = max_length - 1
    chunks_per_session = np.zeros(len(session_codes), dtype=np.int64)
    np.maximum.at(chunks_per_session, session_index, np.maximum(length - 2, -stride) // stride + 1)
    chunk_offset = np.concatenate([[0], np.cumsum(chunks_per_session)[:-1]])
    n_rows = int(chunks_per_session.sum())
    arrays = SessionArrays(
        item_ids=np.full((n_rows, max_length), "", dtype=object),
        event_types=np.full((n_rows, max_length), "", dtype=object),
        timestamps=np.zeros((n_rows, max_length), dtype=np.int64),
        queries=np.full((n_rows, max_length), "", dtype=object),
        user_ids=np.full(n_rows, "", dtype=object),
        session_ids=np.repeat(session_codes.astype(str).astype(object), chunks_per_session),
    )

    # The query in force when the shopper chose item t+1: the latest search before it.
    searched = events["query"].where(events["event_type"].eq(SEARCH).to_numpy())
    query_so_far = searched.groupby(sessions).ffill().fillna("").to_numpy().astype(str)
    items = is_item & (length >= 2)
    item_rows = np.flatnonzero(items)
    next_in_session = np.append(item_rows[1:], -1)
    same_session = np.append(sessions[item_rows[1:]] == sessions[item_rows[:-1]], False)
    session_end = pd.Series(np.arange(len(events))).groupby(sessions).transform("max").to_numpy()
    query_values = query_so_far[np.where(same_session, next_in_session, session_end[item_rows])]

    pos, index = position[items], session_index[items]
    item_values = events["item_id"].to_numpy()[items].astype(str)
    type_values = events["event_type"].to_numpy()[items].astype(str)
    seconds = _unix_seconds(events["timestamp"])[items]
    users = events["user_id"].fillna("").to_numpy()[items].astype(str)
    last_chunk = chunks_per_session[index] - 1
    for chunk in (np.maximum((pos - 1) // stride, 0), np.minimum(pos // stride, last_chunk)):
        row, column = chunk_offset[index] + chunk, pos - chunk * stride
        arrays.item_ids[row, column] = item_values
        arrays.event_types[row, column] = type_values
        arrays.timestamps[row, column] = seconds
        arrays.queries[row, column] = query_values
        arrays.user_ids[row] = users
    return arrays


# Session-length buckets for training batches: the LSTM then runs only as many steps as a
# batch's longest session instead of max_length (most shop sessions are short).
LENGTH_BUCKET_BOUNDARIES = (3, 4, 6, 9, 14)


def to_dataset(
    arrays: SessionArrays,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    bucket_by_length: bool = False,
    neighbour_folds: int = 0,
):
    """A cached, optionally shuffled and length-bucketed, batched, prefetched ``tf.data.Dataset``.

    ``neighbour_folds`` > 0 adds :data:`NEIGHBOUR_FOLD`: each row's session fold, which
    out-of-fold neighbour tables it reads in training (``features/neighbours.py``).
    """
    from recsys_base.tf_compat import tensorflow

    tf = tensorflow()
    features = {name: values.astype(str) if values.dtype == object else values
                for name, values in arrays.features().items()}
    if neighbour_folds:
        features[NEIGHBOUR_FOLD] = session_folds(arrays.session_ids, neighbour_folds)
    dataset = tf.data.Dataset.from_tensor_slices(features).cache()
    if shuffle:
        dataset = dataset.shuffle(min(len(arrays), 200_000), seed=seed, reshuffle_each_iteration=True)
    if not bucket_by_length:
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    sequence_features = [name for name, values in features.items() if values.ndim == 2]

    def trim(example):
        length = tf.reduce_sum(tf.cast(tf.not_equal(example[contract.SESSION_ITEM_IDS], ""), tf.int32))
        return {name: value[:length] if name in sequence_features else value for name, value in example.items()}

    bucketed = dataset.map(trim, num_parallel_calls=tf.data.AUTOTUNE).bucket_by_sequence_length(
        element_length_func=lambda example: tf.shape(example[contract.SESSION_ITEM_IDS])[0],
        bucket_boundaries=list(LENGTH_BUCKET_BOUNDARIES),
        bucket_batch_sizes=[batch_size] * (len(LENGTH_BUCKET_BOUNDARIES) + 1),
    )
    return bucketed.prefetch(tf.data.AUTOTUNE)


def batches_per_epoch(arrays: SessionArrays, batch_size: int, bucket_by_length: bool = False) -> int:
    """How many batches one pass of :func:`to_dataset` yields (the same for every shuffle:
    each length bucket ends with one partial batch at most)."""
    if not bucket_by_length:
        return -(-len(arrays) // batch_size)
    # bucket_by_sequence_length puts length L in bucket i when boundary[i-1] <= L < boundary[i].
    buckets = np.searchsorted(np.asarray(LENGTH_BUCKET_BOUNDARIES), arrays.lengths, side="right")
    return int(sum(-(-count // batch_size) for count in np.bincount(buckets) if count))


def cases_to_arrays(cases, max_length: int) -> SessionArrays:
    """Evaluation/serving prefixes (``NextItemCases``) -> arrays of their last ``max_length`` events.

    A case's query (what the shopper searched after the prefix) sits at the last position.
    """
    n = len(cases)
    arrays = SessionArrays(
        item_ids=np.full((n, max_length), "", dtype=object),
        event_types=np.full((n, max_length), "", dtype=object),
        timestamps=np.zeros((n, max_length), dtype=np.int64),
        queries=np.full((n, max_length), "", dtype=object),
        user_ids=np.asarray(cases.user_ids, dtype=object),
        session_ids=np.asarray(cases.session_ids, dtype=object),
    )
    for row, (items, types, seconds) in enumerate(
        zip(cases.prefix_item_ids, cases.prefix_event_types, cases.prefix_timestamps)
    ):
        kept = len(items[-max_length:])
        arrays.item_ids[row, :kept] = items[-max_length:]
        arrays.event_types[row, :kept] = types[-max_length:]
        arrays.timestamps[row, :kept] = seconds[-max_length:]
        arrays.queries[row, max(kept - 1, 0)] = cases.queries[row]
    return arrays
