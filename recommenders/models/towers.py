"""The two towers: ``ItemEncoder`` (candidates) and ``SessionEncoder`` (queries), and ``TextEncoder``.

All vocabularies live in Keras preprocessing layers inside the towers, so a SavedModel
takes raw strings and needs nothing else at serving time.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np

from recommenders.features.sequences import SESSION_QUERIES
from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.config import TowerConfig
from recommenders.models.distribute import replica_share, replicas
from recsys_base.tf_compat import tensorflow, tfrs
from serving import contract

tf = tensorflow()
tfrs = tfrs()

# The index layout of every StringLookup built by ``_lookup`` (mask token "", one OOV
# bucket): padding, then unknown, then the vocabulary in order. For items, index
# ``FIRST_ITEM_INDEX + i`` is ``vocab.item_ids[i]``, catalog column ``i`` of the scores.
PADDING_INDEX = 0
OOV_INDEX = 1
FIRST_ITEM_INDEX = 2


@contextlib.contextmanager
def precision_policy(mixed_precision: bool):
    """Runs the block under ``mixed_float16`` when asked (GPU speed-up), restoring the policy after."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


# Stands in for an empty vocabulary (e.g. no brands in the data): a lookup table needs one entry.
_NO_VOCABULARY = ["[NONE]"]


def _lookup(vocabulary) -> tf.keras.layers.StringLookup:
    return tf.keras.layers.StringLookup(vocabulary=list(vocabulary) or _NO_VOCABULARY, mask_token="", num_oov_indices=1)


def _regularizer(l2: float):
    return tf.keras.regularizers.l2(l2) if l2 > 0 else None


