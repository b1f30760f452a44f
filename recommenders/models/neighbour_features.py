"""Neighbour scores of ranking candidates: the collaborative evidence of retrieval's fusion, as ranker features.

For a candidate ``c`` and each neighbour table ``N`` (``recommenders/features/neighbours.py``)
the score is the table's distribution over the session's next item, as fusion builds it
(``recommenders/models/fusion.py``) with its starting distance weights:

    P_table(c) = sum_t a(t) * N[item_t, c] / sum_t a(t) * [item_t has neighbours],
    a(t) = 2 ** -(distance of t from the position being predicted).

The ranker reads ``log(P_table(c) + FLOOR)`` and whether the table has any neighbour of
the session at all, per table.

Why training reads other tables than serving: the tables are counted from the training
sessions, so at a training position the candidate that was clicked next is in them by
construction (its own transition was counted), and a ranker trained on that learns to
trust them far beyond what they earn on a new session. Each training position therefore
reads the tables counted without its own session's fold
(:meth:`ItemNeighbours.build_out_of_fold`, ``features[NEIGHBOUR_FOLD]``), the classic
out-of-fold stacking. Serving, validation and evaluation read the full tables.

The full tables are weights, saved and exported with the model. The per-fold tables
exist only while training (:meth:`NeighbourScores.set_training_neighbours`) and are never
saved: serving never reads them, and they would multiply the SavedModel's size by the
number of folds. Each row is kept sorted by catalog column, so a candidate is found by
binary search (``tf.searchsorted``): ``[B, T, tables, C]`` work, never ``[B, catalog]``.

Memory: ``num_items * tables * M * 8`` bytes served (17 MB per table for Diginetica's
43,097 items at M = 50), ``folds`` times that more while training.
"""

from __future__ import annotations

import numpy as np

from recommenders.features.neighbours import NO_NEIGHBOUR, ItemNeighbours
from recommenders.models.towers import FIRST_ITEM_INDEX
from recsys_base.tf_compat import tensorflow

tf = tensorflow()

# Added to a neighbour probability before its log: "no evidence" stays finite, far below any count.
FLOOR = 1e-4


