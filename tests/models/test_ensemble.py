"""Retrieval ensembles: members learn as if alone, and retrieve scores the mixture of their distributions."""

from __future__ import annotations

import numpy as np
import pytest

from recommenders.evaluation.cases import make_next_item_cases
from recommenders.features.neighbours import ItemNeighbours
from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.config import RetrievalConfig
from recommenders.models.inference import as_tensors, session_inputs
from recommenders.models.retrieval import SessionRetrievalModel, catalog_log_probabilities, member_log_probabilities
from recommenders.models.serving_modules import RetrievalModule
from recommenders.models.training import load_trained, save_trained
from recsys_base.errors import ConfigError
from recsys_base.tf_compat import tensorflow
from tests.models.test_retrieval import _features, _shop

tf = tensorflow()
TINY = {"embedding_dim": 8, "feature_dim": 4, "lstm_units": 8, "output_dim": 8}


def _model(ensemble_size: int, **config) -> SessionRetrievalModel:
    events, catalog = _shop()
    return SessionRetrievalModel(FeatureVocabularies.build(events, catalog),
                                 RetrievalConfig(**TINY, ensemble_size=ensemble_size, **config).validate())


def test_a_member_learns_exactly_as_the_model_alone_would():
    """The loss is the sum of the members': each member's gradients are its own loss's."""
    features = _features(_shop()[0])

    def trained(ensemble_size):
        tf.keras.utils.set_random_seed(3)
        # Exact softmax and no dropout: training draws nothing at random, so runs compare exactly.
        model = _model(ensemble_size, dropout=0.0, negatives="catalog", fusion=False)
        model.compile(tf.keras.optimizers.Adam(0.01))
        start = model.catalog_embeddings().numpy()
        model.fit(tf.data.Dataset.from_tensors(features).repeat(3), epochs=1, verbose=0)
        return model, start

    alone, alone_start = trained(1)
    ensemble, _ = trained(2)
    assert len(alone.ensemble_members) == 0 and len(ensemble.ensemble_members) == 1
    assert not np.allclose(alone.catalog_embeddings(), alone_start), "training moved the towers"
    np.testing.assert_array_equal(ensemble.catalog_embeddings(), alone.catalog_embeddings())
    other = ensemble.catalog_embeddings(ensemble.ensemble_members[0]).numpy()
    assert np.abs(other - alone.catalog_embeddings().numpy()).max() > 0.1, "the second member starts elsewhere"


def test_the_ensemble_distribution_is_the_mean_of_its_members():
    model = _model(2, fusion=False)
    features = _features(_shop()[0])
    members = [(member.session_encoder, member.repeat_head, model.catalog_embeddings(member)) for member in model.members]
    log_p, state, _ = catalog_log_probabilities(members, None, model.config.temperature, features)
    parts = [member_log_probabilities(*member, model.config.temperature, features) for member in members]
    expected = np.log(0.5 * np.exp(parts[0][0].numpy()) + 0.5 * np.exp(parts[1][0].numpy()))
    np.testing.assert_allclose(log_p.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.exp(log_p.numpy()).sum(axis=1), 1.0, rtol=1e-5)
    assert state.shape == (3, 2 * TINY["output_dim"]), "the fusion gate reads both members' states"
    np.testing.assert_array_equal(state[:, TINY["output_dim"]:], parts[1][1])


def test_saved_and_exported_ensemble_score_as_the_trained_one(tmp_path):
    events, _ = _shop()
    model = _model(2)
    model.set_neighbours(ItemNeighbours.build(events, model.vocab.item_ids, model.config.neighbour_specs()))
    cases = make_next_item_cases(events)
    inputs = {**as_tensors(session_inputs(cases, 8)), "k": tf.fill([len(cases)], 4)}
    module = RetrievalModule(model, 8)
    expected = module.retrieve(**inputs)
    reloaded_module = RetrievalModule(load_trained(save_trained(model, tmp_path / "trained")), 8)
    tf.saved_model.save(module, str(tmp_path / "saved_model"), signatures={"retrieve": module.retrieve})
    exported = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["retrieve"]
    for outputs in (reloaded_module.retrieve(**inputs), exported(**inputs)):
        np.testing.assert_array_equal(outputs["item_ids"], expected["item_ids"])
        np.testing.assert_allclose(outputs["scores"], expected["scores"], rtol=1e-6)


def test_an_ensemble_needs_at_least_one_member():
    with pytest.raises(ConfigError, match="ensemble_size must be at least 1, got 0"):
        RetrievalConfig(ensemble_size=0).validate()
