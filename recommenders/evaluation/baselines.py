"""Non-neural baselines every learned model must beat: popularity, Markov-1, session-kNN.

All three work on integer item indices over the catalog (ids outside it are ignored),
break score ties by popularity, and fill lists that run short with the most popular
items, so every case gets exactly ``k`` distinct catalog items.

Example:

>>> import pandas as pd
>>> from recommenders.data import schema
>>> from recommenders.evaluation.cases import make_next_item_cases
>>> events = schema.conform_events(pd.DataFrame({
...     "session_id": ["1", "1", "2", "2"], "item_id": ["a", "b", "a", "b"],
...     "event_type": "view", "timestamp": pd.to_datetime([0, 1, 2, 3], unit="s")}))
>>> catalog = schema.conform_catalog(pd.DataFrame({"item_id": ["a", "b", "c"]}))
>>> model = MarkovChain().fit(events, catalog)
>>> model.recommend(make_next_item_cases(events.iloc[:2]), k=2).tolist()
[['b', 'a']]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommenders.data import schema
from recommenders.evaluation.cases import NextItemCases, order_events
from recsys_base.errors import ConfigError, DataError


class _Sessions:
    """Training sessions as integer item sequences (CSR layout: ``items[indptr[s]:indptr[s+1]]``)."""

    def __init__(self, events: pd.DataFrame, item_index: pd.Index):
        events, session_codes, seconds = order_events(events)
        items = item_index.get_indexer(events["item_id"].astype("string").fillna(""))
        keep = events["event_type"].isin(schema.INTERACTION_TYPES).to_numpy() & (items >= 0)
        self.items = items[keep].astype(np.int64)
        codes, self.seconds = session_codes[keep], seconds[keep]
        # Renumber sessions so ones that lost every event (outside the catalog) leave no gap.
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.array([], np.int64)
        self.indptr = np.r_[starts, len(codes)].astype(np.int64)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def last_seconds(self) -> np.ndarray:
        return self.seconds[self.indptr[1:] - 1]


def _gather(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenates CSR rows ``rows``; returns the values and, per value, its position in ``rows``."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return indices[offsets + np.arange(offsets.size)], np.repeat(np.arange(len(rows)), lengths)


class _CatalogRecommender:
    """Shared plumbing: the catalog index, popularity, prefix encoding and top-k with fallback."""

    def fit(self, train_events: pd.DataFrame, catalog: pd.DataFrame):
        """Indexes the catalog, counts item popularity, then calls :meth:`_fit_sessions`."""
        catalog = schema.conform_catalog(catalog)
        if catalog.empty:
            raise DataError("the catalog is empty: there is nothing to recommend")
        self._index = pd.Index(catalog["item_id"].fillna("").unique())
        self._ids = self._index.to_numpy(dtype=object)
        sessions = _Sessions(train_events, self._index)
        self._popularity = np.bincount(sessions.items, minlength=len(self._ids))
        self._popular_first = np.lexsort((-np.arange(len(self._ids)), -self._popularity))
        self._popularity_rank = np.empty_like(self._popular_first)
        self._popularity_rank[self._popular_first] = np.arange(len(self._ids))
        self._fit_sessions(sessions)
        return self

    def _fit_sessions(self, sessions: _Sessions) -> None:
        """Subclasses learn from the integer-encoded sessions here."""

    def recommend(self, cases: NextItemCases, k: int) -> np.ndarray:
        """Returns the top ``k`` catalog ids per case (see :class:`~.protocol.Recommender`)."""
        if not hasattr(self, "_ids"):
            raise RuntimeError(f"{type(self).__name__}.recommend called before fit")
        if not 1 <= k <= len(self._ids):
            raise ConfigError(f"k must be between 1 and the catalog size {len(self._ids)}, got {k}")
        lengths = [len(prefix) for prefix in cases.prefix_item_ids]
        flat = [item for prefix in cases.prefix_item_ids for item in prefix]
        encoded = np.split(self._index.get_indexer(pd.Index(flat, dtype=object)), np.cumsum(lengths)[:-1])
        ranked = np.empty((len(cases), k), dtype=np.int64)
        for row, prefix in enumerate(encoded):
            candidates, scores = self._score(prefix[prefix >= 0])
            ranked[row] = self._top_k(candidates, scores, k)
        return self._ids[ranked]

    def _score(self, prefix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Returns (distinct candidate indices, positive scores) for one encoded prefix."""
        raise NotImplementedError

    def _top_k(self, candidates: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        order = np.lexsort((self._popularity_rank[candidates], -scores))
        top = candidates[order[:k]]
        if len(top) < k:
            popular = self._popular_first[: k + len(top)]
            top = np.concatenate([top, popular[~np.isin(popular, top)][: k - len(top)]])
        return top


class Popularity(_CatalogRecommender):
    """The most frequent items in training (views, carts and purchases), same list for everyone.

    Example:

    >>> model = Popularity()  # then model.fit(events, catalog).recommend(cases, k=20)
    """

    def _score(self, prefix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.empty(0, np.int64), np.empty(0)


class MarkovChain(_CatalogRecommender):
    """First-order transitions: the items that most often followed the prefix's last item.

    Example:

    >>> model = MarkovChain()  # then model.fit(events, catalog).recommend(cases, k=20)
    """

    def _fit_sessions(self, sessions: _Sessions) -> None:
        same_session = np.ones(len(sessions.items), dtype=bool)
        same_session[sessions.indptr[1:-1]] = False
        follows = np.flatnonzero(same_session[1:]) + 1
        n = len(self._ids)
        self._transitions = sp.csr_matrix(
            (np.ones(len(follows)), (sessions.items[follows - 1], sessions.items[follows])), shape=(n, n)
        )

    def _score(self, prefix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(prefix):
            return np.empty(0, np.int64), np.empty(0)
        last = prefix[-1]
        row = slice(self._transitions.indptr[last], self._transitions.indptr[last + 1])
        return self._transitions.indices[row].astype(np.int64), self._transitions.data[row]


class SessionKNN(_CatalogRecommender):
    """V-SKNN-style session neighbourhood: recommend what similar recent sessions contained.

    For a prefix, candidate neighbours are the ``sample_size`` most recent training
    sessions sharing an item with it; similarity is the cosine between the prefix
    (item weights decaying linearly with distance from its end, the last item weighing
    1) and the neighbour's item set. Each item scores the summed similarity of the
    ``neighbours`` most similar sessions containing it.

    Example:

    >>> model = SessionKNN(neighbours=100, sample_size=1000)  # then fit(...).recommend(...)
    """

    def __init__(self, neighbours: int = 100, sample_size: int = 1000):
        if neighbours < 1 or sample_size < neighbours:
            raise ConfigError(
                f"SessionKNN needs 1 <= neighbours <= sample_size, got neighbours={neighbours}, sample_size={sample_size}"
            )
        self.neighbours = neighbours
        self.sample_size = sample_size

    def _fit_sessions(self, sessions: _Sessions) -> None:
        # Session numbers become recency ranks (0 = most recent), so "the most recent
        # neighbours" is "the smallest numbers": a sorted union, cut at sample_size.
        by_recency = np.lexsort((-np.arange(len(sessions)), -sessions.last_seconds()))
        rank = np.empty_like(by_recency)
        rank[by_recency] = np.arange(len(sessions))
        session_of_event = np.repeat(rank, np.diff(sessions.indptr))
        n_items = len(self._ids)
        matrix = sp.csr_matrix(
            (np.ones(len(sessions.items)), (session_of_event, sessions.items)), shape=(len(sessions), n_items)
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        self._session_items = matrix
        self._norms = np.sqrt(np.diff(matrix.indptr))
        postings = matrix.T.tocsr()
        postings.sort_indices()
        # A session among the sample_size most recent of the union is among the
        # sample_size most recent of every posting list holding it: longer lists can be cut.
        position = np.arange(postings.nnz) - np.repeat(postings.indptr[:-1], np.diff(postings.indptr))
        kept = position < self.sample_size
        self._post_indices = postings.indices[kept].astype(np.int64)
        self._post_indptr = np.r_[0, np.cumsum(np.minimum(np.diff(postings.indptr), self.sample_size))]

    def _score(self, prefix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(prefix):
            return np.empty(0, np.int64), np.empty(0)
        # A revisited item weighs by its latest position, as if just seen.
        items, from_end = np.unique(prefix[::-1], return_index=True)
        weights = (len(prefix) - from_end) / len(prefix)
        sessions, owner = _gather(self._post_indptr, self._post_indices, items)
        if not len(sessions):
            return np.empty(0, np.int64), np.empty(0)
        candidates, slot = np.unique(sessions, return_inverse=True)
        overlap = np.bincount(slot, weights=weights[owner])[: self.sample_size]
        candidates = candidates[: self.sample_size]
        # The prefix's own norm scales every similarity alike, so it cannot change the ranking.
        similarity = overlap / self._norms[candidates]
        nearest = np.lexsort((candidates, -similarity))[: self.neighbours]
        neighbour_items, neighbour = _gather(
            self._session_items.indptr, self._session_items.indices, candidates[nearest]
        )
        scored, slot = np.unique(neighbour_items, return_inverse=True)
        return scored.astype(np.int64), np.bincount(slot, weights=similarity[nearest][neighbour])
