"""The known-good configuration runs first, and Hyperband's promoted trials start from their parent."""

from __future__ import annotations

import numpy as np
import pytest

from recommenders.models.config import RetrievalConfig, TrainConfig
from recommenders.models.hparams import hparam_values
from recsys_base.tf_compat import tensorflow
from tuning.search import TuningConfig, build_tuner
from tuning.tuner import HYPERBAND_INITIAL_EPOCH, HYPERBAND_PARENT, MODEL_DIR, TuningData

tf = tensorflow()

# Off the default space's grid on purpose: the space must widen to hold these values.
KNOWN_MODEL = RetrievalConfig(lstm_units=96, dropout=0.25, temperature=0.07, l2_normalize=True, repeat_head=False,
                              extra_negatives=1024)
KNOWN_TRAIN = TrainConfig(epochs=3, learning_rate=0.002, learning_rate_decay=0.5, batch_size=192)


@pytest.mark.parametrize("tuner", ["random", "bayesian", "hyperband", "grid"])
def test_the_known_good_configuration_is_trial_0(tmp_path, tuner):
    search = build_tuner(TuningConfig(tuner=tuner, max_trials=3, directory=str(tmp_path)), KNOWN_MODEL, KNOWN_TRAIN)
    first = search.oracle.create_trial("tuner0")
    values = dict(first.hyperparameters.values)
    assert first.trial_id == "0" and values.pop("tuner/epochs", KNOWN_TRAIN.epochs) <= KNOWN_TRAIN.epochs
    model_config, train_config = search.trial_configs(values)
    assert model_config == KNOWN_MODEL
    assert hparam_values(model_config, train_config) == hparam_values(KNOWN_MODEL, KNOWN_TRAIN)
    second = search.oracle.create_trial("tuner1")  # the search goes on from there
    assert second.status == "RUNNING" and second.hyperparameters.values != first.hyperparameters.values


class FirstEpochWeights(tf.keras.callbacks.Callback):
    """Per training: the first epoch it runs and the trainable weights just before it."""

    def __init__(self):
        super().__init__()
        self.trainings = []

    def on_train_begin(self, logs=None):
        self.trainings.append(None)

    def on_epoch_begin(self, epoch, logs=None):
        if self.trainings[-1] is None:
            self.trainings[-1] = (epoch, [w.numpy().copy() for w in self.model.trainable_weights])


def hyperband(prepared, space_file, directory, max_trials, callback):
    config = TuningConfig(tuner="hyperband", max_trials=max_trials, directory=str(directory), project_name="hb",
                          space_file=str(space_file))
    # 3 epochs at most: Hyperband runs 3 one-epoch trials, then continues the best to 3 epochs.
    search = build_tuner(config, train_config=TrainConfig(epochs=3, max_length=10, verbose=0))
    search.search(TuningData.build(prepared, search.objective, max_cases=300), callbacks=[callback])
    return search


@pytest.mark.slow
def test_a_promoted_trial_starts_from_its_parents_saved_weights_also_after_a_resume(tiny_shop, tiny_space_file,
                                                                                    tmp_path):
    from recommenders.features.sequences import sessions_to_arrays
    from recommenders.models.training import load_trained

    prepared = tiny_shop[0]
    first_round = FirstEpochWeights()
    hyperband(prepared, tiny_space_file, tmp_path, max_trials=3, callback=first_round)
    assert [epoch for epoch, _ in first_round.trainings] == [0, 0, 0]

    promoted_round = FirstEpochWeights()  # the search interrupted after 3 trials, run again: it resumes
    search = hyperband(prepared, tiny_space_file, tmp_path, max_trials=4, callback=promoted_round)
    assert len(promoted_round.trainings) == 1  # the finished trials did not run again
    promoted = search.oracle.get_trial(search.oracle.start_order[-1])
    values = promoted.hyperparameters.values
    parent = values[HYPERBAND_PARENT]
    assert parent in search.oracle.start_order[:3] and values[HYPERBAND_INITIAL_EPOCH] == 1

    epoch, weights = promoted_round.trainings[0]
    assert epoch == 1  # it continues at the parent's epoch count instead of starting over
    saved = load_trained(f"{search.get_trial_dir(parent)}/{MODEL_DIR}")
    saved.compute_loss(sessions_to_arrays(prepared.train.head(50), 10).features())  # builds: restores every variable
    assert len(weights) == len(saved.trainable_weights) > 10
    for before_first_new_epoch, parents in zip(weights, saved.trainable_weights):
        np.testing.assert_array_equal(before_first_new_epoch, parents.numpy())
    assert promoted.status == "COMPLETED" and promoted.metrics.get_last_value("epochs") >= 2
