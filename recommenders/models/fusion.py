"""Collaborative fusion: the retrieval distribution mixed with the session's item-to-item neighbours.

The two-tower softmax (with the repeat head's pointer) is one expert; each neighbour
table (``recommenders/features/neighbours.py``: last item -> next, co-occurrence within
a window) gives another, a distribution over the catalog built from the session's items:

    P_table(j) = sum_t a(t) * N[item_t, j] / sum_t a(t) * [item_t has neighbours],

with ``a(t) = exp(theta[distance of t from the session's end])`` learned per table. The
retrieval score becomes the mixture

    P(j) = g_model * P_model(j) + sum_table g_table * P_table(j),

whose weights ``g`` come from a session-conditioned softmax gate (the session state, and
per table whether the session has neighbours there and how peaked they are). A table with
no neighbours for a session gets weight 0, so an unknown item falls back to the model.

The served score is that mixture shifted toward what is popular now and renormalized:

    log P_served(j) = log P(j) + w * shift(j) - log sum_j' P(j') * exp(w * shift(j')),

with ``shift(j) = log(P_recent(j) / P_all(j))`` counted with the tables and their recency
(``popularity_shift`` in ``recommenders/features/neighbours.py``): the towers learn each
item's popularity over the whole training span, the next sessions click what is popular
at its end. ``w`` is 0 until :func:`recommenders.models.training.fit_fusion` picks it
on validation ranking after the gate's fit; tables counted without recency shift nothing.

Why the gate is fitted on held-out sessions, not on the training positions: the tables
are counted from the training sessions, so on those positions they contain every answer
and a gate fitted there learns to trust them far beyond what they earn on new sessions.
:func:`fit_fusion` fits the gate and the distance weights by maximum likelihood of the
mixture on the validation split's next items, with the towers frozen.

Everything is stock TensorFlow ops (gather, scatter, softmax), so TF Serving runs it; the
tables are non-trainable variables of this layer, saved with the weights.
"""

from __future__ import annotations

import numpy as np

from recommenders.features.neighbours import NO_NEIGHBOUR, ItemNeighbours
from recommenders.models.neighbour_features import index_space_tables
from recommenders.models.repeat import log_mix_sparse
from recommenders.models.towers import FIRST_ITEM_INDEX, PADDING_INDEX
from recsys_base.tf_compat import tensorflow, traced_for_any_shape

tf = tensorflow()

# Log-probability floor: keeps log(0) finite where a sum of probabilities is empty.
_TINY = 1e-30