@tf.keras.utils.register_keras_serializable(package="recommenders")
class TextEncoder(tf.keras.layers.Layer):
    """Bag-of-words text embedding: ``TextVectorization`` -> token embeddings -> masked mean.

    Example:

    >>> encoder = TextEncoder(tokens=["red", "shoes"], embedding_dim=8, max_tokens=4)
    >>> encoder(tf.constant(["Red shoes!", ""])).shape
    TensorShape([2, 8])
    """

    def __init__(self, tokens, embedding_dim: int, max_tokens: int, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.tokens = list(tokens)
        self.embedding_dim = embedding_dim
        self.max_tokens = max_tokens
        self.l2 = l2
        self.vectorize = tf.keras.layers.TextVectorization(
            standardize="lower_and_strip_punctuation",
            split="whitespace",
            vocabulary=self.tokens or _NO_VOCABULARY,
            output_sequence_length=max_tokens,
        )
        self.embedding = tf.keras.layers.Embedding(
            self.vectorize.vocabulary_size(), embedding_dim, embeddings_regularizer=_regularizer(l2)
        )

    def token_ids(self, texts):
        """[...] strings -> [..., max_tokens] token ids (0 = padding)."""
        flat = tf.reshape(texts, [-1])
        ids = self.vectorize(flat)
        return tf.reshape(ids, tf.concat([tf.shape(texts), [self.max_tokens]], 0))

    def embed_ids(self, ids):
        mask = tf.cast(ids > 0, self.compute_dtype)[..., tf.newaxis]
        total = tf.reduce_sum(self.embedding(ids) * mask, axis=-2)
        return total / tf.maximum(tf.reduce_sum(mask, axis=-2), 1.0)

    def call(self, texts):
        return self.embed_ids(self.token_ids(texts))

    def get_config(self):
        return {**super().get_config(), "tokens": self.tokens, "embedding_dim": self.embedding_dim,
                "max_tokens": self.max_tokens, "l2": self.l2}


@tf.keras.utils.register_keras_serializable(package="recommenders")
class ItemEncoder(tf.keras.layers.Layer):
    """Candidate tower: item id + category + brand + price bucket + title text -> embedding.

    Per-item features are tables aligned with the item vocabulary, so the tower can embed
    a raw item id string or an item index (``encode_indices``), e.g. the whole catalog.

    Example:

    >>> from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
    >>> shop = generate_shop(SyntheticShopConfig.small(n_sessions=100, clean=True))
    >>> items = ItemEncoder.from_vocabularies(FeatureVocabularies.build(shop.events, shop.catalog), TowerConfig())
    >>> items(tf.constant([["item_00001", "item_00002"]])).shape
    TensorShape([1, 2, 64])
    >>> items.encode_indices(tf.range(items.num_indices)).shape     # padding, unknown, 300 items
    TensorShape([302, 64])
    """

    def __init__(self, item_ids, item_categories, item_brands, item_prices, item_titles,
                 categories, brands, text_tokens, price_boundaries, config: dict, **kwargs):
        super().__init__(**kwargs)
        self.config = TowerConfig(**config) if isinstance(config, dict) else config
        c = self.config
        self.item_ids = list(item_ids)
        self.item_categories, self.item_brands = list(item_categories), list(item_brands)
        self.item_prices, self.item_titles = list(item_prices), list(item_titles)
        self.categories, self.brands = list(categories), list(brands)
        self.text_tokens, self.price_boundaries = list(text_tokens), list(price_boundaries)

        self.item_lookup = _lookup(self.item_ids)
        self.category_lookup = _lookup(self.categories)
        self.id_embedding = tf.keras.layers.Embedding(
            self.num_indices, c.embedding_dim, embeddings_regularizer=_regularizer(c.l2), name="item_id_embedding"
        )
        brand_lookup = _lookup(self.brands)
        self.category_embedding = tf.keras.layers.Embedding(
            self.category_lookup.vocabulary_size(), c.embedding_dim, name="category_embedding"
        )
        self.brand_embedding = tf.keras.layers.Embedding(brand_lookup.vocabulary_size(), c.feature_dim, name="brand_embedding")
        self.price_embedding = tf.keras.layers.Embedding(len(self.price_boundaries) + 2, c.feature_dim, name="price_embedding")
        self.title_encoder = TextEncoder(self.text_tokens, c.embedding_dim, c.max_title_tokens, c.l2, name="text")
        self.projection = tf.keras.layers.Dense(c.output_dim, kernel_regularizer=_regularizer(c.l2), name="item_projection")
        self.dropout = tf.keras.layers.Dropout(c.dropout)

        # Feature tables indexed by item index: the padding item gets the padding value and
        # the unknown item the OOV bucket of each feature's own lookup (the same layout).
        def table(values, lookup):
            return np.concatenate([[PADDING_INDEX, OOV_INDEX], lookup(tf.constant(values or [""], tf.string)).numpy()[: len(values)]])

        self.category_of = tf.constant(table(self.item_categories, self.category_lookup), tf.int64)
        self.brand_of = tf.constant(table(self.item_brands, brand_lookup), tf.int64)
        prices = np.asarray(self.item_prices, dtype=np.float32)
        price_bucket = np.where(prices >= 0, np.searchsorted(self.price_boundaries, prices, side="right") + 1, 0)
        self.price_bucket_of = tf.constant(np.concatenate([np.zeros(FIRST_ITEM_INDEX, np.int64), price_bucket]), tf.int64)
        titles = self.title_encoder.token_ids(tf.constant(self.item_titles or [""], tf.string)).numpy()[: len(self.item_ids)]
        self.title_ids_of = tf.constant(
            np.concatenate([np.zeros((FIRST_ITEM_INDEX, c.max_title_tokens), np.int64), titles.reshape(-1, c.max_title_tokens)]), tf.int64
        )

    @classmethod
    def from_vocabularies(cls, vocab: FeatureVocabularies, config: TowerConfig, **kwargs) -> ItemEncoder:
        return cls(vocab.item_ids, vocab.item_categories, vocab.item_brands, vocab.item_prices, vocab.item_titles,
                   vocab.categories, vocab.brands, vocab.text_tokens, vocab.price_boundaries,
                   config.tower_fields(), **kwargs)

    @property
    def num_indices(self) -> int:
        """Size of the item index space: padding, unknown, then every vocabulary item."""
        return len(self.item_ids) + FIRST_ITEM_INDEX

    def lookup(self, item_ids):
        return self.item_lookup(item_ids)

    def encode_indices(self, indices, training=None):
        features = [
            self.id_embedding(indices),
            self.category_embedding(tf.gather(self.category_of, indices)),
            self.brand_embedding(tf.gather(self.brand_of, indices)),
            self.price_embedding(tf.gather(self.price_bucket_of, indices)),
            self.title_encoder.embed_ids(tf.gather(self.title_ids_of, indices)),
        ]
        embedding = self.projection(self.dropout(tf.concat(features, -1), training=training))
        if self.config.l2_normalize:
            embedding = tf.math.l2_normalize(embedding, axis=-1)
        return embedding

    def call(self, item_ids, training=None):
        return self.encode_indices(self.lookup(item_ids), training=training)

    def get_config(self):
        return {**super().get_config(), "item_ids": self.item_ids, "item_categories": self.item_categories,
                "item_brands": self.item_brands, "item_prices": self.item_prices, "item_titles": self.item_titles,
                "categories": self.categories, "brands": self.brands, "text_tokens": self.text_tokens,
                "price_boundaries": self.price_boundaries, "config": dataclasses.asdict(self.config)}


@tf.keras.utils.register_keras_serializable(package="recommenders")
class SessionEncoder(tf.keras.layers.Layer):
    """Query tower: an LSTM over the session, then user, context and query text per position.

    Each position ``t`` of the output is the representation used to predict item ``t+1``;
    serving uses the last non-padding position. The LSTM keeps TensorFlow's cuDNN kernel
    eligible on GPUs (tanh/sigmoid activations, no recurrent dropout, right-padded mask).

    Example:

    >>> from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
    >>> from recommenders.features.sequences import sessions_to_arrays
    >>> shop = generate_shop(SyntheticShopConfig.small(n_sessions=100, clean=True))
    >>> vocab = FeatureVocabularies.build(shop.events, shop.catalog)
    >>> item_encoder = ItemEncoder.from_vocabularies(vocab, TowerConfig())
    >>> sessions = SessionEncoder.from_vocabularies(item_encoder, vocab, TowerConfig())
    >>> embeddings, mask = sessions(sessions_to_arrays(shop.events, max_length=20).features())
    >>> embeddings.shape, mask.shape                           # [B, T, output_dim], [B, T]
    (TensorShape([88, 20, 64]), TensorShape([88, 20]))
    """

    def __init__(self, item_encoder: ItemEncoder, users, event_types, time_gap_boundaries, config: dict, **kwargs):
        super().__init__(**kwargs)
        if isinstance(item_encoder, dict):
            item_encoder = tf.keras.layers.deserialize(item_encoder)
        self.item_encoder = item_encoder
        self.config = TowerConfig(**config) if isinstance(config, dict) else config
        c = self.config
        self.users, self.event_types = list(users), list(event_types)
        self.time_gap_boundaries = list(time_gap_boundaries)

        self.event_type_lookup = _lookup(self.event_types)
        self.event_type_embedding = tf.keras.layers.Embedding(self.event_type_lookup.vocabulary_size(), c.feature_dim)
        self.time_gap_buckets = tf.keras.layers.Discretization(bin_boundaries=self.time_gap_boundaries)
        self.time_gap_embedding = tf.keras.layers.Embedding(len(self.time_gap_boundaries) + 2, c.feature_dim)
        self.lstms = [
            tf.keras.layers.LSTM(c.lstm_units, return_sequences=True, kernel_regularizer=_regularizer(c.l2), name=f"lstm_{i}")
            for i in range(c.lstm_layers)
        ]
        self.dropout = tf.keras.layers.Dropout(c.dropout)
        if c.session_attention:
            self.attention = tf.keras.layers.MultiHeadAttention(num_heads=1, key_dim=c.lstm_units, name="session_attention")
        if c.session_item_readout:
            self.readout_query = tf.keras.layers.Dense(c.output_dim, name="readout_query")
            self.readout_key = tf.keras.layers.Dense(c.output_dim, name="readout_key")
            self.readout = tf.keras.layers.Attention(name="session_item_readout")
        if c.use_user:
            self.user_lookup = _lookup(self.users)
            self.user_embedding = tf.keras.layers.Embedding(
                self.user_lookup.vocabulary_size(), c.embedding_dim, embeddings_regularizer=_regularizer(c.l2)
            )
        if c.use_context:
            self.hour_embedding = tf.keras.layers.Embedding(24, c.feature_dim)
            self.weekday_embedding = tf.keras.layers.Embedding(7, c.feature_dim)
        self.projection = tf.keras.layers.Dense(c.output_dim, kernel_regularizer=_regularizer(c.l2), name="session_projection")

    @classmethod
    def from_vocabularies(cls, item_encoder: ItemEncoder, vocab: FeatureVocabularies, config: TowerConfig, **kwargs):
        return cls(item_encoder, vocab.users, vocab.event_types, vocab.time_gap_boundaries, config.tower_fields(), **kwargs)

    def call(self, features, training=None):
        """Returns ``(embeddings [B, T, output_dim], mask [B, T])`` for every session position."""
        embeddings, mask, _, _ = self.encode(features, training=training)
        return embeddings, mask

    def encode(self, features, training=None, item_embeddings: bool = False):
        """``(embeddings [B, T, output_dim], mask [B, T], items [B, T], seen [B, T, output_dim] or None)``.

        ``items`` are the session's item indices and ``seen`` their item-tower embeddings,
        computed once and shared by the readout and the caller (the repeat head): given
        when ``item_embeddings`` or the readout needs them.
        """
        c = self.config
        items = self.item_encoder.lookup(features[contract.SESSION_ITEM_IDS])
        mask = tf.not_equal(items, PADDING_INDEX)
        timestamps = features[contract.SESSION_TIMESTAMPS]
        gaps = tf.cast(timestamps - tf.concat([timestamps[:, :1], timestamps[:, :-1]], axis=1), tf.float32)
        steps = tf.concat(
            [
                self.item_encoder.id_embedding(items),
                self.item_encoder.category_embedding(tf.gather(self.item_encoder.category_of, items)),
                self.event_type_embedding(self.event_type_lookup(features[contract.SESSION_EVENT_TYPES])),
                self.time_gap_embedding(self.time_gap_buckets(gaps)),
            ],
            axis=-1,
        )
        hidden = self.dropout(steps, training=training)
        for lstm in self.lstms:
            hidden = lstm(hidden, mask=mask, training=training)
        # The current item's own embedding, skipping the LSTM: a direct bilinear path for
        # item-to-item transitions, which the recurrent state blurs.
        parts = [self.dropout(hidden, training=training), self.dropout(steps, training=training)]
        length = tf.shape(items)[1]
        if c.session_attention:
            # Position t attends to positions <= t that hold items: causal and padding-aware.
            causal = tf.linalg.band_part(tf.ones([length, length], tf.bool), -1, 0)
            allowed = causal[tf.newaxis] & mask[:, tf.newaxis, :]
            parts.append(self.attention(hidden, steps, key=hidden, attention_mask=allowed, training=training))
        if c.use_user:
            user = self.user_embedding(self.user_lookup(features[contract.USER_ID]))
            parts.append(tf.tile(user[:, tf.newaxis, :], [1, length, 1]))
        if c.use_context:
            hours = (timestamps // 3600) % 24
            weekdays = (timestamps // 86400 + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
            parts += [self.hour_embedding(hours), self.weekday_embedding(weekdays)]
        if c.use_query:
            parts.append(self.item_encoder.title_encoder(_position_queries(features, mask)))
        embeddings = self.projection(tf.concat(parts, axis=-1))
        seen = None
        if c.session_item_readout or item_embeddings:
            seen = tf.cast(self.item_encoder.encode_indices(items, training=training), embeddings.dtype)
        if c.session_item_readout:
            embeddings += self.readout(
                [self.readout_query(hidden), seen, self.readout_key(hidden)],
                mask=[mask, mask], use_causal_mask=True, training=training)
        if c.l2_normalize:
            embeddings = tf.math.l2_normalize(embeddings, axis=-1)
        return embeddings, mask, items, seen

    def get_config(self):
        return {**super().get_config(), "item_encoder": tf.keras.layers.serialize(self.item_encoder),
                "users": self.users, "event_types": self.event_types,
                "time_gap_boundaries": self.time_gap_boundaries, "config": dataclasses.asdict(self.config)}


def _position_queries(features, mask):
    """Per-position query text: given when training, built from the request's ``query`` when serving."""
    if SESSION_QUERIES in features:
        return features[SESSION_QUERIES]
    # A request's query is what the shopper asked for after the last item: its last position.
    at_last = tf.cast(tf.one_hot(last_index(mask), tf.shape(mask)[1]), tf.bool)
    query = tf.broadcast_to(features[contract.QUERY][:, tf.newaxis], tf.shape(mask))
    return tf.where(at_last, query, tf.zeros_like(query))


def last_index(mask):
    """Each session's last non-padding position: [B, T] -> [B] (0 for an empty session)."""
    return tf.maximum(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1) - 1, 0)


def last_position(values, mask):
    """``values`` at each session's last non-padding position: [B, T, ...] -> [B, ...]."""
    return tf.gather(values, last_index(mask), axis=1, batch_dims=1)


def build_towers(vocab: FeatureVocabularies, config: TowerConfig) -> tuple[ItemEncoder, SessionEncoder]:
    """A new item tower and the session tower reading items through it."""
    item_encoder = ItemEncoder.from_vocabularies(vocab, config, name="item_tower")
    return item_encoder, SessionEncoder.from_vocabularies(item_encoder, vocab, config, name="session_tower")


class SessionTowersModel(tfrs.Model):
    """Base of the retrieval and ranking models: vocabularies, a config (validated by the caller), both towers.

    The session tower reads item ids through the item tower's lookup and id embedding,
    so the two share one item table.

    Its train and test steps log what each step computes, as epoch means. The tasks'
    metrics (top-K hit rates, AUCs) are computed at validation only, and tfrs's own train
    step would log them for training anyway, as lines at 0; its loss is the last batch's,
    not the epoch's. ``regularization_loss`` and ``total_loss`` appear only when there is
    a regularizer (``l2`` > 0).
    """

    LOSS_NAMES = ("loss", "regularization_loss", "total_loss")

    def __init__(self, vocab: FeatureVocabularies, config: TowerConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.vocab = vocab
        self.item_encoder, self.session_encoder = build_towers(vocab, config)
        # Model metrics, so Keras resets them every epoch and before every validation.
        self.loss_means = {name: tf.keras.metrics.Mean(name=name) for name in self.LOSS_NAMES}

    @property
    def members(self) -> tuple:
        """The sets of towers this model trains (each with ``item_encoder`` and ``session_encoder``):
        its own; a retrieval ensemble adds more."""
        return (self,)

    def _step_losses(self, inputs, training: bool) -> dict:
        losses = {"loss": self.compute_loss(inputs, training=training)}
        if self.losses:
            # Every replica holds the whole regularization loss; gradients are summed over replicas.
            losses["regularization_loss"] = replica_share(tf.add_n([tf.reduce_sum(loss) for loss in self.losses]))
            losses["total_loss"] = losses["loss"] + losses["regularization_loss"]
        return losses

    def _loss_logs(self, losses: dict) -> dict:
        for name, value in losses.items():
            # A replica's loss is its share of the global batch's, and Keras averages replicas.
            self.loss_means[name].update_state(value * replicas())
        return {name: self.loss_means[name].result() for name in losses}

    def train_step(self, inputs):
        scaling = isinstance(self.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            losses = self._step_losses(inputs, training=True)
            objective = losses.get("total_loss", losses["loss"])
            if scaling:  # mixed precision: keeps small float16 gradients from flushing to zero
                objective = self.optimizer.get_scaled_loss(objective)
        gradients = tape.gradient(objective, self.trainable_variables)
        if scaling:
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return self._loss_logs(losses)

    def test_step(self, inputs):
        logs = self._loss_logs(self._step_losses(inputs, training=False))
        return {**{metric.name: metric.result() for metric in self.metrics if metric.name not in self.LOSS_NAMES}, **logs}
