"""Vocabularies: popularity order, aligned item features, JSON round trip, tokenization."""

import pandas as pd

import recsys_base  # noqa: F401
from recommenders.features.vocabulary import FeatureVocabularies, tokenize
from recsys_base.tf_compat import tensorflow


def _events():
    return pd.DataFrame({
        "session_id": ["s1", "s1", "s2", "s2", "s2"],
        "user_id": ["u1", "u1", None, None, None],
        "item_id": ["b", "a", "b", None, "c"],
        "event_type": ["view", "view", "view", "search", "cart"],
        "timestamp": pd.to_datetime([0, 1, 2, 3, 4], unit="s"),
        "query": [None, None, None, "Blue Hat!", None],
    })


def _catalog():
    return pd.DataFrame({"item_id": ["a", "b", "c", "d"], "title": ["Red shoe", "Blue hat", "Green scarf", "Old coat"],
                         "category": ["shoes", "hats", "scarves", "coats"], "brand": ["x", "y", "", "x"],
                         "price": [10.0, 20.0, None, 40.0]})


def test_items_are_ordered_by_popularity_with_unseen_catalog_items_last():
    vocab = FeatureVocabularies.build(_events(), _catalog())
    assert vocab.item_ids == ["b", "a", "c", "d"]
    assert vocab.item_counts == [2, 1, 1, 0]
    assert vocab.item_categories == ["hats", "shoes", "scarves", "coats"]
    assert vocab.item_prices[2] == -1.0  # unknown price
    assert vocab.users == ["u1"]
    assert vocab.brands == ["x", "y"]
    assert set(tokenize("Blue Hat!")) <= set(vocab.text_tokens)


def test_json_round_trip_is_exact(tmp_path):
    vocab = FeatureVocabularies.build(_events(), _catalog())
    vocab.save(tmp_path / "vocab.json")
    assert FeatureVocabularies.load(tmp_path / "vocab.json") == vocab


def test_tokenize_matches_keras_text_vectorization():
    tf = tensorflow()
    texts = ["Red T-shirt, size: XL! (men's)", "  ÜBER cool\tshoes ", "a.b/c"]
    layer = tf.keras.layers.TextVectorization(standardize="lower_and_strip_punctuation", split="whitespace")
    layer.adapt(texts)
    vocabulary = layer.get_vocabulary()
    for text in texts:
        ids = layer(tf.constant([text])).numpy()[0]
        assert [vocabulary[i] for i in ids if i] == tokenize(text)
