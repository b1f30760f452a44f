"""Ranker neighbour features: hand-computed scores, out-of-fold training tables, round trips."""

import numpy as np
import pandas as pd
import pytest

from recommenders.features.neighbours import ItemNeighbours, NeighbourSpec, NeighbourTable, session_folds
from recommenders.features.sequences import NEIGHBOUR_FOLD, sessions_to_arrays, to_dataset
from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.config import RankingConfig
from recommenders.models.neighbour_features import FLOOR, NeighbourScores
from recommenders.models.ranking import MultiTaskRanker
from recsys_base.tf_compat import tensorflow

tf = tensorflow()


def _tables(rows: dict[int, list[tuple[int, float]]], items: int = 4, width: int = 3) -> ItemNeighbours:
    """One table "next" over ``items`` catalog columns: row -> [(column, weight)]."""
    indices, weights = np.full((items, width), -1), np.zeros((items, width))
    for row, entries in rows.items():
        for slot, (column, weight) in enumerate(entries):
            indices[row, slot], weights[row, slot] = column, weight
    return ItemNeighbours({"next": NeighbourTable(indices, weights)})


def _probabilities(features) -> np.ndarray:
    return np.exp(features[..., 0].numpy().astype(float)) - FLOOR


def test_scores_weigh_each_event_by_its_distance_and_skip_events_without_neighbours():
    scores = NeighbourScores(["next"], num_indices=6, max_neighbours=3)
    # Columns 0 -> 3 (0.6), 1 (0.4); 1 -> 3 (1.0); 2: no neighbours. Rows stored sorted by column.
    scores.set_neighbours(_tables({0: [(3, 0.6), (1, 0.4)], 1: [(3, 1.0)]}))
    items = tf.constant([[2, 3, 4, 0]], tf.int64)  # columns 0, 1, 2, then padding
    distance = tf.constant([[2, 1, 0, 0]])
    known = tf.constant([[True, True, True, False]])
    features = scores(items, distance, known, tf.constant([[5, 3, 4, 2]], tf.int64))  # columns 3, 1, 2, 0
    # a = 0.25 (column 0), 0.5 (column 1); column 2 has no neighbours, so it does not count.
    expected = np.array([0.25 * 0.6 + 0.5 * 1.0, 0.25 * 0.4, 0.0, 0.0]) / 0.75
    assert _probabilities(features)[0] == pytest.approx(expected, abs=1e-6)
    assert features[0, :, 1].numpy().tolist() == [1.0] * 4, "the table knows this session"
    empty = scores(tf.constant([[4]], tf.int64), tf.constant([[0]]), tf.constant([[True]]), tf.constant([[5]], tf.int64))
    assert empty[0, 0].numpy() == pytest.approx([np.log(FLOOR), 0.0]), "no evidence: the floor, and no mass"


def test_training_rows_read_their_folds_tables_and_serving_the_full_ones():
    scores = NeighbourScores(["next"], num_indices=6, max_neighbours=3)
    scores.set_neighbours(_tables({0: [(1, 1.0)]}))
    scores.set_training_neighbours([_tables({0: [(2, 1.0)]}), _tables({0: [(3, 1.0)]})])
    items, distance, known = tf.constant([[2], [2]], tf.int64), tf.constant([[0], [0]]), tf.constant([[True], [True]])
    candidates = tf.constant([[3, 4, 5]] * 2, tf.int64)  # columns 1, 2, 3
    assert _probabilities(scores(items, distance, known, candidates)) == pytest.approx(np.array([[1, 0, 0], [1, 0, 0]]), abs=1e-6)
    trained = _probabilities(scores(items, distance, known, candidates, folds=tf.constant([0, 1])))
    assert trained == pytest.approx(np.array([[0, 1, 0], [0, 0, 1]]), abs=1e-6)


