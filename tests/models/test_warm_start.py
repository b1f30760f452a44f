"""Warm start over grown vocabularies: old items score exactly as before, new items start from content."""

from __future__ import annotations

import numpy as np
import pytest

import recsys_base  # noqa: F401
from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
from recommenders.features.sequences import sessions_to_arrays
from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.config import RankingConfig, RetrievalConfig
from recommenders.models.ranking import MultiTaskRanker
from recommenders.models.retrieval import SessionRetrievalModel
from recommenders.models.towers import FIRST_ITEM_INDEX
from recommenders.models.warm_start import copy_weights
from recsys_base.errors import DataError, ModelError
from recsys_base.tf_compat import tensorflow

tf = tensorflow()
TINY = {"embedding_dim": 8, "feature_dim": 4, "lstm_units": 8, "output_dim": 8}


@pytest.fixture(scope="module")
def shop():
    """A shop whose catalog gains the items no session touched: those are the new items."""
    shop = generate_shop(SyntheticShopConfig.small(n_sessions=100, clean=True))
    seen = set(shop.events["item_id"].dropna())
    new_items = [item for item in shop.catalog["item_id"] if item not in seen][:6]
    old_catalog = shop.catalog[~shop.catalog["item_id"].isin(new_items)]
    old_vocab = FeatureVocabularies.build(shop.events, old_catalog)
    return shop, old_vocab, old_vocab.grown(shop.events, shop.catalog), new_items


def test_grown_vocabularies_keep_old_indices_and_append_new_items(shop):
    _, old, new, new_items = shop
    assert new.item_ids[: old.num_items] == old.item_ids
    assert sorted(new.item_ids[old.num_items:]) == sorted(new_items)
    assert new.categories[: len(old.categories)] == old.categories
    assert new.text_tokens[: len(old.text_tokens)] == old.text_tokens
    assert new.price_boundaries == old.price_boundaries


def test_a_catalog_that_drops_a_served_item_is_refused(shop):
    data, old = shop[0], shop[1]
    kept = data.catalog[data.catalog["item_id"] != old.item_ids[0]]
    with pytest.raises(DataError, match=f"drops 1 item.*{old.item_ids[0]}"):
        old.grown(data.events, kept)


@pytest.mark.parametrize("model_class, config", [(SessionRetrievalModel, RetrievalConfig(**TINY)),
                                                 (SessionRetrievalModel, RetrievalConfig(**TINY, ensemble_size=2)),
                                                 (MultiTaskRanker, RankingConfig(**TINY, deep_units=(8,)))])
def test_old_items_score_exactly_as_before_right_after_growing(shop, model_class, config):
    data, old_vocab, new_vocab, _ = shop
    events = data.events
    features = sessions_to_arrays(events, max_length=10).features()
    tf.keras.utils.set_random_seed(1)
    old = model_class(old_vocab, config)
    new = model_class(new_vocab, config)
    copy_weights(old, new, features)
    old_indices = tf.range(old.item_encoder.num_indices, dtype=tf.int64)
    for old_member, new_member in zip(old.members, new.members, strict=True):  # every member of an ensemble
        np.testing.assert_array_equal(old_member.item_encoder.encode_indices(old_indices),
                                      new_member.item_encoder.encode_indices(old_indices))
    if model_class is SessionRetrievalModel:
        np.testing.assert_array_equal(old(features), new(features))
    else:
        candidates = tf.constant([old_vocab.item_ids[:5]] * len(features["session_item_ids"]))
        np.testing.assert_array_equal(old.rank(features, candidates)[1], new.rank(features, candidates)[1])


@pytest.mark.parametrize("new_item_init", ["category_mean", "zeros", "random"])
def test_new_item_rows_start_from_their_category_or_as_asked(shop, new_item_init):
    data, old_vocab, new_vocab, _ = shop
    events = data.events
    features = sessions_to_arrays(events, max_length=10).features()
    old = SessionRetrievalModel(old_vocab, RetrievalConfig(**TINY))
    new = SessionRetrievalModel(new_vocab, RetrievalConfig(**TINY))
    copy_weights(old, new, features, new_item_init)
    old_rows = old.item_encoder.id_embedding.embeddings.numpy()[FIRST_ITEM_INDEX:]
    new_rows = new.item_encoder.id_embedding.embeddings.numpy()[FIRST_ITEM_INDEX + old_vocab.num_items:]
    categories = np.array(new_vocab.item_categories)
    for row, category in zip(new_rows, categories[old_vocab.num_items:]):
        peers = old_rows[categories[: old_vocab.num_items] == category]
        if new_item_init == "category_mean":
            expected = peers.mean(axis=0) if len(peers) else np.zeros(8)
            np.testing.assert_allclose(row, expected, rtol=1e-6)
        elif new_item_init == "zeros":
            assert not row.any()
        else:  # the initializer's own small random values
            assert row.any() and np.abs(row).max() <= 0.05


def test_warm_start_refuses_a_model_of_another_config(shop):
    data, old_vocab, new_vocab, _ = shop
    events = data.events
    features = sessions_to_arrays(events, max_length=10).features()
    old = SessionRetrievalModel(old_vocab, RetrievalConfig(**TINY))
    new = SessionRetrievalModel(new_vocab, RetrievalConfig(**{**TINY, "lstm_units": 16}))
    with pytest.raises(ModelError, match="another config"):
        copy_weights(old, new, features)
