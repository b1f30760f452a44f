"""Multi-task click / add-to-cart / purchase ranking with DCN-v2 cross layers."""

from __future__ import annotations

from recommenders.features.neighbours import ItemNeighbours
from recommenders.features.sequences import NEIGHBOUR_FOLD
from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.config import RANKING_TASKS, RankingConfig
from recommenders.models.distribute import share_of_mean
from recommenders.models.neighbour_features import NeighbourScores
from recommenders.models.towers import FIRST_ITEM_INDEX, OOV_INDEX, PADDING_INDEX, SessionTowersModel, last_position
from recsys_base.tf_compat import tensorflow, tfrs
from serving import contract

tf = tensorflow()
tfrs = tfrs()

# Positions of the event types on the last axis of ``_seen_in_prefix``.
_CART = contract.EVENT_TYPES.index(contract.CART)
_PURCHASE = contract.EVENT_TYPES.index(contract.PURCHASE)


def _seen_in_prefix(prefix_items, prefix_types, prefix_mask, candidates):
    """[N, C, len(contract.EVENT_TYPES)] bools: did each candidate occur with each event type in the masked events."""
    same = tf.equal(candidates[:, :, tf.newaxis], prefix_items[:, tf.newaxis, :]) & prefix_mask[:, tf.newaxis, :]
    return tf.stack(
        [tf.reduce_any(same & tf.equal(prefix_types[:, tf.newaxis, :], t), axis=-1) for t in contract.EVENT_TYPES],
        axis=-1,
    )


