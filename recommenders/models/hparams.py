"""TensorBoard HParams for one training: its configuration's hyperparameters and results.

``recsys train`` (each of ``logs/retrieval`` and ``logs/ranking``) and every tuning trial
(``<project>/tensorboard/trial_<id>``) write the same session: the tunable config fields
under their field names, and the ``val_*`` metrics of the kept epoch plus ``epochs``. So
hand-run trainings and search trials line up in one HParams table and one Scalars view:
``tensorboard --logdir_spec run:runs/shop/logs,search:runs/tuning/retrieval/tensorboard``.

Which fields are hyperparameters is derived from the config dataclasses: every
bool/int/float/str field, except those a config class lists in ``NOT_TUNABLE``.

Example:

>>> from recommenders.models.config import RetrievalConfig, TrainConfig
>>> fields = tunable_fields(TrainConfig)
>>> fields["learning_rate"], "xla" in fields, "seed" in fields
(<class 'float'>, False, False)
>>> values = hparam_values(RetrievalConfig(lstm_units=96), TrainConfig())
>>> values["lstm_units"], values["repeat_head"], "epochs" in values
(96, True, False)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

SCALAR_TYPES = (bool, int, float, str)


def tunable_fields(config_class) -> dict[str, type]:
    """``{field name: type}`` of the fields a search may set: scalar fields not in ``NOT_TUNABLE``.

    A field whose default is ``None`` or a tuple (``deep_units``) is not a scalar and is
    left out.
    """
    not_tunable = set(getattr(config_class, "NOT_TUNABLE", ()))
    defaults = config_class()
    fields = {}
    for field in dataclasses.fields(config_class):
        value_type = type(getattr(defaults, field.name))
        if field.name not in not_tunable and value_type in SCALAR_TYPES:
            fields[field.name] = value_type
    return fields


def hparam_values(model_config, train_config) -> dict:
    """The tunable values of a model config and a train config, by field name."""
    return {name: getattr(config, name) for config in (model_config, train_config) for name in tunable_fields(type(config))}


def write_session(log_dir: str | Path, session_id: str, values: dict, metrics: dict, step: int) -> None:
    """Records one finished training as an HParams session: its values and its final metrics."""
    # TensorFlow loads here, not at import: config checks (tuning.space) use this module first.
    from tensorboard.plugins.hparams import api as hparams_api

    from recsys_base.tf_compat import tensorflow

    tf = tensorflow()
    with tf.summary.create_file_writer(str(log_dir)).as_default():
        hparams_api.hparams(values, trial_id=session_id)
        for name, value in metrics.items():
            tf.summary.scalar(name, value, step=step)
