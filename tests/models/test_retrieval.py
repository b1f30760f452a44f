"""Retrieval losses on a tiny shop: the catalog softmax is the exact cross-entropy over every item."""

import numpy as np
import pandas as pd
import pytest

from recommenders.features.sequences import sessions_to_arrays
from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.config import RetrievalConfig
from recommenders.models.retrieval import SessionRetrievalModel, next_item_positions
from recsys_base.errors import ConfigError
from recsys_base.tf_compat import tensorflow

tf = tensorflow()


def _shop():
    sessions = [["a", "b", "c"], ["b", "c", "d", "b"], ["e", "a"]]
    events = pd.DataFrame([
        {"session_id": f"s{n}", "user_id": None, "item_id": item, "event_type": "view",
         "timestamp": pd.Timestamp(60 * (10 * n + i), unit="s"), "query": None}
        for n, items in enumerate(sessions) for i, item in enumerate(items)
    ])
    catalog = pd.DataFrame({"item_id": list("abcdef"), "title": ["red shoe", "blue hat", "green scarf", "old coat",
                                                                 "new boot", "odd sock"],
                            "category": ["x", "y", "x", "y", "x", "y"], "brand": "", "price": 10.0})
    return events, catalog


def _features(events):
    arrays = sessions_to_arrays(events, max_length=8)
    return {name: tf.constant(values) for name, values in arrays.features().items()}


def test_catalog_softmax_is_the_exact_cross_entropy_over_every_catalog_item():
    events, catalog = _shop()
    config = RetrievalConfig(embedding_dim=8, feature_dim=4, lstm_units=8, output_dim=8, dropout=0.0,
                             negatives="catalog", temperature=0.5, repeat_head=False)
    model = SessionRetrievalModel(FeatureVocabularies.build(events, catalog), config)
    features = _features(events)

    loss = float(model.compute_loss(features, training=True))

    embeddings, _, items, valid, _ = next_item_positions(model.session_encoder, features, training=True)
    queries, targets = tf.boolean_mask(embeddings[:, :-1], valid), tf.boolean_mask(items[:, 1:], valid)
    logits = queries.numpy() @ model.catalog_embeddings().numpy().T / config.temperature
    assert logits.shape == (6, 6), "every next item, scored against all six catalog items (f never clicked)"
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -log_softmax[np.arange(len(targets)), targets.numpy() - 2].sum()
    assert loss == pytest.approx(expected, rel=1e-5)


def test_unknown_negatives_mode_is_named():
    with pytest.raises(ConfigError, match="negatives must be one of sampled, catalog, got 'full'"):
        RetrievalConfig(negatives="full").validate()