@tf.keras.utils.register_keras_serializable(package="recommenders")
class NeighbourFusion(tf.keras.layers.Layer):
    """Neighbour distributions of a session and the gate mixing them with the model's.

    Tables are ``[num_indices, max_neighbours]`` in the item index space (rows for
    padding and unknown are empty); their entries are catalog columns (``NO_NEIGHBOUR``
    empty) and weights.

    Example (two tables over a 3-item catalog; item index = column + ``FIRST_ITEM_INDEX``):

    >>> fusion = NeighbourFusion(["next", "near"], num_indices=5, max_neighbours=2, state_dim=8, units=4)
    >>> fusion.set_tables([np.array([[1, -1], [-1, -1], [0, 2]]), np.array([[2, 1], [-1, -1], [-1, -1]])],
    ...                   [np.array([[1.0, 0], [0, 0], [0.5, 0.5]]), np.array([[0.6, 0.4], [0, 0], [0, 0]])])
    >>> columns, mass, evidence = fusion.session_neighbours(tf.constant([[2, 4, 0]], tf.int64))
    >>> columns.shape, mass.shape, evidence.shape    # [B, tables, T * M], [B, tables, T * M], [B, 2 * tables]
    (TensorShape([1, 2, 6]), TensorShape([1, 2, 6]), TensorShape([1, 4]))
    """

    def __init__(self, table_names, num_indices: int, max_neighbours: int, state_dim: int, units: int = 32,
                 max_distance: int = 32, **kwargs):
        # float32 under any precision policy: the mixture sums probabilities down to 1e-30.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.table_names = list(table_names)
        self.num_indices, self.max_neighbours, self.state_dim = num_indices, max_neighbours, state_dim
        self.units, self.max_distance = units, max_distance
        shape = [len(self.table_names), num_indices, max_neighbours]
        self.columns = self.add_weight("neighbour_columns", shape, tf.int32, tf.keras.initializers.Constant(NO_NEIGHBOUR),
                                       trainable=False)
        self.weights_table = self.add_weight("neighbour_weights", shape, tf.float32, "zeros", trainable=False)
        # Per table, a log weight per distance from the session's end; starts at halving per step.
        self.distance_log_weights = self.add_weight(
            "distance_log_weights", [len(self.table_names), max_distance], tf.float32,
            tf.keras.initializers.Constant(np.tile(-np.log(2.0) * np.arange(max_distance), (len(self.table_names), 1))))
        self.gate_hidden = tf.keras.layers.Dense(units, activation="relu", dtype="float32", name="fusion_gate_hidden")
        # Starts trusting the model: its weight begins e^3 times each table's.
        self.gate = tf.keras.layers.Dense(1 + len(self.table_names), kernel_initializer="zeros",
                                          bias_initializer=tf.keras.initializers.Constant([3.0] + [0.0] * len(self.table_names)),
                                          dtype="float32", name="fusion_gate")
        # Added to every table's gate logit: scales the tables' share against the model's
        # (chosen on validation ranking metrics after the likelihood fit, see fit_fusion).
        self.table_log_scale = self.add_weight("table_log_scale", [], tf.float32, "zeros", trainable=False)
        # Per catalog column, log(P_recent / P_all) of the counted sessions; and its weight w.
        self.popularity_shift = self.add_weight("popularity_shift", [num_indices - FIRST_ITEM_INDEX], tf.float32,
                                                "zeros", trainable=False)
        self.popularity_weight = self.add_weight("popularity_weight", [], tf.float32, "zeros", trainable=False)
        self.gate_hidden.build([None, state_dim + 2 * len(self.table_names)])
        self.gate.build([None, units])
        # The towers' optimizer never updates these weights: :func:`fit_gate` fits them on held-out sessions.
        self.trainable = False

    def set_tables(self, columns, weights) -> None:
        """Loads the tables: per table ``[num_indices - FIRST_ITEM_INDEX, <= M]`` columns and weights (vocabulary order)."""
        columns, weights = index_space_tables(columns, weights, self.max_neighbours)
        self.columns.assign(columns)
        self.weights_table.assign(weights)

    def set_neighbours(self, neighbours: ItemNeighbours) -> None:
        """Loads this layer's tables and popularity shift from ``neighbours`` (built over the model's vocabulary)."""
        self.set_tables([neighbours.tables[name].indices for name in self.table_names],
                        [neighbours.tables[name].weights for name in self.table_names])
        shift = neighbours.popularity_shift
        self.popularity_shift.assign(np.zeros(self.popularity_shift.shape, np.float32) if shift is None else shift)

    def _position_weights(self, items):
        """Per table and position, ``a(t)`` for positions holding items that have neighbours: [B, tables, T]."""
        # Distances count every event, unknown items too; only known items have neighbours.
        length = tf.reduce_sum(tf.cast(tf.not_equal(items, PADDING_INDEX), tf.int32), axis=1, keepdims=True)
        mask = items >= FIRST_ITEM_INDEX
        distance = tf.clip_by_value(length - 1 - tf.range(tf.shape(items)[1])[tf.newaxis, :], 0, self.max_distance - 1)
        # Gathered on axis 0: a variable's gather along another axis has no gradient.
        weights = tf.exp(tf.gather(tf.transpose(self.distance_log_weights), distance))  # [B, T, tables]
        has_neighbours = tf.gather(tf.transpose(self.weights_table[:, :, 0]), items) > 0  # [B, T, tables]
        weights = tf.where(has_neighbours & mask[..., tf.newaxis], weights, 0.0)
        return tf.transpose(weights, [0, 2, 1])

    def session_neighbours(self, items):
        """The session's neighbour distribution per table, sparse, and the gate's evidence.

        ``items`` [B, T] item indices (right-padded). Returns ``columns`` [B, tables, T*M]
        (catalog columns, ``NO_NEIGHBOUR`` empty), ``mass`` [B, tables, T*M] (summing to 1
        per table, or 0 when no item of the session has neighbours there) and ``evidence``
        [B, 2 * tables]: per table, whether it has mass and the log of its largest entry.
        """
        position_weights = self._position_weights(items)
        normalizer = tf.reduce_sum(position_weights, axis=-1, keepdims=True)
        position_weights = tf.math.divide_no_nan(position_weights, normalizer)
        columns = tf.transpose(tf.gather(self.columns, items, axis=1), [1, 0, 2, 3])  # [B, tables, T, M]
        weights = tf.transpose(tf.gather(self.weights_table, items, axis=1), [1, 0, 2, 3])
        mass = position_weights[..., tf.newaxis] * weights
        shape = tf.concat([tf.shape(mass)[:2], [-1]], axis=0)
        columns, mass = tf.reshape(columns, shape), tf.reshape(mass, shape)
        has_mass = tf.cast(normalizer[..., 0] > 0, tf.float32)
        evidence = tf.concat([has_mass, tf.math.log(tf.reduce_max(mass, axis=-1) + 1e-6)], axis=-1)
        return columns, mass, evidence

    def gate_log_weights(self, state, evidence, table_log_scale=None):
        """Log mixture weights ``[B, 1 + tables]`` (model first); a table without mass gets ``-inf``.

        ``table_log_scale`` (default: the layer's) is added to every table's logit.
        """
        logits = self.gate(self.gate_hidden(tf.concat([tf.stop_gradient(tf.cast(state, tf.float32)), evidence], -1)))
        scale = self.table_log_scale if table_log_scale is None else table_log_scale
        logits += tf.concat([[0.0], tf.fill([len(self.table_names)], scale)], axis=0)
        has_mass = evidence[:, : len(self.table_names)] > 0
        allowed = tf.concat([tf.ones_like(has_mass[:, :1]), has_mass], axis=-1)
        return tf.nn.log_softmax(tf.where(allowed, logits, -1e9), axis=-1)

    def call(self, log_model, state, items, table_log_scale=None):
        """``log P_served(j)`` [B, C] of the fused distribution, from the model's log-probabilities ``log_model`` [B, C]."""
        columns, mass, evidence = self.session_neighbours(items)
        log_gate = self.gate_log_weights(state, evidence, table_log_scale)
        gated_mass = tf.exp(log_gate[:, 1:, tf.newaxis]) * mass
        batch = tf.shape(columns)[0]
        fused = log_mix_sparse(log_model + log_gate[:, :1], tf.reshape(columns, [batch, -1]), tf.reshape(gated_mass, [batch, -1]))
        return tf.nn.log_softmax(fused + self.popularity_weight * self.popularity_shift)

    def log_likelihood(self, log_model_target, state, items, target_columns):
        """``log P(target)`` [N] of the fused distribution before the popularity shift (fitted
        after the gate), given the model's ``log P_model(target)`` [N]."""
        columns, mass, evidence = self.session_neighbours(items)
        log_gate = self.gate_log_weights(state, evidence)
        table_target = _target_mass(columns, mass, target_columns)
        terms = tf.concat([log_model_target[:, tf.newaxis], tf.math.log(table_target + _TINY)], axis=-1) + log_gate
        return tf.reduce_logsumexp(terms, axis=-1)

    def target_ranks(self, log_model, state, items, target_columns, table_log_scales, popularity_weights):
        """The target's rank in the served distribution under each setting: ``[settings, B]`` int32.

        ``log_model`` [B, C], ``state`` [B, D], ``items`` [B, T] and ``target_columns`` [B]
        as in :meth:`call` and :meth:`log_likelihood`; setting ``i`` is ``table_log_scales[i]``
        and ``popularity_weights[i]`` in place of the layer's. The rank is 1 + the number
        of catalog items scored strictly above the target, as ranking ``call``'s output
        would give, without building that output per setting: the tables touch at most
        ``tables * T * M`` columns of a session, and every other column keeps the model's
        score plus the model's gate weight and its popularity shift. So one dense
        comparison per setting counts the others, and the touched columns are summed once
        and counted apart.
        """
        columns, mass, evidence = self.session_neighbours(items)  # [B, tables, S]
        catalog = tf.cast(tf.shape(log_model)[1], tf.int64)
        rows = tf.broadcast_to(tf.range(tf.shape(columns)[0])[:, tf.newaxis, tf.newaxis], tf.shape(columns))
        tables = tf.broadcast_to(tf.range(len(self.table_names))[tf.newaxis, :, tf.newaxis], tf.shape(columns))
        valid = (columns >= 0) & (mass > 0)
        keys = tf.cast(tf.boolean_mask(rows, valid), tf.int64) * catalog + tf.cast(tf.boolean_mask(columns, valid), tf.int64)
        # The touched (row, column) pairs once each, with their mass per table summed: [U, tables].
        touched, slot = tf.unique(keys)
        touched_rows = tf.cast(touched // catalog, tf.int32)
        touched_mass = tf.reshape(tf.math.unsorted_segment_sum(
            tf.boolean_mask(mass, valid), slot * len(self.table_names) + tf.boolean_mask(tables, valid),
            tf.size(touched) * len(self.table_names)), [-1, len(self.table_names)])
        touched_columns = tf.cast(touched % catalog, tf.int32)
        touched_model = tf.gather_nd(log_model, tf.stack([touched_rows, touched_columns], -1))
        # The target is never above itself; left out of both counts, so rounding cannot put it there.
        not_target = tf.not_equal(touched_columns, tf.gather(tf.cast(target_columns, tf.int32), touched_rows))
        target_mass = _target_mass(columns, mass, target_columns)
        target_model = tf.gather(log_model, target_columns, batch_dims=1)
        batch = tf.shape(log_model)[0]

        def rank(setting):
            log_gate = self.gate_log_weights(state, evidence, setting[0])
            model_weight, table_weights = log_gate[:, 0], tf.exp(log_gate[:, 1:])
            shift = setting[1] * self.popularity_shift  # [C]
            target_shift, touched_shift = tf.gather(shift, target_columns), tf.gather(shift, touched_columns)

            def fused(log_model_part, table_mass, table_weight, log_model_weight):
                """The fused log-probability before the shift, from its model part and table masses."""
                extra = tf.reduce_sum(table_mass * table_weight, -1)
                model_term = log_model_part + log_model_weight
                return tf.where(extra > 0, tf.reduce_logsumexp(
                    tf.stack([model_term, tf.math.log(tf.maximum(extra, _TINY))]), 0), model_term)

            target = fused(target_model, target_mass, table_weights, model_weight) + target_shift  # [B]
            # An untouched column is above the target when its shifted model score is above this.
            threshold = target - model_weight
            above = (tf.reduce_sum(tf.cast(log_model + shift > threshold[:, tf.newaxis], tf.int32), -1)
                     - tf.cast(target_model + target_shift > threshold, tf.int32))
            touched_target, touched_threshold = tf.gather(target, touched_rows), tf.gather(threshold, touched_rows)
            touched_fused = touched_shift + fused(touched_model, touched_mass, tf.gather(table_weights, touched_rows),
                                                  tf.gather(model_weight, touched_rows))
            # Touched columns were counted by their model score; count them by their fused one instead.
            correction = tf.cast(not_target & (touched_fused > touched_target), tf.int32) - tf.cast(
                not_target & (touched_model + touched_shift > touched_threshold), tf.int32)
            return 1 + above + tf.math.unsorted_segment_sum(correction, touched_rows, batch)

        settings = tf.stack([tf.convert_to_tensor(table_log_scales, tf.float32),
                             tf.convert_to_tensor(popularity_weights, tf.float32)], axis=-1)
        return tf.map_fn(rank, settings, fn_output_signature=tf.int32)

    def get_config(self):
        return {**super().get_config(), "table_names": self.table_names, "num_indices": self.num_indices,
                "max_neighbours": self.max_neighbours, "state_dim": self.state_dim, "units": self.units,
                "max_distance": self.max_distance}


def _target_mass(columns, mass, target_columns):
    """Each table's mass on the session's target: ``[B, tables]``, from :meth:`NeighbourFusion.session_neighbours`'s
    ``columns`` and ``mass`` [B, tables, S] and the target's catalog column [B]."""
    targets = tf.cast(target_columns, columns.dtype)[:, tf.newaxis, tf.newaxis]
    return tf.reduce_sum(tf.where(tf.equal(columns, targets), mass, 0.0), -1)


def fit_gate(fusion: NeighbourFusion, log_model_target, state, items, target_columns, seed: int = 0,
             batch_size: int = 1024, max_epochs: int = 40, patience: int = 3, learning_rate: float = 0.01) -> dict:
    """Fits the gate and distance weights of ``fusion`` by maximum likelihood of the mixture.

    One example per held-out next item: the model's ``log P_model(target)`` [N], the
    session state [N, D], its item indices [N, T] and the target's catalog column [N].
    Only this fits them (the layer is not trainable for the towers' optimizer). A tenth
    of the examples (seeded) is kept out to stop when their likelihood stops
    improving (``patience`` epochs); the best weights are kept. Returns the mean held-out
    log-likelihood of the model alone (``model``), of the mixture before (``start``)
    and after (``fitted``) fitting, and the epochs run.
    """
    # Fitted on a plain copy of the same class (a subclass keeps its own gate): under a
    # tf.distribute strategy the layer's variables are mirrored, which a Keras optimizer
    # outside the strategy's training loop cannot update. Every worker fits the same copy
    # from the same data and seed, so replicas stay equal.
    target_layer, fusion = fusion, type(fusion).from_config(fusion.get_config())
    fusion.set_weights(target_layer.get_weights())
    count = int(tf.shape(target_columns)[0])
    order = np.random.default_rng(seed).permutation(count)
    held = order[: max(1, count // 10)]
    train = order[len(held):] if count > 1 else order
    data = [tf.convert_to_tensor(t) for t in (log_model_target, state, items, target_columns)]

    def take(rows):
        return [tf.gather(t, rows) for t in data]

    held_data = take(held)

    def held_out() -> float:
        return float(tf.reduce_mean(fusion.log_likelihood(*held_data)))

    start = best = held_out()
    fusion.trainable = True
    variables = fusion.trainable_variables
    fusion.trainable = False
    optimizer = tf.keras.optimizers.Adam(learning_rate)

    def step(log_model, states, session_items, targets):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(fusion.log_likelihood(log_model, states, session_items, targets))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    step = traced_for_any_shape(step, *take(train[:batch_size]))
    best_values, waited, epochs = [v.numpy() for v in variables], 0, 0
    rng = np.random.default_rng(seed + 1)
    while epochs < max_epochs and waited < patience:
        epochs += 1
        shuffled = rng.permutation(train)
        for first in range(0, len(shuffled), batch_size):
            step(*take(shuffled[first:first + batch_size]))
        value = held_out()
        if value > best + 1e-4:
            best, best_values, waited = value, [v.numpy() for v in variables], 0
        else:
            waited += 1
    for variable, value in zip(variables, best_values):
        variable.assign(value)
    target_layer.set_weights(fusion.get_weights())
    return {"model": float(tf.reduce_mean(held_data[0])), "start": start, "fitted": best, "epochs": epochs,
            "examples": count}
