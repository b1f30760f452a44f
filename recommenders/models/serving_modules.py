"""The exported computations: ``tf.Module``s whose signatures follow ``serving.contract``.

The same ``tf.function``s serve three callers: in-process recommendation (evaluation, the
demo), ``tf.saved_model.save`` for TensorFlow Serving, and tests comparing the two. Only
stock TensorFlow ops are used (lookups, matmul, top_k, LSTM kernels), so a stock
``tensorflow_model_server`` loads the result.
"""

from __future__ import annotations

from recommenders.models.config import RANKING_TASK_OUTPUTS, RecommendConfig, TrainConfig
from recommenders.models.ranking import MultiTaskRanker
from recommenders.models.retrieval import SessionRetrievalModel, catalog_log_probabilities
from recommenders.models.towers import FIRST_ITEM_INDEX
from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.contract.specs import input_signature

tf = tensorflow()


def _rows_within(values, lengths, name: str, length_name: str, padding):
    """``values`` [B, W] with entries past each row's ``lengths`` [B] replaced by ``padding``.

    Checks ``W >= 1`` and ``0 <= lengths <= W``, naming the inputs that break it.
    """
    width = tf.shape(values)[1]
    checks = [
        tf.debugging.assert_equal(tf.shape(lengths)[0], tf.shape(values)[0], message=f"{length_name} needs one entry per row of {name}"),
        tf.debugging.assert_greater_equal(width, 1, message=f"{name} must be at least one column wide (pad with \"\" and set {length_name})"),
        tf.debugging.assert_greater_equal(lengths, 0, message=f"{length_name} must be >= 0"),
        tf.debugging.assert_less_equal(lengths, width, message=f"{length_name} must be at most the width of {name}"),
    ]
    with tf.control_dependencies(checks):
        return tf.where(tf.sequence_mask(lengths, width), values, tf.constant(padding, values.dtype))


def _last_events(values, lengths, max_events: int, padding):
    """Each row's last ``min(length, max_events)`` entries of right-padded ``values`` [B, W], as [B, min(W, max_events)].

    >>> _last_events(tf.constant([["a", "b", "c", ""], ["d", "", "", ""]]), tf.constant([3, 1]), 2, "").numpy().tolist()
    [[b'b', b'c'], [b'd', b'']]
    """
    width = tf.shape(values)[1]
    kept_width = tf.minimum(width, max_events)
    first = tf.maximum(lengths - max_events, 0)
    positions = tf.minimum(first[:, tf.newaxis] + tf.range(kept_width)[tf.newaxis, :], width - 1)
    kept = tf.gather(values, positions, batch_dims=1)
    return tf.where(tf.sequence_mask(tf.minimum(lengths, max_events), kept_width), kept, tf.constant(padding, values.dtype))


def _features(max_events: int, session_item_ids, session_event_types, session_timestamps, session_length, user_id, query):
    """The session inputs checked, cut to each row's ``session_length`` and to its last ``max_events`` events.

    What lies past a row's length is whatever TF Serving's batching padded with (copies
    of the request's first element, see serving/contract), so the model must not read it.
    Keeping the last ``max_events`` events (what the model was trained and evaluated on)
    bounds the work of a long session inside the graph, on any server. Returns the
    features (session inputs [B, min(T, max_events)], ``""`` / 0 past each row's events)
    and the kept events per row [B].
    """
    rows = tf.shape(session_item_ids)[0]
    checks = [
        tf.debugging.assert_equal(tf.shape(session_event_types), tf.shape(session_item_ids),
                                  message=f"{contract.SESSION_EVENT_TYPES} must have the shape of {contract.SESSION_ITEM_IDS}"),
        tf.debugging.assert_equal(tf.shape(session_timestamps), tf.shape(session_item_ids),
                                  message=f"{contract.SESSION_TIMESTAMPS} must have the shape of {contract.SESSION_ITEM_IDS}"),
        tf.debugging.assert_equal(tf.shape(user_id)[0], rows, message=f"{contract.USER_ID} needs one entry per session"),
        tf.debugging.assert_equal(tf.shape(query)[0], rows, message=f"{contract.QUERY} needs one entry per session"),
    ]
    with tf.control_dependencies(checks):
        sessions = {
            contract.SESSION_ITEM_IDS: (session_item_ids, ""),
            contract.SESSION_EVENT_TYPES: (session_event_types, ""),
            contract.SESSION_TIMESTAMPS: (session_timestamps, 0),
        }
        features = {
            name: _last_events(_rows_within(values, session_length, name, contract.SESSION_LENGTH, padding), session_length,
                               max_events, padding)
            for name, (values, padding) in sessions.items()
        }
    return {**features, contract.USER_ID: user_id, contract.QUERY: query}, tf.minimum(session_length, max_events)


