"""Item-to-item neighbour tables from the training sessions: what shoppers clicked next, and nearby.

Neural session models blur the sharpest signal in a click log: "after item A, shoppers
go to B". A last-item transition table (Markov-1) or a session-kNN keeps it, and beats a
two-tower model at the top of the list on transition-heavy shops. These tables bring
that signal into the model: for each item, its ``max_neighbours`` strongest neighbours
and their weights, built once from the training split beside the vocabularies and
shipped inside the SavedModel as two dense tensors (stock ``gather`` ops at serving).

A table counts item pairs ``(a, b)`` in the same session with ``b`` at most ``window``
events after ``a`` (and before it too, for ``both_directions``), each pair weighing
``decay ** (distance - 1)``; an item followed by itself is a re-visit (the repeat head's
job) and is not counted. Each row keeps its strongest ``max_neighbours`` entries and is
divided by the row's total before pruning, so a row is the estimated probability of
each neighbour following the item.

Recent sessions can count more: with ``half_life`` > 0 a session's pairs weigh
``0.5 ** (age / (half_life * span))``, its age measured from its last event to the latest
event of the sessions counted and ``span`` the time those sessions cover. What shoppers
click together drifts (new products, seasons, campaigns), and the sessions a shop serves
next are closest to the latest ones: on Diginetica, validation picks half-lives of a
tenth to a fifth of the span over no decay (README). ``half_life`` is a share of the span,
not days, so the same candidates fit a shop with a week of logs and one with a year;
:func:`recommenders.models.training.fit_fusion` chooses it on validation.

The same recency shifts item popularity. A model trained on every session alike learns
how often each item is clicked over the whole span; the next sessions click what is
popular now. Under that label shift (what an item's sessions look like stays, how often it
is the answer moves), ``P_next(j | session) ~ P_train(j | session) * P_recent(j) / P_all(j)``:
:func:`popularity_shift` is ``log(P_recent(j) / P_all(j))`` per item, counted from the same
sessions with the same half-life as the tables (0 without recency), and the fusion layer
adds a fitted multiple of it to the fused score (``recommenders/models/fusion.py``).

Memory is ``num_items * max_neighbours * 8`` bytes per table (int32 index + float32
weight): 17 MB for Diginetica's 43,097 items at 50 neighbours, 400 MB for a million items.
It grows linearly with the catalog, never with the number of sessions.

A model trained on the same sessions the tables were counted from would find every
training position's own next item in them: :meth:`ItemNeighbours.build_out_of_fold`
counts one set of tables per fold of sessions, each without that fold's sessions
(:func:`session_folds`), for the positions of that fold to read while training.

Example (sessions a b c and a b; "b" follows "a" twice, "c" follows "b" once):

>>> table = NeighbourTable.build([[0, 1, 2], [0, 1]], num_items=3, window=1, max_neighbours=2)
>>> table.indices.tolist(), table.weights.tolist()
([[1, -1], [2, -1], [-1, -1]], [[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_base.errors import ConfigError, DataError

# Marks an empty neighbour slot in ``NeighbourTable.indices``.
NO_NEIGHBOUR = -1


def session_folds(session_ids, folds: int) -> np.ndarray:
    """Each session's fold ``0..folds-1`` [N] int32: a fixed hash of its id, the same in every run.

    >>> session_folds(["s1", "s2", "s1"], 4).tolist()
    [1, 2, 1]
    """
    if folds < 1:
        raise ConfigError(f"folds must be at least 1, got {folds}")
    hashes = pd.util.hash_array(np.asarray(session_ids, dtype=object).astype(str))
    return (hashes % np.uint64(folds)).astype(np.int32)


def recency_weights(timestamps, owner: np.ndarray, half_life: float) -> np.ndarray:
    """Each event's session weight [N]: ``0.5 ** (age / (half_life * span))``, see the module docstring.

    ``timestamps`` [N] (datetimes or numbers) and ``owner`` [N] each event's session.

    >>> recency_weights(np.array([0, 0, 5, 9, 10]), np.array([0, 0, 1, 2, 2]), half_life=0.5).tolist()
    [0.25, 0.25, 0.5, 1.0, 1.0]
    """
    if half_life <= 0:
        raise ConfigError(f"half_life must be > 0, got {half_life}")
    seconds = np.asarray(timestamps).astype("int64").astype(np.float64)
    session_end = pd.Series(seconds).groupby(owner).transform("max").to_numpy()
    span = max(seconds.max() - seconds.min(), 1.0) if len(seconds) else 1.0
    return 0.5 ** ((session_end.max(initial=0.0) - session_end) / (half_life * span))


def popularity_shift(items: np.ndarray, num_items: int, event_weights: np.ndarray) -> np.ndarray:
    """``log(P_recent(j) / P_all(j))`` per item [num_items] float32, see the module docstring.

    ``items`` [N] are the events' item positions and ``event_weights`` [N] their sessions'
    recency weights (:func:`recency_weights`). Each share counts one more click per item
    (Laplace): an item clicked rarely moves little, and the recent share, counted from
    fewer effective clicks, is the flatter, so items rarely clicked overall gain a little
    against the most popular ones.

    Item 0 was clicked early (weight 0.25), item 1 late (weight 1), item 2 never:

    >>> np.exp(popularity_shift(np.array([0, 0, 1, 1]), 3, np.array([0.25, 0.25, 1.0, 1.0]))).astype(float).round(3).tolist()
    [0.636, 1.273, 1.273]
    """
    recent = np.bincount(items, event_weights, minlength=num_items) + 1.0
    overall = np.bincount(items, minlength=num_items) + 1.0
    return np.log((recent / recent.sum()) / (overall / overall.sum())).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class NeighbourSpec:
    """How one table is counted; see the module docstring.

    >>> NeighbourSpec("co_occurrence", window=3, both_directions=True).validate().window
    3
    """

    name: str
    window: int = 1
    both_directions: bool = False
    decay: float = 1.0
    max_neighbours: int = 50

    def validate(self) -> NeighbourSpec:
        if not self.name.isidentifier():
            raise ConfigError(f"neighbour table name must be an identifier, got {self.name!r}")
        if self.window < 1:
            raise ConfigError(f"neighbour table {self.name}: window must be at least 1, got {self.window}")
        if not 0.0 < self.decay <= 1.0:
            raise ConfigError(f"neighbour table {self.name}: decay must be in (0, 1], got {self.decay}")
        if self.max_neighbours < 1:
            raise ConfigError(f"neighbour table {self.name}: max_neighbours must be at least 1, got {self.max_neighbours}")
        return self


@dataclasses.dataclass
class NeighbourTable:
    """``indices`` [num_items, M] (item positions in the vocabulary, ``NO_NEIGHBOUR`` = empty) and ``weights`` [num_items, M]."""

    indices: np.ndarray
    weights: np.ndarray

    @classmethod
    def build(cls, sessions: Sequence[Sequence[int]], num_items: int, window: int = 1, both_directions: bool = False,
              decay: float = 1.0, max_neighbours: int = 50) -> NeighbourTable:
        """Counts the pairs of ``sessions`` (each a time-ordered list of item positions ``0..num_items-1``)."""
        lengths = np.fromiter((len(session) for session in sessions), np.int64, len(sessions))
        items = np.fromiter((item for session in sessions for item in session), np.int64, int(lengths.sum()))
        owner = np.repeat(np.arange(len(lengths)), lengths)
        return cls.from_events(items, owner, num_items, window, both_directions, decay, max_neighbours)

    @classmethod
    def from_events(cls, items: np.ndarray, owner: np.ndarray, num_items: int, window: int, both_directions: bool,
                    decay: float, max_neighbours: int, event_weights: np.ndarray | None = None) -> NeighbourTable:
        """Like :meth:`build` from flat arrays: ``items`` [N] in session order, ``owner`` [N] each event's session.

        ``event_weights`` [N] (default 1) multiply the pairs an event starts: the weight of its session.
        """
        sources, targets, weights = [], [], []
        for distance in range(1, window + 1):
            pair = (owner[:-distance] == owner[distance:]) & (items[:-distance] != items[distance:])
            before, after = items[:-distance][pair], items[distance:][pair]
            weight = np.full(len(before), decay ** (distance - 1))
            if event_weights is not None:
                weight = weight * event_weights[:-distance][pair]
            sources += [before, after] if both_directions else [before]
            targets += [after, before] if both_directions else [after]
            weights += [weight, weight] if both_directions else [weight]
        counts = sp.csr_matrix((np.concatenate(weights or [np.empty(0)]),
                                (np.concatenate(sources or [np.empty(0, np.int64)]),
                                 np.concatenate(targets or [np.empty(0, np.int64)]))),
                               shape=(num_items, num_items))
        counts.sum_duplicates()
        return cls._strongest(counts, max_neighbours)

    @classmethod
    def _strongest(cls, counts: sp.csr_matrix, max_neighbours: int) -> NeighbourTable:
        """Each row's ``max_neighbours`` largest entries (ties: smaller position first), divided by the row total."""
        num_items = counts.shape[0]
        rows = np.repeat(np.arange(num_items), np.diff(counts.indptr))
        order = np.lexsort((counts.indices, -counts.data, rows))
        slot = np.arange(counts.nnz) - counts.indptr[rows[order]]
        kept = order[slot < max_neighbours]
        totals = np.asarray(counts.sum(axis=1)).ravel()
        indices = np.full((num_items, max_neighbours), NO_NEIGHBOUR, np.int32)
        weights = np.zeros((num_items, max_neighbours), np.float32)
        indices[rows[kept], slot[slot < max_neighbours]] = counts.indices[kept]
        weights[rows[kept], slot[slot < max_neighbours]] = counts.data[kept] / totals[rows[kept]]
        return cls(indices, weights)