class MultiTaskRanker(SessionTowersModel):
    """Scores (session, candidate item) pairs for click, add-to-cart and purchase.

    Shared bottom: the session representation (its own LSTM session tower), the candidate's
    item-tower embedding, their element-wise product, whether the shopper already saw,
    carted or bought the candidate and (``neighbour_features``) the candidate's scores in
    the session's neighbour tables (:mod:`recommenders.models.neighbour_features`);
    DCN-v2 ``Cross`` layers then a deep MLP feed one logit per task, each trained with
    ``tfrs.tasks.Ranking`` and weighted by the config.

    Training examples are every session position: the next item is the positive (clicked;
    carted / purchased if the shopper did so later in the session) and
    ``negatives_per_position`` other positions' next items from the batch are negatives,
    so negatives follow item popularity. ``session_negatives`` more are the session's own
    latest items: ``recommend`` always puts the session's items among the candidates the
    ranker reorders, so it must learn when a shopper goes back and when they move on.

    Example:

    >>> from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
    >>> from recommenders.features.sequences import sessions_to_arrays
    >>> shop = generate_shop(SyntheticShopConfig.small(n_sessions=100, clean=True))
    >>> ranker = MultiTaskRanker(FeatureVocabularies.build(shop.events, shop.catalog), RankingConfig())
    >>> ranker.compile(tf.keras.optimizers.Adam(0.003))
    >>> arrays = sessions_to_arrays(shop.events, max_length=20)
    >>> candidate_ids = tf.constant([["item_00001", "item_00002", "item_00003"]] * len(arrays))
    >>> probabilities, score = ranker.rank(arrays.features(), candidate_ids)
    >>> sorted(probabilities), score.shape        # each [sessions, candidates]; score: their weighted sum
    (['cart', 'click', 'purchase'], TensorShape([88, 3]))
    """

    def __init__(self, vocab: FeatureVocabularies, config: RankingConfig, **kwargs):
        super().__init__(vocab, config, **kwargs)
        self.cross_layers = [tfrs.layers.dcn.Cross(name=f"cross_{i}") for i in range(config.cross_layers)]
        self.deep_layers = [tf.keras.layers.Dense(units, activation="relu") for units in config.deep_units]
        self.heads = {task: tf.keras.layers.Dense(1, dtype="float32", name=f"{task}_logit") for task in RANKING_TASKS}
        self.tasks = {
            task: tfrs.tasks.Ranking(
                # Summed here and divided by the global batch's label count in compute_loss:
                # a replica's share of the mean (models/distribute.py).
                loss=tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.SUM),
                metrics=[
                    tf.keras.metrics.AUC(from_logits=True, name=f"{task}_auc"),
                    tf.keras.metrics.BinaryCrossentropy(from_logits=True, name=f"{task}_log_loss"),
                ],
            )
            for task in RANKING_TASKS
        }
        self.task_weights = {task: getattr(config, f"{task}_weight") for task in RANKING_TASKS}
        self.neighbour_scores = None
        if config.neighbour_features:
            # Empty tables until ``set_neighbours``: every candidate then scores "no evidence".
            self.neighbour_scores = NeighbourScores([spec.name for spec in config.neighbour_specs()],
                                                    self.item_encoder.num_indices, config.neighbours_per_item,
                                                    name="neighbour_scores")

    def set_neighbours(self, neighbours: ItemNeighbours) -> None:
        """The tables the ranker serves with (training's out-of-fold ones: :class:`NeighbourScores`)."""
        self.neighbour_scores.set_neighbours(neighbours)

    def _neighbour_features(self, items, distance, known, candidates, folds=None):
        """``[N, C, 2 * tables]`` neighbour scores of the candidates, or ``[N, C, 0]`` without them."""
        if self.neighbour_scores is None:
            return tf.zeros(tf.concat([tf.shape(candidates), [0]], axis=0))
        return self.neighbour_scores(items, distance, known & (items >= FIRST_ITEM_INDEX), candidates, folds)

    def logits(self, session, candidates, seen, neighbours, training=None):
        """Per-task logits [N, C] for session representations [N, D], candidate indices [N, C],
        their seen flags [N, C, event types] and neighbour scores [N, C, F]."""
        items = self.item_encoder.encode_indices(candidates, training=training)
        session = tf.broadcast_to(session[:, tf.newaxis, :], tf.shape(items))
        x = tf.concat([session, items, session * items, tf.cast(seen, items.dtype), tf.cast(neighbours, items.dtype)],
                      axis=-1)
        x0 = x
        for cross in self.cross_layers:
            x = cross(x0, x)
        for dense in self.deep_layers:
            x = dense(x)
        return {task: tf.squeeze(head(x), -1) for task, head in self.heads.items()}

    def compute_loss(self, features, training=False):
        embeddings, mask = self.session_encoder(features, training=training)
        items = self.item_encoder.lookup(features[contract.SESSION_ITEM_IDS])
        types = features[contract.SESSION_EVENT_TYPES]
        targets = items[:, 1:]
        valid = mask[:, :-1] & tf.not_equal(targets, PADDING_INDEX) & tf.not_equal(targets, OOV_INDEX)
        where = tf.where(valid)  # [N, 2]: (row, position predicting position + 1)
        rows, positions = where[:, 0], where[:, 1]
        session = tf.gather_nd(embeddings, where)
        target = tf.gather_nd(targets, where)

        n = tf.shape(target)[0]
        negatives = tf.gather(target, tf.random.uniform([n, self.config.negatives_per_position], 0, n, dtype=tf.int32))
        row_items, row_types = tf.gather(items, rows), tf.gather(types, rows)
        if self.config.session_negatives:
            # The session's latest items up to the position (a re-visit target among them is
            # labelled a click); positions with fewer known items fall back to batch negatives.
            back = positions[:, tf.newaxis] - tf.range(self.config.session_negatives, dtype=positions.dtype)[tf.newaxis, :]
            recent = tf.gather(row_items, tf.maximum(back, 0), batch_dims=1)
            fallback = tf.gather(target, tf.random.uniform(tf.shape(recent), 0, n, dtype=tf.int32))
            negatives = tf.concat([negatives, tf.where((back >= 0) & (recent >= FIRST_ITEM_INDEX), recent, fallback)], 1)
        candidates = tf.concat([target[:, tf.newaxis], negatives], axis=1)

        length = tf.shape(items)[1]
        steps = tf.range(length, dtype=positions.dtype)[tf.newaxis, :]
        prefix = steps <= positions[:, tf.newaxis]
        future = (steps > positions[:, tf.newaxis]) & tf.gather(mask, rows)
        seen = _seen_in_prefix(row_items, row_types, prefix, candidates)
        later = _seen_in_prefix(row_items, row_types, future, candidates)
        # Training rows carry their session's fold: they read tables counted without it.
        folds = tf.gather(features[NEIGHBOUR_FOLD], rows) if NEIGHBOUR_FOLD in features else None
        neighbours = self._neighbour_features(row_items, positions[:, tf.newaxis] - steps, prefix, candidates, folds)
        clicked = tf.equal(candidates, target[:, tf.newaxis])
        labels = {
            "click": clicked,
            "cart": clicked & (later[..., _CART] | later[..., _PURCHASE]),
            "purchase": clicked & later[..., _PURCHASE],
        }
        logits = self.logits(session, candidates, seen, neighbours, training=training)
        return share_of_mean(tf.add_n([
            self.task_weights[task] * self.tasks[task](
                labels=tf.reshape(tf.cast(labels[task], tf.float32), [-1, 1]),
                predictions=tf.reshape(logits[task], [-1, 1]),
                compute_metrics=not training,
            )
            for task in RANKING_TASKS
        ]), tf.size(candidates))

    def rank(self, features, candidate_ids, training=None):
        """Probabilities per task and their weighted sum for candidates [B, C] of each session."""
        embeddings, mask = self.session_encoder(features, training=training)
        candidates = self.item_encoder.lookup(candidate_ids)
        items = self.item_encoder.lookup(features[contract.SESSION_ITEM_IDS])
        seen = _seen_in_prefix(items, features[contract.SESSION_EVENT_TYPES], mask, candidates)
        length = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1, keepdims=True)
        distance = length - 1 - tf.range(tf.shape(items)[1])[tf.newaxis, :]
        neighbours = self._neighbour_features(items, distance, mask, candidates)
        logits = self.logits(last_position(embeddings, mask), candidates, seen, neighbours, training=training)
        probabilities = {task: tf.sigmoid(logits[task]) for task in RANKING_TASKS}
        total = sum(self.task_weights.values())
        score = tf.add_n([self.task_weights[t] / total * probabilities[t] for t in RANKING_TASKS])
        return probabilities, score

    def call(self, features, training=None):
        """Ranking of the session's next item among itself (used to build the model's variables)."""
        return self.rank(features, features[contract.SESSION_ITEM_IDS], training=training)
