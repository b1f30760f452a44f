"""TensorBoard HParams dashboard: the search space, declared once per search.

Each trial then records its values and metrics as an HParams session in the format
``recsys train`` uses too (:func:`recommenders.models.hparams.write_session`).

Layout under ``<project>/tensorboard/``: the experiment config at the top, and one
directory per trial holding its hyperparameters and objective metrics (the HParams
session) plus the ``train/`` and ``validation/`` training curves that ``fit`` writes
there; a retrieval trial's ``train/`` also holds its item embeddings for the Projector
tab (:func:`recommenders.models.projector.write_item_projector`), so the best trial's
can be opened next to its curves. Open it with ``tensorboard --logdir <project>/tensorboard``.
"""

from __future__ import annotations

from pathlib import Path

from tensorboard.plugins.hparams import api as hparams_api

from recsys_base.tf_compat import tensorflow
from tuning.space import Choice, Fixed, field_type

tf = tensorflow()


def hparam_domains(kind: str, space: dict) -> list:
    """One ``hparams_api.HParam`` per space entry, with its discrete values or interval."""
    hparams = []
    for name, spec in space.items():
        if isinstance(spec, Fixed):
            domain = hparams_api.Discrete([spec.value])
        elif isinstance(spec, Choice):
            domain = hparams_api.Discrete(list(spec.values))
        elif field_type(kind, name) is int:
            domain = hparams_api.IntInterval(int(spec.low), int(spec.high))
        else:
            domain = hparams_api.RealInterval(float(spec.low), float(spec.high))
        hparams.append(hparams_api.HParam(name, domain))
    return hparams


def write_experiment(log_dir: str | Path, kind: str, space: dict, metric_names: list[str]) -> None:
    """Declares the experiment (hyperparameters and metrics columns) for the HParams dashboard."""
    with tf.summary.create_file_writer(str(log_dir)).as_default():
        hparams_api.hparams_config(
            hparams=hparam_domains(kind, space),
            metrics=[hparams_api.Metric(name, display_name=name) for name in metric_names],
        )