@dataclasses.dataclass
class ItemNeighbours:
    """The neighbour tables of a model, by name, aligned with ``FeatureVocabularies.item_ids``.

    The model holds them as weights (``NeighbourFusion``), saved and exported with the rest.

    >>> import pandas as pd
    >>> events = pd.DataFrame({"session_id": ["s", "s", "t", "t"], "item_id": ["a", "b", "a", "b"],
    ...                        "timestamp": pd.to_datetime([1, 2, 3, 4], unit="s")})
    >>> neighbours = ItemNeighbours.build(events, ["a", "b", "c"], [NeighbourSpec("transitions")])
    >>> neighbours.tables["transitions"].indices[:, 0].tolist()   # a -> b; nothing follows b or c
    [1, -1, -1]
    """

    tables: dict[str, NeighbourTable]
    # [num_items] float32, :func:`popularity_shift` of the counted sessions; None when
    # they were counted without recency (every session alike: nothing shifts).
    popularity_shift: np.ndarray | None = None

    @classmethod
    def build(cls, events: pd.DataFrame, item_ids: Sequence[str], specs: Sequence[NeighbourSpec],
              half_life: float = 0.0) -> ItemNeighbours:
        """Tables of ``events`` (``session_id``, ``item_id``, ``timestamp``) over ``item_ids``; other items are skipped.

        ``half_life`` > 0 weighs sessions by recency (a share of the events' time span; see the module docstring).
        """
        missing = {"session_id", "item_id", "timestamp"} - set(events.columns)
        if missing:
            raise DataError(f"neighbour tables need event columns {sorted(missing)}")
        ordered = events.sort_values(["session_id", "timestamp"], kind="stable")
        positions = pd.Index(list(item_ids)).get_indexer(ordered["item_id"].astype(str))
        known = positions >= 0
        items = positions[known].astype(np.int64)
        owner = pd.factorize(ordered["session_id"].to_numpy()[known])[0]
        event_weights = recency_weights(ordered["timestamp"].to_numpy()[known], owner, half_life) if half_life else None
        tables = {}
        for spec in specs:
            spec = spec.validate()
            tables[spec.name] = NeighbourTable.from_events(items, owner, len(item_ids), spec.window, spec.both_directions,
                                                           spec.decay, spec.max_neighbours, event_weights)
        return cls(tables, None if event_weights is None else popularity_shift(items, len(item_ids), event_weights))

    @classmethod
    def build_out_of_fold(cls, events: pd.DataFrame, item_ids: Sequence[str], specs: Sequence[NeighbourSpec],
                          folds: int) -> list[ItemNeighbours]:
        """Per fold ``k`` of :func:`session_folds`, the tables of every session outside fold ``k``.

        >>> events = pd.DataFrame({"session_id": ["s1", "s1", "s2", "s2"], "item_id": ["a", "b", "a", "c"],
        ...                        "timestamp": pd.to_datetime([1, 2, 3, 4], unit="s")})
        >>> by_fold = ItemNeighbours.build_out_of_fold(events, ["a", "b", "c"], [NeighbourSpec("transitions")], 4)
        >>> [int(tables.tables["transitions"].indices[0, 0]) for tables in by_fold]  # s1 is in fold 1, s2 in fold 2
        [1, 2, 1, 1]
        """
        fold = session_folds(events["session_id"].to_numpy(), folds)
        return [cls.build(events[fold != k], item_ids, specs) for k in range(folds)]