def test_only_the_served_tables_are_weights_and_the_config_round_trips():
    scores = NeighbourScores(["next", "near"], num_indices=6, max_neighbours=3, name="neighbour_scores")
    both = ItemNeighbours({"next": _tables({0: [(1, 1.0)]}).tables["next"], "near": _tables({}).tables["next"]})
    scores.set_neighbours(both)
    scores.set_training_neighbours([both, both])
    assert sorted(w.name.split("/")[-1].split(":")[0] for w in scores.weights) == ["neighbour_columns", "neighbour_weights"]
    clone = NeighbourScores.from_config(scores.get_config())
    assert clone.get_config() == scores.get_config()
    assert [w.shape for w in clone.weights] == [w.shape for w in scores.weights]


def test_training_without_fold_tables_is_an_error_naming_the_step():
    scores = NeighbourScores(["next"], num_indices=6, max_neighbours=3)
    with pytest.raises(ValueError, match="set_training_neighbours"):
        scores(tf.constant([[2]], tf.int64), tf.constant([[0]]), tf.constant([[True]]), tf.constant([[3]], tf.int64),
               folds=tf.constant([0]))


@pytest.fixture(scope="module")
def shop():
    from recommenders.data.synthetic import SyntheticShopConfig, generate_shop

    return generate_shop(SyntheticShopConfig.small(n_sessions=100, clean=True))


SMALL = dict(embedding_dim=8, feature_dim=4, lstm_units=8, output_dim=8, deep_units=(8,))


def test_ranker_trains_on_out_of_fold_tables_and_saves_only_the_served_ones(shop, tmp_path):
    vocab = FeatureVocabularies.build(shop.events, shop.catalog)
    config = RankingConfig(**SMALL, neighbour_folds=3).validate()
    ranker = MultiTaskRanker(vocab, config)
    specs = config.neighbour_specs()
    ranker.set_neighbours(ItemNeighbours.build(shop.events, vocab.item_ids, specs))
    ranker.neighbour_scores.set_training_neighbours(ItemNeighbours.build_out_of_fold(shop.events, vocab.item_ids, specs, 3))
    batch = next(iter(to_dataset(sessions_to_arrays(shop.events, 20), 64, neighbour_folds=3)))
    assert NEIGHBOUR_FOLD in batch
    ranker.compile(tf.keras.optimizers.Adam(0.01))
    assert np.isfinite(float(ranker.train_step(batch)["loss"]))
    ranker.save_weights(str(tmp_path / "weights"))
    saved = {name for name, _ in tf.train.list_variables(str(tmp_path / "weights"))}
    assert any("neighbour_columns" in name for name in saved)
    fold_sized = [shape for _, shape in tf.train.list_variables(str(tmp_path / "weights")) if len(shape) == 4]
    assert not fold_sized, f"per-fold tables were saved: {fold_sized}"


def test_ranker_without_neighbour_features_has_no_tables(shop):
    vocab = FeatureVocabularies.build(shop.events, shop.catalog)
    plain = MultiTaskRanker(vocab, RankingConfig(**SMALL, neighbour_features=False).validate())
    features = sessions_to_arrays(shop.events, 20).features()
    sessions = len(features["session_item_ids"])
    _, score = plain.rank(features, tf.constant([["item_00001", "item_00002"]] * sessions))
    assert plain.neighbour_scores is None and score.shape == (sessions, 2)
    assert not any("neighbour" in w.name for w in plain.weights)


def test_out_of_fold_tables_leave_out_each_sessions_own_transitions():
    events = pd.DataFrame({"session_id": ["s1", "s1", "s2", "s2"], "item_id": ["a", "b", "a", "c"],
                           "timestamp": pd.to_datetime([1, 2, 3, 4], unit="s")})
    by_fold = ItemNeighbours.build_out_of_fold(events, ["a", "b", "c"], [NeighbourSpec("transitions")], 2)
    folds = session_folds(["s1", "s2"], 2)
    for session, fold, own_next in (("s1", folds[0], 1), ("s2", folds[1], 2)):
        row = by_fold[fold].tables["transitions"].indices[0]
        assert own_next not in row.tolist(), f"{session}'s own transition is in the table its rows read"
