"""Oracles by name, the wall-clock budget, and grid search picking up where it stopped."""

import keras_tuner
import pytest

import recsys_base  # noqa: F401  (selects Keras 2 before keras_tuner imports TensorFlow)
from recsys_base.errors import ConfigError
from tuning.oracles import make_oracle

OBJECTIVE = keras_tuner.Objective("val_HR@20", "max")


def space():
    hp = keras_tuner.HyperParameters()
    hp.Choice("learning_rate", [0.001, 0.01, 0.1])
    return hp


def oracle_in(directory, name="grid", **kwargs):
    oracle = make_oracle(name, OBJECTIVE, space(), max_trials=kwargs.pop("max_trials", 3), **kwargs)
    oracle._set_project_dir(str(directory), "project")
    return oracle


def finish(oracle, trial, score):
    oracle.update_trial(trial.trial_id, {"val_HR@20": score})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    oracle.save()  # as the tuner does after each trial


@pytest.mark.parametrize("name, base", [
    ("random", keras_tuner.oracles.RandomSearchOracle),
    ("bayesian", keras_tuner.oracles.BayesianOptimizationOracle),
    ("hyperband", keras_tuner.oracles.HyperbandOracle),
    ("grid", keras_tuner.oracles.GridSearchOracle),
])
def test_oracles_are_selected_by_name(tmp_path, name, base):
    oracle = oracle_in(tmp_path, name, max_epochs=4)
    assert isinstance(oracle, base)
    assert oracle.objective.name == "val_HR@20" and oracle.objective.direction == "max"
    assert oracle.max_trials == 3


def test_bad_oracle_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="tuner must be one of random, bayesian, hyperband, grid, got 'annealing'"):
        oracle_in(tmp_path, "annealing")
    with pytest.raises(ConfigError, match="max_trials must be at least 1, got 0"):
        oracle_in(tmp_path, max_trials=0)
    with pytest.raises(ConfigError, match="time limit must be positive seconds, got -5"):
        oracle_in(tmp_path, time_limit_seconds=-5)


def test_no_new_trial_starts_once_the_time_limit_has_passed(tmp_path):
    oracle = oracle_in(tmp_path, "random", time_limit_seconds=3600)
    first = oracle.create_trial("tuner0")
    assert first.status == "RUNNING"
    oracle.started_at -= 3600  # an hour later
    assert oracle.create_trial("tuner1").status == "STOPPED"
    assert oracle.create_trial("tuner0") is first  # a running trial is still its tuner's to finish
    finish(oracle, first, 0.3)
    assert oracle.create_trial("tuner0").status == "STOPPED"
    assert list(oracle.trials) == [first.trial_id]


def test_reloaded_grid_search_continues_with_the_next_combination(tmp_path):
    oracle = oracle_in(tmp_path)
    for score in (0.1, 0.2):
        finish(oracle, oracle.create_trial("tuner0"), score)
    tried = [oracle.trials[t].hyperparameters.values["learning_rate"] for t in oracle.start_order]

    reloaded = oracle_in(tmp_path)
    reloaded.reload()
    third = reloaded.create_trial("tuner0")
    assert third.status == "RUNNING"
    assert sorted(tried + [third.hyperparameters.values["learning_rate"]]) == [0.001, 0.01, 0.1]
    finish(reloaded, third, 0.3)
    assert reloaded.create_trial("tuner0").status == "STOPPED"


def test_hyperband_trials_train_for_the_epochs_hyperband_allots(tmp_path):
    from recommenders.models.config import TrainConfig
    from tuning.search import TuningConfig, build_tuner

    tuner = build_tuner(TuningConfig(tuner="hyperband", directory=str(tmp_path)), train_config=TrainConfig(epochs=9))
    trial = tuner.oracle.create_trial("tuner0")
    model_config, train_config = tuner.trial_configs(trial.hyperparameters.values)
    assert train_config.epochs == trial.hyperparameters.values["tuner/epochs"] < 9
    assert model_config.embedding_dim == trial.hyperparameters.values["embedding_dim"]


def test_hyperband_repeats_its_brackets_until_the_trial_budget_is_spent(tmp_path):
    # max_epochs 3 (factor 3): one round of brackets is 4 + 2 = 6 trials.
    continuous = keras_tuner.HyperParameters()
    continuous.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    oracle = make_oracle("hyperband", OBJECTIVE, continuous, max_trials=10, max_epochs=3)
    oracle._set_project_dir(str(tmp_path), "project")
    for score in range(10):
        trial = oracle.create_trial("tuner0")
        assert trial.status == "RUNNING", f"trial {score} did not start"
        finish(oracle, trial, score / 10)
    assert oracle.create_trial("tuner0").status == "STOPPED"
