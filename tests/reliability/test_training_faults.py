"""A training run killed mid-epoch resumes from its backup and ends where an
uninterrupted run with the same seed ends (under MirroredStrategy too: tests/models/test_distribute.py)."""

import dataclasses

import numpy as np
import pytest

from recommenders.data.dataset import load_prepared
from recommenders.features.sequences import batches_per_epoch, sessions_to_arrays
from recommenders.models.config import RetrievalConfig, TrainConfig
from recommenders.models.training import train_retrieval
from recsys_base.tf_compat import tensorflow

tf = tensorflow()
# No dropout and no sampled negatives: their random streams are not checkpointed, and
# this test is about the data order and the optimizer state being resumed exactly. One
# table half-life: the fusion fit still ends each run, without the choice among four that
# the trained-models tests check (the other three cost 8 s of 111 in the killed-run test).
MODEL = RetrievalConfig(embedding_dim=8, feature_dim=4, lstm_units=8, output_dim=8, dropout=0.0, extra_negatives=0,
                        neighbour_half_lives=(0.0,))
TRAIN = TrainConfig(epochs=2, batch_size=128, early_stopping_patience=0, verbose=0, seed=7)


class Killed(Exception):
    """Stands in for the process dying."""


class KillAfter(tf.keras.callbacks.Callback):
    """Raises after ``batches`` training batches, like a SIGKILL between two steps."""

    def __init__(self, batches: int):
        super().__init__()
        self.batches = batches
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.batches:
            raise Killed(f"killed after {self.seen} batches")


def short_sessions(data_dir):
    """The prepared shop cut down to sessions of 4-5 events: every batch traces one of a few
    shapes, which is what the resume checks' three fits spend their time on."""
    prepared = load_prepared(data_dir)
    sizes = prepared.train.groupby("session_id").size()
    train = prepared.train[prepared.train.session_id.isin(sizes[(sizes >= 4) & (sizes < 6)].index)]
    validation = prepared.validation[prepared.validation.session_id.isin(prepared.validation.session_id.unique()[:100])]
    return train, validation, prepared.catalog


@pytest.fixture(scope="module")
def shop(small_shop_dir):
    return short_sessions(small_shop_dir)


def _train(shop, train_config, **fit_options):
    train, validation, catalog = shop
    return train_retrieval(train, validation, catalog, MODEL, train_config, **fit_options)[0]


def assert_resumes_exactly(shop, backup, train_config):
    """A run killed mid-epoch and started again ends in the uninterrupted run's state."""
    steps = batches_per_epoch(sessions_to_arrays(shop[0], train_config.max_length), train_config.batch_size,
                              bucket_by_length=True)
    assert steps >= 4, "the small shop must give several batches per epoch for a mid-epoch kill"
    kill_at = steps + steps // 2 + 1  # in the middle of the second epoch, past a backup
    # Backups every half epoch (at least every 2 steps): the last before the kill is still in
    # the second epoch, and a backup is a checkpoint write (seconds each under MirroredStrategy).
    backup_every_steps = max(2, steps // 2)

    reference = _train(shop, train_config)
    with pytest.raises(Killed):
        _train(shop, train_config, backup_dir=backup, backup_every_steps=backup_every_steps,
               extra_callbacks=[KillAfter(kill_at)])
    assert any(backup.rglob("*.index")), "the killed run left no backup to resume from"
    resumed = _train(shop, train_config, backup_dir=backup, backup_every_steps=backup_every_steps)

    assert int(resumed.optimizer.iterations.numpy()) == int(reference.optimizer.iterations.numpy()) == 2 * steps
    for expected, actual in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    return resumed


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_to_the_uninterrupted_end_state(shop, tmp_path):
    assert_resumes_exactly(shop, tmp_path / "backup", TRAIN)


@pytest.mark.slow
def test_run_with_weight_averaging_resumes_to_the_same_average(shop, tmp_path):
    # The backup holds the training weights and the optimizer's average of them. Smaller
    # batches: an average spans at most a tenth of an epoch, and needs steps to span.
    resumed = assert_resumes_exactly(shop, tmp_path / "backup", dataclasses.replace(TRAIN, weight_averaging=0.9, batch_size=32))
    assert resumed.optimizer.ema_momentum > 0


@pytest.mark.parametrize("batch_size", [2, 7, 128])
def test_batches_per_epoch_matches_the_dataset(shop, batch_size):
    from recommenders.features.sequences import to_dataset

    arrays = sessions_to_arrays(shop[0].head(600), TRAIN.max_length)
    for bucket in (False, True):
        dataset = to_dataset(arrays, batch_size, shuffle=True, seed=1, bucket_by_length=bucket)
        assert sum(1 for _ in dataset) == batches_per_epoch(arrays, batch_size, bucket_by_length=bucket)
