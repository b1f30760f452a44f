"""Every layer that claims ``get_config`` round-trips through ``from_config``.

Keras records these configs in the exported SavedModels' layer metadata, so a config that
no longer rebuilds its layer would go unnoticed until someone reloads one: rebuild each
layer from its config, check the config comes back identical, and check the rebuilt layer
computes the same outputs once it holds the original's weights.
"""

import numpy as np
import pytest

from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
from recommenders.features.neighbours import ItemNeighbours, NeighbourTable
from recommenders.features.sequences import sessions_to_arrays
from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.config import TowerConfig
from recommenders.models.fusion import NeighbourFusion
from recommenders.models.neighbour_features import NeighbourScores
from recommenders.models.repeat import RepeatHead
from recommenders.models.retrieval import CatalogTopK
from recommenders.models.towers import ItemEncoder, SessionEncoder, TextEncoder
from recsys_base.tf_compat import tensorflow

tf = tensorflow()


@pytest.fixture(scope="module")
def shop():
    shop = generate_shop(SyntheticShopConfig.small(n_sessions=100, clean=True))
    vocab = FeatureVocabularies.build(shop.events, shop.catalog)
    return vocab, sessions_to_arrays(shop.events, max_length=20).features()


def _layers_and_inputs(vocab, features):
    config = TowerConfig(embedding_dim=8, feature_dim=4, lstm_units=8, output_dim=8)
    items = ItemEncoder.from_vocabularies(vocab, config)
    top_k = CatalogTopK(num_candidates=6, dim=4, first_index=2, k=3)
    top_k.index(tf.random.stateless_normal([6, 4], seed=(1, 2)))
    fusion = NeighbourFusion(["next"], num_indices=5, max_neighbours=2, state_dim=4, units=3)
    fusion.set_tables([np.array([[1, -1], [2, 0], [-1, -1]])], [np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]])])
    fusion.gate.kernel.assign(tf.random.stateless_normal([3, 2], seed=(11, 12)))
    scores = NeighbourScores(["next"], num_indices=5, max_neighbours=2)
    scores.set_neighbours(ItemNeighbours({"next": NeighbourTable(np.array([[1, -1], [2, 0], [-1, -1]]),
                                                                 np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]]))}))
    return {
        "TextEncoder": (TextEncoder(tokens=["red", "shoes"], embedding_dim=4, max_tokens=3),
                        (tf.constant(["Red shoes!", ""]),)),
        "ItemEncoder": (items, (tf.constant([vocab.item_ids[:3]]),)),
        "SessionEncoder": (SessionEncoder.from_vocabularies(items, vocab, config), (features,)),
        "RepeatHead": (RepeatHead(units=4, max_distance=4),
                       (tf.random.stateless_normal([2, 3, 8], seed=(3, 4)), tf.random.stateless_normal([2, 3, 8], seed=(5, 6)),
                        tf.constant([[5, 6, 5], [7, 0, 0]], tf.int64))),
        "CatalogTopK": (top_k, (tf.random.stateless_normal([2, 4], seed=(7, 8)),)),
        "NeighbourFusion": (fusion, (tf.math.log(tf.fill([2, 3], 1 / 3)), tf.random.stateless_normal([2, 4], seed=(9, 10)),
                                     tf.constant([[3, 2], [4, 0]], tf.int64))),
        "NeighbourScores": (scores, (tf.constant([[2, 3], [4, 0]], tf.int64), tf.constant([[1, 0], [0, 0]]),
                                     tf.constant([[True, True], [True, False]]), tf.constant([[2, 3, 4], [3, 4, 2]], tf.int64))),
    }


@pytest.mark.parametrize("name", ["TextEncoder", "ItemEncoder", "SessionEncoder", "RepeatHead", "CatalogTopK", "NeighbourFusion",
                                  "NeighbourScores"])
def test_layer_config_round_trips(shop, name):
    layer, inputs = _layers_and_inputs(*shop)[name]
    expected = tf.nest.map_structure(np.asarray, layer(*inputs))
    config = layer.get_config()

    rebuilt = layer.__class__.from_config(config)
    assert rebuilt.get_config() == config
    rebuilt(*inputs)  # builds the weights, so the original's can be copied in
    rebuilt.set_weights(layer.get_weights())
    actual = tf.nest.map_structure(np.asarray, rebuilt(*inputs))
    tf.nest.map_structure(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), actual, expected)