def _checked_max_k(k, rows, num_items: int):
    checks = [
        tf.debugging.assert_equal(tf.shape(k)[0], rows, message=f"{contract.K} needs one entry per session"),
        tf.debugging.assert_greater_equal(k, 1, message=f"{contract.K} must be at least 1"),
        tf.debugging.assert_less_equal(k, num_items, message=f"{contract.K} must be at most {num_items} (the catalog size)"),
    ]
    with tf.control_dependencies(checks):
        return tf.maximum(tf.reduce_max(k), 1)


def _blank_past_k(values, ids, k, max_k):
    """Blanks (``""``, ``-inf``) each row's entries past its own ``k``."""
    keep = tf.sequence_mask(k, max_k)
    return {
        contract.ITEM_IDS: tf.where(keep, ids, tf.constant("")),
        contract.SCORES: tf.where(keep, values, tf.constant(float("-inf"))),
    }


def _top_k_per_row(scores, item_ids, k, max_k):
    """Top ``max_k`` of each row of ``scores`` (ids ``item_ids``, one row each), blanked past ``k``."""
    values, positions = tf.math.top_k(scores, k=max_k)
    return _blank_past_k(values, tf.gather(item_ids, positions, batch_dims=1), k, max_k)


class RetrievalModule(tf.Module):
    """``retrieve``: session -> top-``k`` catalog items by retrieval log-probability.

    A score is the log-probability of the item being next: the two-tower softmax over the
    catalog, mixed with the repeat head's pointer over the session's own items when the
    model has one (``recommenders/models/repeat.py``).

    Example:

    >>> from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
    >>> from recommenders.features.vocabulary import FeatureVocabularies
    >>> from recommenders.models.config import RetrievalConfig
    >>> shop = generate_shop(SyntheticShopConfig.small(n_sessions=100, clean=True))
    >>> retrieval_model = SessionRetrievalModel(FeatureVocabularies.build(shop.events, shop.catalog), RetrievalConfig())
    >>> module = RetrievalModule(retrieval_model)
    >>> outputs = module.retrieve(
    ...     session_item_ids=tf.constant([["item_00001", "item_00002"]]),
    ...     session_event_types=tf.constant([["view", "cart"]]),
    ...     session_timestamps=tf.constant([[1_700_000_000, 1_700_000_030]], tf.int64), session_length=tf.constant([2]),
    ...     user_id=tf.constant([""]), query=tf.constant(["red shoes"]), k=tf.constant([10]))
    >>> {name: (tensor.shape, tensor.dtype) for name, tensor in outputs.items()}
    {'item_ids': (TensorShape([1, 10]), tf.string), 'scores': (TensorShape([1, 10]), tf.float32)}
    """

    def __init__(self, model: SessionRetrievalModel, max_session_events: int = TrainConfig.max_length):
        super().__init__(name="retrieval")
        self.max_session_events = max_session_events  # TrainConfig.max_length of the run: what the model saw
        # Per ensemble member (models/retrieval.py): its session tower, repeat head and catalog.
        self.session_encoders = [member.session_encoder for member in model.members]
        self.repeat_heads = [member.repeat_head for member in model.members]
        self.catalogs = [tf.Variable(model.catalog_embeddings(member), trainable=False, name="catalog_embeddings")
                         for member in model.members]
        self.item_encoder = model.item_encoder  # its lookup: every member shares the vocabularies
        self.fusion = model.fusion
        self.num_items = model.vocab.num_items
        self.temperature = model.config.temperature
        self.item_ids = tf.constant(model.vocab.item_ids)

    def snapshot_catalogs(self, model: SessionRetrievalModel) -> None:
        """Takes the catalog embeddings again from the weights of ``model`` (the one this module
        was built from) as they are now: what a new module would hold, without tracing ``retrieve`` again."""
        for catalog, member in zip(self.catalogs, model.members, strict=True):
            catalog.assign(model.catalog_embeddings(member))

    def members(self) -> list:
        """``(session_encoder, repeat_head, catalog)`` of every ensemble member."""
        return list(zip(self.session_encoders, self.repeat_heads, self.catalogs, strict=True))

    def catalog_scores(self, features, fused: bool = True):
        """Log-probability of every catalog item being the session's next: [B, num_items].

        ``fused=False`` leaves the neighbour fusion out (what the gate is fitted against).
        """
        log_p, _, _ = catalog_log_probabilities(self.members(), self.fusion, self.temperature, features, fused)
        return log_p

    def candidates(self, scores, n):
        """The ``n`` best catalog items per row of ``catalog_scores``: ``(scores [B, n], item ids [B, n])``."""
        values, positions = tf.math.top_k(scores, k=n)
        return values, tf.gather(self.item_ids, positions)

    def item_scores(self, scores, item_ids):
        """The ``catalog_scores`` of given item ids [B, N]; ``-inf`` for ids outside the catalog."""
        indices = self.item_encoder.lookup(item_ids)
        known = indices >= FIRST_ITEM_INDEX
        values = tf.gather(scores, tf.where(known, indices - FIRST_ITEM_INDEX, 0), batch_dims=1)
        return tf.where(known, values, tf.constant(float("-inf")))

    @tf.function(input_signature=input_signature(contract.RETRIEVAL_MODEL))
    def retrieve(self, session_item_ids, session_event_types, session_timestamps, session_length, user_id, query, k):
        features, _ = _features(self.max_session_events, session_item_ids, session_event_types, session_timestamps,
                                session_length, user_id, query)
        max_k = _checked_max_k(k, tf.shape(session_item_ids)[0], self.num_items)
        scores, ids = self.candidates(self.catalog_scores(features), max_k)
        return _blank_past_k(scores, ids, k, max_k)


