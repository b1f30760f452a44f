"""Per-epoch validation of the mixed retrieve score: in the epoch logs, monitored by early stopping."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recommenders.data.dataset import load_prepared
from recommenders.evaluation.cases import make_next_item_cases
from recommenders.models.config import RetrievalConfig, TrainConfig
from recommenders.models.training import RETRIEVAL_MONITOR, kept_epochs, train_retrieval
from recommenders.models.validation import retrieval_metrics, validation_cases

# Fusion off: its gate is fitted after the last epoch and changes retrieve's scores, while
# these tests compare the epochs' logged scores with the towers training kept.
TINY = RetrievalConfig(embedding_dim=8, output_dim=8, feature_dim=4, lstm_units=8, extra_negatives=64, max_title_tokens=4,
                       fusion=False)


def test_validation_cases_are_a_fixed_subset_in_split_order(small_shop_dir):
    events = load_prepared(small_shop_dir).validation
    every = make_next_item_cases(events)
    subset = validation_cases(events, max_cases=7, seed=3)
    again = validation_cases(events, max_cases=7, seed=3)
    assert len(subset) == 7 and list(subset.targets) == list(again.targets)
    # Rows keep the split's order: each subset case is a case of the whole, in increasing position.
    positions = [next(i for i in range(len(every)) if every.session_ids[i] == session and every.targets[i] == target
                      and len(every.prefix_item_ids[i]) == len(prefix))
                 for session, target, prefix in zip(subset.session_ids, subset.targets, subset.prefix_item_ids)]
    assert positions == sorted(positions)
    assert len(validation_cases(events, max_cases=None)) == len(every)


@pytest.mark.slow
def test_epochs_log_retrieve_metrics_and_early_stopping_keeps_the_best_mrr_epoch(small_shop_dir):
    prepared = load_prepared(small_shop_dir)
    train_config = TrainConfig(epochs=3, batch_size=128, max_length=10, early_stopping_patience=3, verbose=0,
                               max_validation_cases=400, learning_rate=0.01)
    model, history = train_retrieval(prepared.train, prepared.validation, prepared.catalog, TINY, train_config)
    assert RETRIEVAL_MONITOR == "val_MRR@20"
    for name in ("val_HR@10", "val_MRR@10", "val_HR@20", "val_MRR@20"):
        assert len(history.history[name]) == 3 and all(0 < value <= 1 for value in history.history[name])
    # The weights kept are those of the best val_MRR@20 epoch, and the logged value is retrieve's on them.
    kept = kept_epochs(history, train_config, RETRIEVAL_MONITOR)
    assert kept == int(np.argmax(history.history["val_MRR@20"])) + 1
    # After the first epoch, so the logged value came from the callback's module with its
    # catalog embeddings taken again (it traces retrieve once per fit, not once per epoch).
    assert kept > 1
    now = retrieval_metrics(model, validation_cases(prepared.validation, 400, train_config.seed), (10, 20), 10)
    for name, value in now.items():
        assert value == pytest.approx(history.history[name][kept - 1], abs=1e-6)
    # Known structure: the trained model ranks next items far above chance (20 of 300 items: 6.7%).
    assert now["val_HR@20"] > 0.3


@pytest.mark.slow
def test_weight_averaging_validates_and_keeps_the_average_while_training_follows_its_own_weights(small_shop_dir):
    prepared = load_prepared(small_shop_dir)
    # No dropout and no sampled negatives: two runs then take the same steps exactly.
    model_config = dataclasses.replace(TINY, dropout=0.0, extra_negatives=0)
    plain = TrainConfig(epochs=2, batch_size=128, max_length=10, early_stopping_patience=0, verbose=0,
                        max_validation_cases=400, learning_rate=0.01)
    averaged = dataclasses.replace(plain, weight_averaging=0.9)
    fits = {config.weight_averaging: train_retrieval(prepared.train, prepared.validation, prepared.catalog,
                                                     model_config, config)
            for config in (plain, averaged)}
    (_, plain_history), (model, history) = fits[0.0], fits[0.9]
    # The average never feeds back: epoch by epoch, training takes the plain run's steps.
    assert history.history["loss"] == pytest.approx(plain_history.history["loss"], rel=1e-5)
    # What is validated is the average, not the last step's weights ...
    assert history.history["val_MRR@20"] != pytest.approx(plain_history.history["val_MRR@20"], rel=1e-6)
    # ... and it is what the run keeps: the last epoch's logged scores are the model's now.
    now = retrieval_metrics(model, validation_cases(prepared.validation, 400, plain.seed), (10, 20), 10)
    for name, value in now.items():
        assert value == pytest.approx(history.history[name][-1], abs=1e-6)
