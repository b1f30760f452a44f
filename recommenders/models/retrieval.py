"""Two-tower session retrieval on ``tfrs.tasks.Retrieval``, trained on every session position."""

from __future__ import annotations

import numpy as np

from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.config import RetrievalConfig
from recommenders.models.distribute import share_of_mean
from recommenders.models.fusion import NeighbourFusion
from recommenders.models.repeat import RepeatHead, mix_with_catalog, repeat_targets
from recommenders.models.towers import (
    FIRST_ITEM_INDEX,
    OOV_INDEX,
    PADDING_INDEX,
    SessionEncoder,
    SessionTowersModel,
    build_towers,
    last_position,
    precision_policy,
)
from recsys_base.tf_compat import tensorflow, tfrs

tf = tensorflow()
tfrs = tfrs()

EVALUATION_KS = (10, 20)


class CatalogTopK(tfrs.layers.factorized_top_k.TopK):
    """Exact top-K over a catalog-embedding matrix held in a variable refreshed in place.

    ``FactorizedTopK`` needs a fresh item index at every validation; refreshing this
    layer's variable (``index``) keeps the compiled validation step valid, unlike building
    a new ``BruteForce`` index each time. Identifiers are vocabulary indices.

    Example:

    >>> top_k = CatalogTopK(num_candidates=100, dim=8, first_index=2, k=20)
    >>> top_k.index(tf.random.normal([100, 8]))                # doctest: +ELLIPSIS
    <...CatalogTopK...>
    """

    def __init__(self, num_candidates: int, dim: int, first_index: int, k: int, **kwargs):
        super().__init__(k=k, **kwargs)
        self.num_candidates, self.dim, self.first_index = num_candidates, dim, first_index
        self.candidates = tf.Variable(tf.zeros([num_candidates, dim]), trainable=False, name="catalog_embeddings")
        self.identifiers = tf.range(first_index, first_index + num_candidates, dtype=tf.int64)

    def index(self, candidates, identifiers=None):
        if identifiers is not None:
            raise ValueError("CatalogTopK identifiers are fixed vocabulary indices")
        self.candidates.assign(candidates)
        return self

    def call(self, queries, k=None):
        scores = tf.linalg.matmul(tf.cast(queries, tf.float32), self.candidates, transpose_b=True)
        values, positions = tf.math.top_k(scores, k=k if k is not None else self._k)
        return values, tf.gather(self.identifiers, positions)

    def is_exact(self) -> bool:
        return True

    def get_config(self):
        # TFRS's TopK (a Model) leaves ``k`` out of its config; the constructor needs it.
        return {**super().get_config(), "num_candidates": self.num_candidates, "dim": self.dim,
                "first_index": self.first_index, "k": self._k}


class RefreshCatalogIndex(tf.keras.callbacks.Callback):
    """Re-embeds the catalog into the model's ``CatalogTopK`` before every validation pass."""

    def on_test_begin(self, logs=None):
        self.model.catalog_top_k.index(self.model.catalog_embeddings())


def next_item_positions(session_encoder: SessionEncoder, features, training=None, item_embeddings: bool = False):
    """Per-position states of a batch: ``(embeddings [B, T, D], mask [B, T], items [B, T], valid [B, T-1], seen)``.

    ``valid`` marks the positions that are examples: a next item that is neither padding
    nor unknown to the vocabulary. ``seen`` [B, T, D] are the items' embeddings (see
    :meth:`SessionEncoder.encode`), or None.
    """
    embeddings, mask, items, seen = session_encoder.encode(features, training=training, item_embeddings=item_embeddings)
    targets = items[:, 1:]
    valid = mask[:, :-1] & tf.not_equal(targets, PADDING_INDEX) & tf.not_equal(targets, OOV_INDEX)
    return embeddings, mask, items, valid, seen


def member_log_probabilities(session_encoder: SessionEncoder, repeat_head, catalog, temperature: float, features):
    """One member's log-probability of every catalog item being each session's next:
    ``(log_p [B, C], state [B, D], items [B, T])``.

    The two-tower softmax over ``catalog`` [C, D], mixed with the repeat head's pointer
    (if any). ``state`` is the query at the last position, ``items`` the item indices.
    """
    embeddings, mask, items, seen = session_encoder.encode(features, training=False, item_embeddings=repeat_head is not None)
    state = tf.cast(last_position(embeddings, mask), tf.float32)
    logits = tf.linalg.matmul(state, catalog, transpose_b=True) / temperature
    if repeat_head is None:
        return tf.nn.log_softmax(logits, axis=-1), state, items
    gate, pointer = repeat_head(embeddings, seen, items)
    return mix_with_catalog(logits, last_position(gate, mask), last_position(pointer, mask), items), state, items


