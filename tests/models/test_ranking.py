"""The ranker's training candidates: batch negatives and the session's own latest items."""

import numpy as np
import pandas as pd
import pytest

from recommenders.data import schema
from recommenders.features.sequences import sessions_to_arrays
from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.config import RankingConfig
from recommenders.models.ranking import MultiTaskRanker
from recsys_base.errors import ConfigError
from recsys_base.tf_compat import tensorflow

tf = tensorflow()


class RecordingRanker(MultiTaskRanker):
    """Keeps the candidates of the last loss computation."""

    def logits(self, session, candidates, seen, neighbours, training=None):
        self.candidates = candidates
        return super().logits(session, candidates, seen, neighbours, training=training)


def test_session_negatives_are_the_latest_items_up_to_each_position():
    events = schema.conform_events(pd.DataFrame({
        "session_id": ["s"] * 4, "item_id": ["a", "b", "c", "d"], "event_type": ["view"] * 4,
        "timestamp": pd.date_range("2024-01-01", periods=4, freq="min")}))
    catalog = pd.DataFrame({"item_id": ["a", "b", "c", "d"]})
    vocab = FeatureVocabularies.build(events, schema.conform_catalog(catalog))
    config = RankingConfig(embedding_dim=4, feature_dim=2, lstm_units=4, output_dim=4, deep_units=(4,),
                           negatives_per_position=1, session_negatives=2, neighbour_features=False).validate()
    ranker = RecordingRanker(vocab, config)
    ranker.compute_loss(sessions_to_arrays(events, 20).features())
    items = ranker.item_encoder.lookup(tf.constant(["a", "b", "c", "d"])).numpy()
    candidates = ranker.candidates.numpy()  # positions 0, 1, 2 predicting b, c, d
    assert candidates[:, 0].tolist() == items[1:].tolist(), "the positive comes first"
    assert candidates[:, 2].tolist() == items[:3].tolist(), "then the item at the position"
    assert candidates[1:, 3].tolist() == items[:2].tolist(), "and the one before it"
    assert np.isin(candidates[0, 3], items[1:]), "the first position has no earlier item: a batch negative"


def test_negative_session_negatives_are_refused_by_name():
    with pytest.raises(ConfigError, match="session_negatives"):
        RankingConfig(session_negatives=-1).validate()