class RankingModule(tf.Module):
    """``rank``: session + candidate items -> click/cart/purchase probabilities and a score."""

    def __init__(self, model: MultiTaskRanker, max_session_events: int = TrainConfig.max_length):
        super().__init__(name="ranking")
        self.ranker = model
        self.max_session_events = max_session_events

    def rank_features(self, features, candidate_item_ids):
        probabilities, score = self.ranker.rank(features, candidate_item_ids, training=False)
        return {**{output: probabilities[task] for task, output in RANKING_TASK_OUTPUTS.items()}, contract.SCORES: score}

    @tf.function(input_signature=input_signature(contract.RANKING_MODEL))
    def rank(self, session_item_ids, session_event_types, session_timestamps, session_length, user_id, query, candidate_item_ids):
        features, _ = _features(self.max_session_events, session_item_ids, session_event_types, session_timestamps,
                                session_length, user_id, query)
        tf.debugging.assert_equal(tf.shape(candidate_item_ids)[0], tf.shape(session_item_ids)[0],
                                  message=f"{contract.CANDIDATE_ITEM_IDS} needs one row per session")
        return self.rank_features(features, candidate_item_ids)


def blend(retrieval_scores, ranking_scores, ranking_weight: float):
    """The recommend score: retrieval log-probability + ``ranking_weight`` * log(ranking score).

    ``ranking_weight`` 0 returns the retrieval log-probabilities as they are, and the graph
    then never runs the ranker (nothing fetched depends on it).

    >>> blend(tf.constant([-1.0, -2.0]), tf.constant([0.5, 1.0]), 0.0).numpy().tolist()
    [-1.0, -2.0]
    """
    if ranking_weight == 0:
        return retrieval_scores
    return retrieval_scores + ranking_weight * tf.math.log(ranking_scores + 1e-7)