def catalog_log_probabilities(members, fusion, temperature: float, features, fused: bool = True):
    """Log-probability of every catalog item being each session's next: ``(log_p [B, C], state [B, n * D], items [B, T])``.

    ``members`` are the ensemble's ``(session_encoder, repeat_head or None, catalog [C, D])``;
    the ensemble's distribution is the mean of theirs (:func:`member_log_probabilities`),
    then mixed with the session's neighbours (``fusion``, unless ``fused`` is False).
    ``state`` is the members' last-position queries side by side (what the fusion gate reads).
    """
    parts = [member_log_probabilities(session_encoder, repeat_head, catalog, temperature, features)
             for session_encoder, repeat_head, catalog in members]
    items = parts[0][2]
    if len(parts) == 1:
        log_p, state = parts[0][0], parts[0][1]
    else:
        # A mixture: an item keeps the probability any member gives it, where a mean of
        # logits would let one member's doubt veto another's confident answer.
        log_p = tf.reduce_logsumexp(tf.stack([part[0] for part in parts]), axis=0) - np.log(len(parts))
        state = tf.concat([part[1] for part in parts], axis=-1)
    if fusion is not None and fused:
        log_p = fusion(log_p, state, items)
    return log_p, state, items


class EnsembleMember(tf.keras.layers.Layer):
    """Towers of one more ensemble member: ``item_encoder``, ``session_encoder`` and
    ``repeat_head`` (None without one), new weights over the model's vocabularies.

    A container the model trains and scores through its attributes; it is never called.
    """

    def __init__(self, vocab: FeatureVocabularies, config: RetrievalConfig, **kwargs):
        super().__init__(**kwargs)
        self.item_encoder, self.session_encoder = build_towers(vocab, config)
        self.repeat_head = RepeatHead(config.output_dim, name="repeat_head") if config.repeat_head else None


