"""Neighbour fusion: the mixture on hand-computed cases, the gate fit, and the model with fusion on and off."""

import numpy as np
import pytest

from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
from recommenders.features.sequences import sessions_to_arrays
from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.config import RetrievalConfig
from recommenders.models.fusion import NeighbourFusion, fit_gate
from recommenders.models.retrieval import SessionRetrievalModel, catalog_log_probabilities
from recsys_base.tf_compat import tensorflow

tf = tensorflow()


def _fusion(model_weight: float) -> NeighbourFusion:
    """One table over three catalog items: 0 -> 1; 1 -> 2 and 0 (half each); 2 has no neighbours.

    The gate gives the model ``model_weight`` and the table the rest, whatever the session.
    """
    fusion = NeighbourFusion(["next"], num_indices=5, max_neighbours=2, state_dim=4, units=3)
    fusion.set_tables([np.array([[1, -1], [2, 0], [-1, -1]])], [np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]])])
    fusion.gate.bias.assign(np.log([model_weight, 1 - model_weight]))
    return fusion


UNIFORM = np.log(np.full((1, 3), 1 / 3, np.float32))


def test_the_mixture_adds_the_tables_share_onto_the_last_items_neighbours():
    # Session: item index 3 = catalog column 1. Table: columns 2 and 0 at 0.5 each.
    fused = np.exp(_fusion(0.6)(UNIFORM, tf.zeros([1, 4]), tf.constant([[3, 0]], tf.int64)).numpy()[0])
    assert fused == pytest.approx([0.6 / 3 + 0.4 * 0.5, 0.6 / 3, 0.6 / 3 + 0.4 * 0.5])
    assert fused.sum() == pytest.approx(1.0)


def test_earlier_items_weigh_by_their_learned_distance_from_the_end():
    # Columns 0 then 1: the last (1) weighs 1, the one before (0) starts at 1/2. Normalized:
    # 2/3 of the table on column 1's neighbours (2 and 0, half each), 1/3 on column 0's (1).
    fused = np.exp(_fusion(0.5)(UNIFORM, tf.zeros([1, 4]), tf.constant([[2, 3]], tf.int64)).numpy()[0])
    table = np.array([1 / 3, 1 / 3, 1 / 3])
    assert fused == pytest.approx(0.5 / 3 + 0.5 * table)


def test_an_unknown_item_still_counts_as_a_step_back():
    # Column 0, an unknown item (index 1), then column 2 (no neighbours): column 0 is two steps
    # back, the only item with neighbours, so the table is its row alone whatever its weight.
    fused = np.exp(_fusion(0.5)(UNIFORM, tf.zeros([1, 4]), tf.constant([[2, 1, 4]], tf.int64)).numpy()[0])
    assert fused == pytest.approx(0.5 / 3 + 0.5 * np.array([0.0, 1.0, 0.0]))
    weights = _fusion(0.5)._position_weights(tf.constant([[2, 1, 3]], tf.int64)).numpy()[0, 0]
    assert weights == pytest.approx([0.25, 0.0, 1.0]), "two steps back: 1/4; the unknown item: none"


def test_a_session_without_neighbours_keeps_the_models_scores():
    fused = _fusion(0.1)(UNIFORM, tf.zeros([1, 4]), tf.constant([[4, 1, 0]], tf.int64))  # column 2, then unknown
    assert np.exp(fused.numpy()[0]) == pytest.approx([1 / 3] * 3)


def test_the_likelihood_of_a_target_is_its_fused_probability():
    fusion = _fusion(0.6)
    items = tf.constant([[3, 0], [2, 3]], tf.int64)
    log_model = tf.constant(np.log([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]), tf.float32)
    fused = fusion(log_model, tf.zeros([2, 4]), items).numpy()
    targets = tf.constant([2, 1])
    log_likelihood = fusion.log_likelihood(tf.gather(log_model, targets, batch_dims=1), tf.zeros([2, 4]), items, targets)
    assert log_likelihood.numpy() == pytest.approx(fused[[0, 1], [2, 1]], abs=1e-6)


def test_the_popularity_shift_tilts_the_fused_distribution_by_its_weight():
    # A session without neighbours over a uniform model: P(j) ~ 1/3 * exp(w * shift(j)).
    fusion = _fusion(0.1)
    fusion.popularity_shift.assign(np.log([2.0, 1.0, 0.5]))
    items = tf.constant([[4, 1, 0]], tf.int64)
    assert np.exp(fusion(UNIFORM, tf.zeros([1, 4]), items).numpy()[0]) == pytest.approx([1 / 3] * 3), "weight 0: no shift"
    fusion.popularity_weight.assign(1.0)
    assert np.exp(fusion(UNIFORM, tf.zeros([1, 4]), items).numpy()[0]) == pytest.approx([2 / 3.5, 1 / 3.5, 0.5 / 3.5])