class RecommendModule(tf.Module):
    """``recommend``: retrieve a candidate pool -> rank it -> drop excluded and purchased -> top-``k``.

    With a ``query`` the same path is personalized search: the query text shapes both the
    retrieval and the ranking session representation. The pool size and the blend come
    from ``config`` (fields left unset take :attr:`RecommendConfig.UNFITTED`).
    """

    def __init__(self, retrieval: RetrievalModule, ranking: RankingModule, config: RecommendConfig | None = None):
        super().__init__(name="recommend")
        self.config = (config or RecommendConfig()).resolved()
        self.retrieval, self.ranking = retrieval, ranking

    def pool(self, features, session_length, k, exclude_item_ids, exclude_length, candidate_pool: int):
        """Each row's candidates and what the blend needs, before blending.

        Returns ``candidates`` [B, C] (retrieved pool, best first, then the session's own
        items), their ``retrieval`` log-probabilities (``-inf`` for padding and items
        already in the pool), ``ranking`` scores, ``blocked`` (excluded or purchased in the
        session), ``in_session`` (the session holds the item) and each row's ``pool_floor``
        [B] (the pool is never smaller: room for what filters may remove).
        """
        session_item_ids = features[contract.SESSION_ITEM_IDS]
        # Each row's pool has room for everything that may be filtered out, so k items
        # remain whenever the catalog allows. It is sized from the row's own k and lengths,
        # never from the batch's widths, so batching with other requests cannot change it.
        pool_floor = k + exclude_length + session_length
        row_pool = tf.minimum(self.retrieval.num_items, tf.maximum(candidate_pool, pool_floor))
        catalog_scores = self.retrieval.catalog_scores(features)
        retrieved_scores, retrieved = self.retrieval.candidates(catalog_scores, tf.reduce_max(row_pool))
        in_row_pool = tf.sequence_mask(row_pool, tf.shape(retrieved)[1])
        retrieved_scores = tf.where(in_row_pool, retrieved_scores, tf.constant(float("-inf")))
        retrieved = tf.where(in_row_pool, retrieved, tf.constant(""))
        # Shoppers return to what they viewed or carted: the session's own items join the
        # pool (once each), scored by the retrieval model like every other candidate.
        own_scores = self.retrieval.item_scores(catalog_scores, session_item_ids)
        positions = tf.range(tf.shape(session_item_ids)[1])
        earlier = positions[tf.newaxis, :] < positions[:, tf.newaxis]  # [i, j]: j comes before i
        repeated = tf.reduce_any(
            tf.equal(session_item_ids[:, :, tf.newaxis], session_item_ids[:, tf.newaxis, :]) & earlier[tf.newaxis], axis=-1)
        in_pool = tf.reduce_any(tf.equal(session_item_ids[:, :, tf.newaxis], retrieved[:, tf.newaxis, :]), axis=-1)
        own_scores = tf.where(repeated | in_pool | tf.equal(session_item_ids, ""), tf.constant(float("-inf")), own_scores)
        candidates = tf.concat([retrieved, session_item_ids], axis=1)

        purchased = tf.where(tf.equal(features[contract.SESSION_EVENT_TYPES], contract.PURCHASE), session_item_ids, tf.constant(""))
        blocked = tf.concat([exclude_item_ids, purchased], axis=1)
        session_items = tf.not_equal(session_item_ids, "")
        return {
            "candidates": candidates,
            "in_session": tf.reduce_any(
                tf.equal(candidates[:, :, tf.newaxis], session_item_ids[:, tf.newaxis, :]) & session_items[:, tf.newaxis, :],
                axis=-1),
            "pool_floor": pool_floor,
            "retrieval": tf.concat([retrieved_scores, own_scores], axis=1),
            "ranking": self.ranking.rank_features(features, candidates)[contract.SCORES],
            "blocked": tf.reduce_any(
                tf.equal(candidates[:, :, tf.newaxis], blocked[:, tf.newaxis, :]) & tf.not_equal(blocked, "")[:, tf.newaxis, :],
                axis=-1),
        }

    def checked_pool(self, candidate_pool: int, session_item_ids, session_event_types, session_timestamps,
                     session_length, user_id, query, k, exclude_item_ids, exclude_length):
        """:meth:`pool` for ``recommend``'s inputs, checked and cut as ``recommend`` does; also its largest k."""
        features, session_length = _features(self.retrieval.max_session_events, session_item_ids, session_event_types,
                                             session_timestamps, session_length, user_id, query)
        rows = tf.shape(features[contract.SESSION_ITEM_IDS])[0]
        max_k = _checked_max_k(k, rows, self.retrieval.num_items)
        tf.debugging.assert_equal(tf.shape(exclude_item_ids)[0], rows,
                                  message=f"{contract.EXCLUDE_ITEM_IDS} needs one row per session")
        exclude_item_ids = _rows_within(exclude_item_ids, exclude_length, contract.EXCLUDE_ITEM_IDS, contract.EXCLUDE_LENGTH, "")
        return self.pool(features, session_length, k, exclude_item_ids, exclude_length, candidate_pool), max_k

    @tf.function(input_signature=input_signature(contract.RECOMMEND_MODEL))
    def recommend(self, session_item_ids, session_event_types, session_timestamps, session_length, user_id, query, k,
                  exclude_item_ids, exclude_length):
        pool, max_k = self.checked_pool(self.config.candidate_pool, session_item_ids, session_event_types,
                                        session_timestamps, session_length, user_id, query, k, exclude_item_ids,
                                        exclude_length)
        score = blend(pool["retrieval"], pool["ranking"], self.config.ranking_weight)
        score = tf.where(pool["blocked"] | tf.math.is_inf(pool["retrieval"]), tf.constant(float("-inf")), score)
        top = _top_k_per_row(score, pool["candidates"], k, max_k)
        # A row whose pool was exhausted by exclusions must not return blocked items.
        exhausted = tf.math.is_inf(top[contract.SCORES])
        return {
            contract.ITEM_IDS: tf.where(exhausted, tf.constant(""), top[contract.ITEM_IDS]),
            contract.SCORES: top[contract.SCORES],
        }