class SessionRetrievalModel(SessionTowersModel):
    """Retrieval: an LSTM session tower against a content-aware item tower.

    Loss (``negatives="sampled"``): softmax over in-batch positives plus ``extra_negatives``
    uniformly sampled catalog items, with logQ sampling-bias correction (each candidate's
    logit is reduced by the log of its expected count in the candidate set), accidental-hit
    removal and a temperature. ``negatives="catalog"``: exact softmax over every item.
    The full-catalog ``FactorizedTopK`` metric (HR@K) is computed at validation only.

    With ``ensemble_size`` n > 1 the model trains n sets of towers side by side (its own
    and ``ensemble_members``), each from its own initial weights on the same batches; the
    loss is the sum of theirs, so each member learns as if alone. Averaging members
    started apart removes part of what one model gets wrong by chance. ``FactorizedTopK``
    and the repeat gate's AUC score the first member; the validation HR/MRR of
    ``retrieve`` score the ensemble.

    Example (untrained):

    >>> from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
    >>> from recommenders.features.sequences import sessions_to_arrays
    >>> shop = generate_shop(SyntheticShopConfig.small(n_sessions=100, clean=True))
    >>> model = SessionRetrievalModel(FeatureVocabularies.build(shop.events, shop.catalog), RetrievalConfig())
    >>> features = sessions_to_arrays(shop.events, max_length=20).features()
    >>> model(features).shape, model.catalog_embeddings().shape     # session queries, catalog items
    (TensorShape([88, 64]), TensorShape([300, 64]))
    >>> float(model.compute_loss(features, training=True)) > 0
    True

    Training (minutes on a real shop; :func:`recommenders.models.training.train_retrieval`
    adds early stopping)::

        model.compile(tf.keras.optimizers.Adam(0.003))
        model.fit(to_dataset(sessions_to_arrays(train, 20), 256), epochs=5,
                  validation_data=..., callbacks=[RefreshCatalogIndex()])
    """

    def __init__(self, vocab: FeatureVocabularies, config: RetrievalConfig, **kwargs):
        super().__init__(vocab, config, **kwargs)
        probability = vocab.item_sampling_probability()
        # The padding and unknown indices are never candidates; give them a harmless value.
        self.sampling_probability = tf.constant(np.concatenate([np.ones(FIRST_ITEM_INDEX), probability]), tf.float32)
        self.catalog_top_k = CatalogTopK(vocab.num_items, config.output_dim, first_index=FIRST_ITEM_INDEX, k=max(EVALUATION_KS))
        # Losses in float32 under mixed precision too: a Keras layer casts only its first
        # input to the policy's float16, and the task's matmul then meets a float32 one.
        with precision_policy(mixed_precision=False):
            self.task = tfrs.tasks.Retrieval(
                metrics=tfrs.metrics.FactorizedTopK(candidates=self.catalog_top_k, ks=EVALUATION_KS),
                temperature=config.temperature,
                remove_accidental_hits=config.remove_accidental_hits,
            )
        self.fusion = None
        if config.fusion:
            # Empty tables until ``set_neighbours``: the fused score is then the model's own.
            self.fusion = NeighbourFusion([spec.name for spec in config.neighbour_specs()], self.item_encoder.num_indices,
                                          config.neighbours_per_item, state_dim=config.ensemble_size * config.output_dim,
                                          name="fusion")
        self.repeat_head = None
        if config.repeat_head:
            self.repeat_head = RepeatHead(config.output_dim, name="repeat_head")
            with precision_policy(mixed_precision=False):
                self.repeat_gate_task = tfrs.tasks.Ranking(
                    loss=tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.SUM),
                    metrics=[tf.keras.metrics.AUC(from_logits=True, name="repeat_gate_auc")],
                )
        self.ensemble_members = [EnsembleMember(vocab, config, name=f"ensemble_member_{number}")
                                 for number in range(1, config.ensemble_size)]

    @property
    def members(self) -> tuple:
        """The ensemble, each with ``item_encoder``, ``session_encoder`` and ``repeat_head``:
        this model's own towers first, then ``ensemble_members``."""
        return (self, *self.ensemble_members)

    def set_neighbours(self, neighbours) -> None:
        """The neighbour tables fusion mixes in (``features/neighbours.py``)."""
        self.fusion.set_neighbours(neighbours)

    def compute_loss(self, features, training=False):
        return tf.add_n([self._member_loss(member, features, training, compute_metrics=not training and number == 0)
                         for number, member in enumerate(self.members)])

    def _member_loss(self, member, features, training, compute_metrics):
        embeddings, mask, items, valid, seen = next_item_positions(
            member.session_encoder, features, training, item_embeddings=member.repeat_head is not None)
        queries, targets = tf.boolean_mask(embeddings[:, :-1], valid), tf.boolean_mask(items[:, 1:], valid)
        loss = self._retrieval_loss(member.item_encoder, queries, targets, training, compute_metrics)
        if member.repeat_head is not None:
            gate, pointer = member.repeat_head(embeddings, seen, items, training=training)
            seen, log_likelihood = repeat_targets(items, items[:, 1:], pointer[:, :-1])
            gate_labels = tf.cast(tf.boolean_mask(seen, valid), tf.float32)[:, tf.newaxis]
            # The gate's loss is its mean over the batch's positions; summed over the [N, 1]
            # labels here, then this replica's share of the global mean (models/distribute.py).
            loss += share_of_mean(self.repeat_gate_task(
                labels=gate_labels,
                predictions=tf.boolean_mask(gate[:, :-1], valid)[:, tf.newaxis],
                compute_metrics=compute_metrics,
            ), tf.size(gate_labels))
            loss -= tf.reduce_sum(tf.boolean_mask(log_likelihood, valid))
        return loss

    def _retrieval_loss(self, item_encoder, queries, targets, training, compute_metrics):
        if training and self.config.negatives == "catalog":
            # Validation keeps the in-batch loss: FactorizedTopK there already scans the catalog.
            return self._catalog_softmax_loss(item_encoder, queries, targets)
        candidate_ids = targets
        if training and self.config.extra_negatives:
            extra = tf.random.uniform(
                [self.config.extra_negatives], FIRST_ITEM_INDEX, self.item_encoder.num_indices, dtype=targets.dtype
            )
            candidate_ids = tf.concat([targets, extra], axis=0)
        candidates = item_encoder.encode_indices(candidate_ids, training=training)
        probability = None
        if self.config.sampling_bias_correction:
            # Expected number of times each candidate appears in this batch's candidate set.
            n_positives = tf.cast(tf.shape(targets)[0], tf.float32)
            uniform = (tf.cast(tf.shape(candidate_ids)[0], tf.float32) - n_positives) / float(self.vocab.num_items)
            probability = n_positives * tf.gather(self.sampling_probability, candidate_ids) + uniform
        return self.task(
            tf.cast(queries, tf.float32),
            tf.cast(candidates, tf.float32),
            candidate_sampling_probability=probability,
            candidate_ids=candidate_ids,
            compute_metrics=compute_metrics,
        )

    def _catalog_softmax_loss(self, item_encoder, queries, targets):
        """Exact softmax cross-entropy of each next item against every catalog item.

        Summed like ``tfrs.tasks.Retrieval``'s loss, so learning rates carry over between
        the two modes. The sparse op keeps one ``[positions, catalog]`` matrix alive; the
        task's dense identity labels and masks would need four, several times slower on CPU.
        """
        catalog = item_encoder.encode_indices(
            tf.range(FIRST_ITEM_INDEX, item_encoder.num_indices, dtype=targets.dtype), training=True)
        logits = tf.linalg.matmul(tf.cast(queries, tf.float32), tf.cast(catalog, tf.float32), transpose_b=True)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets - FIRST_ITEM_INDEX, logits / self.config.temperature)
        return tf.reduce_sum(losses)

    def call(self, features, training=None):
        """Query embeddings at each session's last position: [B, output_dim]."""
        embeddings, mask = self.session_encoder(features, training=training)
        return last_position(embeddings, mask)

    def catalog_embeddings(self, member=None, batch_size: int = 8192):
        """Embeddings of every vocabulary item by ``member`` (default: the model's own towers),
        in vocabulary order: [num_items, output_dim]."""
        item_encoder = (member or self).item_encoder
        chunks = [
            item_encoder.encode_indices(tf.range(start, min(start + batch_size, item_encoder.num_indices), dtype=tf.int64))
            for start in range(FIRST_ITEM_INDEX, item_encoder.num_indices, batch_size)
        ]
        return tf.cast(tf.concat(chunks, axis=0), tf.float32)
