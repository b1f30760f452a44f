"""Checks that need two replicas on one machine: run as a script, in a fresh process.

The CPU must be split into logical devices before TensorFlow initializes them, which a
test process that already ran TensorFlow cannot do; ``test_distribute.py`` runs this
script and asserts on the JSON it prints last. Usage::

    python tests/models/mirrored_checks.py <prepared data directory> <scratch directory>
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import recsys_base  # noqa: F401  (selects Keras 2 before anything imports TensorFlow)
from recommenders.models.distribute import split_cpu

split_cpu(2)

import numpy as np  # noqa: E402

from recommenders.features.sequences import batches_per_epoch, sessions_to_arrays  # noqa: E402
from recommenders.features.vocabulary import FeatureVocabularies  # noqa: E402
from recommenders.models.config import RetrievalConfig  # noqa: E402
from recommenders.models.distribute import replica_share, share_of_mean, strategy_for  # noqa: E402
from recommenders.models.retrieval import SessionRetrievalModel  # noqa: E402
from recommenders.models.training import load_trained, save_trained  # noqa: E402
from recsys_base.tf_compat import tensorflow  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, as pytest imports its packages
from reliability.test_training_faults import TRAIN, assert_resumes_exactly, short_sessions  # noqa: E402

tf = tensorflow()

# Every loss term decomposes over positions here (no dropout, the exact catalog softmax),
# so one step on 2 replicas must match one step on one device up to float rounding; the
# large l2 makes a regularization gradient counted twice visible.
ONE_STEP_MODEL = RetrievalConfig(embedding_dim=8, feature_dim=4, lstm_units=8, output_dim=8, dropout=0.0,
                                 negatives="catalog", l2=0.05)


def one_sgd_step(train_events, catalog) -> dict:
    """One SGD step on the same global batch of 32 sessions, on one device and on 2 replicas."""
    features = {name: values[:32] for name, values in sessions_to_arrays(train_events, 20).features().items()}
    vocab = FeatureVocabularies.build(train_events, catalog)

    def step(strategy, initial_weights=None):
        with strategy.scope():
            model = SessionRetrievalModel(vocab, ONE_STEP_MODEL)
            model.compute_loss(features, training=True)  # creates every variable
            if initial_weights is not None:
                model.set_weights(initial_weights)
            initial = model.get_weights()
            before = [variable.numpy() for variable in model.trainable_variables]
            model.compile(tf.keras.optimizers.SGD(0.001))
            history = model.fit(tf.data.Dataset.from_tensors(features), epochs=1, verbose=0)
        after = [variable.numpy() for variable in model.trainable_variables]
        return initial, before, after, {name: values[0] for name, values in history.history.items()}

    initial, before, single, single_logs = step(strategy_for("none"))
    mirrored = strategy_for("mirrored")
    _, _, distributed, mirrored_logs = step(mirrored, initial)
    # Per variable: the repeat gate's loss is a mean, small next to the summed losses, and
    # only the gate's own variables would show it aggregated wrongly. A few gradients are 0
    # but for rounding (biases a softmax cancels), hence the floor on the update's size.
    errors = [np.linalg.norm(two - one) / max(np.linalg.norm(one - start), 1e-6)
              for start, one, two in zip(before, single, distributed)]
    return {"replicas": mirrored.num_replicas_in_sync, "max_update_relative_error": float(max(errors)),
            "single_logs": single_logs, "mirrored_logs": mirrored_logs}


def shares() -> dict:
    """The loss shares on 2 replicas: replica 0 sums 6.0 over 1 label, replica 1 sums 2.0 over 3."""

    def per_replica():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        total, count = tf.gather([6.0, 2.0], replica), tf.gather([1, 3], replica)
        return share_of_mean(total, count), replica_share(tf.constant(6.0))

    mirrored = strategy_for("mirrored")
    mean_shares, regularization_shares = mirrored.run(per_replica)
    return {name: [float(value) for value in mirrored.experimental_local_results(result)]
            for name, result in (("mean_shares", mean_shares), ("regularization_shares", regularization_shares))}


def resume_and_save(data_dir, scratch: Path) -> dict:
    """A mirrored run with weight averaging killed mid-epoch resumes exactly; saved and loaded
    back, it scores the same. (Batches of 32: the average spans at most a tenth of an epoch.)"""
    shop = short_sessions(data_dir)
    train_config = dataclasses.replace(TRAIN, distribute="mirrored", weight_averaging=0.9, batch_size=32)
    resumed = assert_resumes_exactly(shop, scratch / "backup", train_config)
    loaded = load_trained(save_trained(resumed, scratch / "saved"))
    features = sessions_to_arrays(shop[1], TRAIN.max_length).features()
    return {"resumed_iterations": int(resumed.optimizer.iterations.numpy()),
            "steps_per_epoch": batches_per_epoch(sessions_to_arrays(shop[0], train_config.max_length), train_config.batch_size,
                                                 bucket_by_length=True),
            "averaging_momentum": float(resumed.optimizer.ema_momentum),
            "saved_query_max_difference": float(np.max(np.abs(resumed(features) - loaded(features)))),
            "saved_catalog_max_difference": float(np.max(np.abs(resumed.catalog_embeddings() - loaded.catalog_embeddings())))}


def main(data_dir: str, scratch: str) -> None:
    from recommenders.data.dataset import load_prepared

    prepared = load_prepared(data_dir)
    results = {"one_step": one_sgd_step(prepared.train, prepared.catalog), "shares": shares(),
               "resume": resume_and_save(data_dir, Path(scratch))}
    print(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:])
