"""Re-visits: how likely the next item is one the session already holds, and which one.

Shoppers click again on what they looked at (a fifth of Diginetica's next clicks), and a
single query vector cannot put every seen item on top of the catalog at once. Following
the repeat/explore mixture of RepeatNet (Ren et al., AAAI 2019), the retrieval score of an
item becomes

    P(item) = (1 - P(repeat)) * P_catalog(item) + P(repeat) * P_pointer(item),

where ``P_catalog`` is the two-tower softmax over the catalog and ``P_pointer`` an
attention over the session's own positions. The gate is a ``tfrs.tasks.Ranking`` binary
task; the pointer a cross-entropy over positions, trained where the next item is a repeat.
"""

from __future__ import annotations

from recommenders.models.towers import FIRST_ITEM_INDEX, PADDING_INDEX
from recsys_base.tf_compat import tensorflow

tf = tensorflow()

# Masked logits: large enough to vanish in a softmax, small enough to stay finite in sums.
_MASKED = -1e9


@tf.keras.utils.register_keras_serializable(package="recommenders")
class RepeatHead(tf.keras.layers.Layer):
    """Gate and pointer logits from per-position session states and the items at each position.

    ``call(states [B, T, D], item_embeddings [B, T, D], items [B, T])`` (item indices,
    ``PADDING_INDEX`` = padding) returns ``(gate_logits [B, T], pointer_logits [B, T, T])``: row ``t`` of the
    pointer scores the positions ``s <= t`` (others are masked), with a learned bias per
    distance ``t - s``. Besides the state, the gate reads the session's re-visit history
    (share of re-visits so far, whether the current item is one, log position): how
    much a shopper goes back is the best single sign they will again.

    Example:

    >>> head = RepeatHead(units=16)
    >>> gate, pointer = head(tf.zeros([2, 3, 8]), tf.zeros([2, 3, 8]), tf.constant([[5, 6, 5], [7, 0, 0]], tf.int64))
    >>> gate.shape, pointer.shape
    (TensorShape([2, 3]), TensorShape([2, 3, 3]))
    """

    def __init__(self, units: int, max_distance: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.units, self.max_distance = units, max_distance
        self.query = tf.keras.layers.Dense(units, name="pointer_query")
        self.key = tf.keras.layers.Dense(units, name="pointer_key")
        self.distance_bias = tf.keras.layers.Embedding(max_distance, 1, embeddings_initializer="zeros",
                                                       name="distance_bias")
        self.gate_hidden = tf.keras.layers.Dense(units, activation="relu", name="gate_hidden")
        self.gate = tf.keras.layers.Dense(1, name="gate")

    def call(self, states, item_embeddings, items):
        mask = tf.not_equal(items, PADDING_INDEX)
        length = tf.shape(states)[1]
        keys = self.key(tf.concat([states, item_embeddings], axis=-1))
        logits = tf.einsum("btd,bsd->bts", self.query(states), keys) / self.units**0.5  # a Python float takes the dtype of logits
        positions = tf.range(length)
        distance = positions[:, tf.newaxis] - positions[tf.newaxis, :]
        logits += tf.squeeze(self.distance_bias(tf.clip_by_value(distance, 0, self.max_distance - 1)), -1)
        allowed = (distance >= 0)[tf.newaxis] & mask[:, tf.newaxis, :]
        pointer = tf.where(allowed, tf.cast(logits, tf.float32), _MASKED)
        history = tf.cast(revisit_history(items, mask), states.dtype)
        gate = tf.squeeze(self.gate(self.gate_hidden(tf.concat([states, history], axis=-1))), -1)
        return tf.cast(gate, tf.float32), pointer

    def get_config(self):
        return {**super().get_config(), "units": self.units, "max_distance": self.max_distance}


def revisit_history(items, mask):
    """Per position: share of re-visits so far, whether this item is a re-visit, log(1 + position): [B, T, 3]."""
    positions = tf.range(tf.shape(items)[1])
    earlier = positions[tf.newaxis, :] < positions[:, tf.newaxis]  # [s, r]: position r comes before s
    revisit = tf.reduce_any(tf.equal(items[:, :, tf.newaxis], items[:, tf.newaxis, :]) & earlier[tf.newaxis], -1)
    revisit = tf.cast(revisit & mask, tf.float32)
    share = tf.cumsum(revisit, axis=1) / tf.cast(positions + 1, tf.float32)
    depth = tf.broadcast_to(tf.math.log1p(tf.cast(positions, tf.float32)), tf.shape(revisit))
    return tf.stack([share, revisit, depth], axis=-1)


def repeat_targets(items, targets_matrix, pointer_logits):
    """Per position: was the next item already seen (``[B, T]`` bool), and the pointer's log-likelihood of it.

    ``items`` and ``targets_matrix`` are ``[B, T]`` item indices (the next item at each
    position); the log-likelihood sums the pointer's probability over every earlier
    position holding the target, and is 0 where the target was not seen.
    """
    matches = tf.equal(items[:, tf.newaxis, :], targets_matrix[:, :, tf.newaxis]) & (pointer_logits > _MASKED / 2)
    seen = tf.reduce_any(matches, axis=-1)
    log_total = tf.reduce_logsumexp(pointer_logits, axis=-1)
    log_hit = tf.reduce_logsumexp(tf.where(matches, pointer_logits, _MASKED), axis=-1)
    return seen, tf.where(seen, log_hit - log_total, 0.0)


def log_mix_sparse(log_base, columns, mass):
    """``log(exp(log_base) + m)`` where ``m`` [B, C] is the sum of ``mass`` [B, S] at ``columns`` [B, S].

    ``columns`` are catalog columns; entries ``< 0`` or with ``mass`` 0 add nothing. Only
    the columns named are touched, so the cost is one dense pass, not one per term: the
    dense ``log_base`` [B, C] is updated in place at ``S`` entries per row.

    >>> out = log_mix_sparse(tf.math.log([[0.5, 0.5, 0.0]]), tf.constant([[2, 0, 2, -1]]), tf.constant([[0.1, 0.2, 0.1, 9.0]]))
    >>> [round(float(p), 3) for p in tf.exp(out)[0]]
    [0.7, 0.5, 0.2]
    """
    rows = tf.broadcast_to(tf.range(tf.shape(columns)[0])[:, tf.newaxis], tf.shape(columns))
    valid = (columns >= 0) & (mass > 0)
    positions = tf.stack([rows, tf.cast(tf.maximum(columns, 0), tf.int32)], axis=-1)
    extra = tf.tensor_scatter_nd_add(tf.zeros_like(log_base), positions, tf.where(valid, mass, 0.0))
    # Every entry at a position, valid or not, writes the same value there: the position's total.
    total, base = tf.gather_nd(extra, positions), tf.gather_nd(log_base, positions)
    mixed = tf.where(total > 0, tf.math.log(tf.exp(base) + total), base)
    return tf.tensor_scatter_nd_update(log_base, positions, mixed)


def mix_with_catalog(catalog_logits, gate_logits, pointer_logits, items):
    """Log-probabilities of the repeat/explore mixture over the catalog: ``[B, C]``.

    ``catalog_logits`` ``[B, C]`` score catalog column ``c`` = item index ``c + FIRST_ITEM_INDEX``;
    ``gate_logits`` ``[B]`` and ``pointer_logits`` ``[B, T]`` belong to each session's last
    position and ``items`` ``[B, T]`` are its item indices (smaller than ``FIRST_ITEM_INDEX``:
    padding or unknown, never pointed at).
    """
    log_catalog = tf.nn.log_softmax(catalog_logits, axis=-1) + tf.math.log_sigmoid(-gate_logits)[:, tf.newaxis]
    known = items >= FIRST_ITEM_INDEX
    pointed = tf.where(known, tf.nn.softmax(pointer_logits, axis=-1), 0.0) * tf.sigmoid(gate_logits)[:, tf.newaxis]
    return log_mix_sparse(log_catalog, tf.where(known, items - FIRST_ITEM_INDEX, -1), pointed)