def test_target_ranks_are_the_ranks_in_the_served_scores_under_every_setting():
    # Two tables over 30 items, sessions with repeated items (one column touched by several
    # positions and both tables), unknown items and padding; a gate that reads the state;
    # a popularity shift.
    rng = np.random.default_rng(0)
    fusion = NeighbourFusion(["next", "near"], num_indices=32, max_neighbours=4, state_dim=4, units=3)
    columns = [rng.integers(-1, 30, size=(30, 4)) for _ in range(2)]
    fusion.set_tables(columns, [np.where(c >= 0, rng.random(c.shape), 0.0) for c in columns])
    fusion.gate_hidden.kernel.assign(rng.normal(size=fusion.gate_hidden.kernel.shape))
    fusion.gate.kernel.assign(rng.normal(size=fusion.gate.kernel.shape))
    items = rng.integers(0, 32, size=(16, 6))
    items[:, 3] = items[:, 1]  # a re-visit
    items[0] = [1, 1, 0, 0, 0, 0]  # unknown items only: the model's scores alone
    items = tf.constant(items, tf.int64)
    log_model = tf.nn.log_softmax(rng.normal(size=(16, 30)).astype(np.float32))
    state = tf.constant(rng.normal(size=(16, 4)), tf.float32)
    targets = tf.constant(rng.integers(0, 30, size=16), tf.int32)
    fusion.popularity_shift.assign(rng.normal(size=30))
    scales, popularity_weights = np.log([0.5, 1.0, 3.0, 1.0]).astype(np.float32), np.array([0.0, 0.0, 0.5, 1.0], np.float32)
    expected = []
    for scale, weight in zip(scales, popularity_weights):
        fusion.popularity_weight.assign(weight)
        fused = fusion(log_model, state, items, table_log_scale=scale)
        expected.append(1 + tf.reduce_sum(tf.cast(fused > tf.gather(fused, targets, batch_dims=1)[:, None], tf.int32), -1))
    ranks = fusion.target_ranks(log_model, state, items, targets, scales, popularity_weights)
    assert ranks.numpy().tolist() == np.stack(expected).tolist()


def test_fit_gate_finds_the_mixture_weight_that_maximizes_held_out_likelihood():
    # The model says uniform over 4 items; the table says "next is the successor" (0->1->2->3->0).
    # 70% of targets are the successor, 30% uniform: the best table weight g maximizes
    # 0.775 * log(0.25 (1 - g) + g) + 0.225 * log(0.25 (1 - g)) (the uniform quarter hits too).
    fusion = NeighbourFusion(["next"], num_indices=6, max_neighbours=1, state_dim=2, units=4)
    fusion.set_tables([np.array([[1], [2], [3], [0]])], [np.ones((4, 1))])
    rng = np.random.default_rng(0)
    n = 4000
    last = rng.integers(0, 4, n)
    targets = np.where(rng.random(n) < 0.7, (last + 1) % 4, rng.integers(0, 4, n))
    result = fit_gate(fusion, np.full(n, np.log(0.25), np.float32), np.zeros((n, 2), np.float32),
                      (last + 2)[:, None].astype(np.int64), targets, max_epochs=60, patience=5, learning_rate=0.05)
    weights = np.exp(fusion.gate_log_weights(tf.zeros([1, 2]), fusion.session_neighbours(tf.constant([[2]], tf.int64))[2]))
    grid = np.linspace(0.01, 0.99, 981)
    best = grid[np.argmax(0.775 * np.log(0.25 * (1 - grid) + grid) + 0.225 * np.log(0.25 * (1 - grid)))]
    assert weights[0, 1] == pytest.approx(best, abs=0.03)
    assert result["fitted"] > result["start"] > result["model"] - 1e-6


def test_fit_gate_fits_a_subclass_through_its_own_gate():
    """The fit runs on a copy of the layer: of its own class, or a subclass's gate is ignored."""

    class HalfAndHalf(NeighbourFusion):
        def gate_log_weights(self, state, evidence, table_log_scale=None):
            return tf.math.log(tf.fill([tf.shape(state)[0], 2], 0.5))

    fusion = HalfAndHalf(["next"], num_indices=6, max_neighbours=1, state_dim=2, units=4)
    fusion.set_tables([np.array([[1], [2], [3], [0]])], [np.ones((4, 1))])
    n = 400
    last = np.arange(n) % 4
    result = fit_gate(fusion, np.full(n, np.log(0.25), np.float32), np.zeros((n, 2), np.float32),
                      (last + 2)[:, None].astype(np.int64), (last + 1) % 4, max_epochs=5, learning_rate=0.05)
    assert result["start"] == pytest.approx(np.log(0.5 * 0.25 + 0.5))
    assert result["fitted"] == pytest.approx(result["start"]), "nothing in a fixed gate can be fitted"


def test_fusion_off_is_the_model_without_it_and_empty_tables_change_nothing():
    shop = generate_shop(SyntheticShopConfig.small(n_sessions=100, clean=True))
    vocab = FeatureVocabularies.build(shop.events, shop.catalog)
    features = {name: tf.constant(values) for name, values in sessions_to_arrays(shop.events, 20).features().items()}
    small = dict(embedding_dim=8, feature_dim=4, lstm_units=8, output_dim=8)
    plain = SessionRetrievalModel(vocab, RetrievalConfig(**small, fusion=False))
    fused = SessionRetrievalModel(vocab, RetrievalConfig(**small))

    def scores(model):
        return catalog_log_probabilities([(model.session_encoder, model.repeat_head, model.catalog_embeddings())],
                                         model.fusion, model.config.temperature, features)[0].numpy()

    plain_scores, _ = scores(plain), scores(fused)  # builds both
    assert plain.fusion is None and len(plain.weights) == len(fused.weights) - len(fused.fusion.weights)
    def tower_weights(model):
        return model.session_encoder.weights + model.repeat_head.weights  # the session tower holds the item tower

    for mine, theirs in zip(tower_weights(fused), tower_weights(plain), strict=True):
        mine.assign(theirs)
    assert scores(fused) == pytest.approx(plain_scores, abs=1e-5), "no neighbours yet: the model's own scores"
