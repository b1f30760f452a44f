"""``--mixed-precision`` trains both models (float16 towers, float32 losses and fusion) and serves float32 scores."""

import numpy as np

from recommenders.data.dataset import prepare
from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
from recommenders.evaluation.cases import make_next_item_cases
from recommenders.models.config import RankingConfig, RetrievalConfig, TrainConfig
from recommenders.models.inference import SignatureRecommender
from recommenders.models.serving_modules import RetrievalModule
from recommenders.models.training import train_ranking, train_retrieval
from recsys_base.tf_compat import tensorflow

tf = tensorflow()
SMALL = dict(embedding_dim=8, feature_dim=4, lstm_units=8, output_dim=8)


def test_both_models_train_under_mixed_precision_with_loss_scaling():
    prepared = prepare(generate_shop(SyntheticShopConfig.small(n_sessions=300)))
    train = TrainConfig(epochs=1, mixed_precision=True, verbose=0)
    retrieval, history = train_retrieval(prepared.train, prepared.validation, prepared.catalog,
                                         RetrievalConfig(**SMALL).validate(), train)
    assert retrieval.session_encoder.compute_dtype == "float16"
    assert isinstance(retrieval.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert np.isfinite(history.history["loss"]).all() and history.history["fusion"]["examples"] > 0
    assert tf.keras.mixed_precision.global_policy().name == "float32", "the policy is restored"
    module = RetrievalModule(retrieval)
    ranked = SignatureRecommender(module.retrieve).recommend(make_next_item_cases(prepared.test).take(range(4)), 5)
    assert ranked.shape == (4, 5)

    _, ranking_history = train_ranking(prepared.train, prepared.validation, prepared.catalog,
                                       RankingConfig(**SMALL).validate(), train)
    assert np.isfinite(ranking_history.history["loss"]).all()