def index_space_tables(columns, weights, max_neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-table ``columns`` / ``weights`` ``[items, <= M]`` (vocabulary order) -> ``[tables, num_indices, M]``.

    Rows for the padding and unknown indices are empty, and narrower tables are padded to
    ``max_neighbours`` with empty slots.

    >>> columns, weights = index_space_tables([np.array([[1], [0]])], [np.array([[1.0], [0.5]])], max_neighbours=2)
    >>> columns.tolist()
    [[[-1, -1], [-1, -1], [1, -1], [0, -1]]]
    """
    def padded(table, fill, dtype):
        table = np.asarray(table, dtype)
        return np.pad(table, [(FIRST_ITEM_INDEX, 0), (0, max_neighbours - table.shape[1])], constant_values=fill)

    return (np.stack([padded(c, NO_NEIGHBOUR, np.int32) for c in columns]),
            np.stack([padded(w, 0.0, np.float32) for w in weights]))


def _sorted_by_column(neighbours: ItemNeighbours, table_names, max_neighbours: int):
    """``[num_indices, tables, M]`` columns and weights, each row sorted by column (empty slots first)."""
    columns, weights = index_space_tables([neighbours.tables[n].indices for n in table_names],
                                          [neighbours.tables[n].weights for n in table_names], max_neighbours)
    order = np.argsort(columns, axis=-1, kind="stable")
    columns, weights = np.take_along_axis(columns, order, -1), np.take_along_axis(weights, order, -1)
    return columns.transpose(1, 0, 2), weights.transpose(1, 0, 2)


@tf.keras.utils.register_keras_serializable(package="recommenders")
class NeighbourScores(tf.keras.layers.Layer):
    """Per candidate and table, the log neighbour probability and whether the table knows the session.

    Example (one table over a 3-item catalog; item index = column + ``FIRST_ITEM_INDEX``):

    >>> from recommenders.features.neighbours import NeighbourTable
    >>> scores = NeighbourScores(["next"], num_indices=5, max_neighbours=2)
    >>> table = NeighbourTable(np.array([[1, -1], [2, 0], [-1, -1]]), np.array([[1.0, 0], [0.75, 0.25], [0, 0]]))
    >>> scores.set_neighbours(ItemNeighbours({"next": table}))
    >>> items = tf.constant([[2, 3]], tf.int64)                 # the session: column 0, then column 1
    >>> distance, known = tf.constant([[1, 0]]), tf.constant([[True, True]])
    >>> features = scores(items, distance, known, tf.constant([[4, 2, 3]], tf.int64))   # columns 2, 0, 1
    >>> features.shape                                          # [B, C, 2 * tables]
    TensorShape([1, 3, 2])
    >>> np.round(np.exp(features[0, :, 0].numpy().astype(float)) - FLOOR, 3).tolist()   # (1 * 0.75, 1 * 0.25, 0.5 * 1) / 1.5
    [0.5, 0.167, 0.333]
    """

    def __init__(self, table_names, num_indices: int, max_neighbours: int, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.table_names = list(table_names)
        self.num_indices, self.max_neighbours = num_indices, max_neighbours
        shape = [num_indices, len(self.table_names), max_neighbours]
        self.columns = self.add_weight("neighbour_columns", shape, tf.int32, tf.keras.initializers.Constant(NO_NEIGHBOUR),
                                       trainable=False)
        self.weights_table = self.add_weight("neighbour_weights", shape, tf.float32, "zeros", trainable=False)
        self.trainable = False
        # Set only for training, bypassing Keras tracking so they are never saved or exported.
        object.__setattr__(self, "_fold_tables", None)

    def set_neighbours(self, neighbours: ItemNeighbours) -> None:
        """Loads the tables serving reads, from ``neighbours`` (built over the model's vocabulary)."""
        columns, weights = _sorted_by_column(neighbours, self.table_names, self.max_neighbours)
        self.columns.assign(columns)
        self.weights_table.assign(weights)

    def set_training_neighbours(self, by_fold: list[ItemNeighbours] | None) -> None:
        """Loads the per-fold tables training positions read (``None`` drops them): ``[folds, num_indices, tables, M]``."""
        if by_fold is None:
            object.__setattr__(self, "_fold_tables", None)
            return
        tables = [_sorted_by_column(neighbours, self.table_names, self.max_neighbours) for neighbours in by_fold]
        fold_tables = tuple(tf.Variable(np.stack(part), trainable=False) for part in zip(*tables))
        object.__setattr__(self, "_fold_tables", fold_tables)

    def call(self, items, distance, known, candidates, folds=None):
        """Features ``[B, C, 2 * tables]`` of candidates ``[B, C]`` (item indices).

        ``items`` [B, T] are the session's item indices, ``distance`` [B, T] each event's
        distance from the position being predicted and ``known`` [B, T] which events count
        (the prefix, known items). ``folds`` [B], in training, picks each row's out-of-fold
        tables.
        """
        if folds is None:
            columns, weights = tf.gather(self.columns, items), tf.gather(self.weights_table, items)
        else:
            if self._fold_tables is None:
                raise ValueError("NeighbourScores: training with folds needs set_training_neighbours first")
            where = tf.stack([tf.broadcast_to(tf.cast(folds, items.dtype)[:, tf.newaxis], tf.shape(items)), items], -1)
            columns, weights = (tf.gather_nd(table, where) for table in self._fold_tables)
        # [B, T, tables, M]; a(t) for the events whose item has neighbours in each table.
        position_weights = tf.where(known, tf.pow(0.5, tf.cast(distance, tf.float32)), 0.0)[..., tf.newaxis]
        position_weights *= tf.cast(tf.reduce_max(weights, axis=-1) > 0, tf.float32)  # [B, T, tables]
        normalizer = tf.reduce_sum(position_weights, axis=1)  # [B, tables]
        wanted = tf.cast(candidates - FIRST_ITEM_INDEX, columns.dtype)  # catalog columns [B, C]
        wanted = tf.broadcast_to(wanted[:, tf.newaxis, tf.newaxis, :],
                                 tf.concat([tf.shape(columns)[:3], tf.shape(wanted)[1:]], axis=0))  # [B, T, tables, C]
        slot = tf.minimum(tf.searchsorted(columns, wanted), self.max_neighbours - 1)
        found = tf.equal(tf.gather(columns, slot, batch_dims=3), wanted)
        entry = tf.where(found, tf.gather(weights, slot, batch_dims=3), 0.0)  # N[item_t, c]
        probability = tf.math.divide_no_nan(tf.einsum("btkc,btk->bck", entry, position_weights),
                                            normalizer[:, tf.newaxis, :])
        has_mass = tf.broadcast_to(tf.cast(normalizer > 0, tf.float32)[:, tf.newaxis, :], tf.shape(probability))
        return tf.concat([tf.math.log(probability + FLOOR), has_mass], axis=-1)

    def get_config(self):
        return {**super().get_config(), "table_names": self.table_names, "num_indices": self.num_indices,
                "max_neighbours": self.max_neighbours}
