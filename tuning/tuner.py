"""The keras-tuner ``Tuner`` for our tf-keras models: custom ``run_trial`` and model save/load.

keras-tuner 1.4.8 builds and type-checks Keras 3 models in its default ``run_trial``
and rejects tf-keras ones (keras-tuner issue 1039). Its documented way out is to
override ``run_trial`` (train and return the objective) and the model hooks; the oracle,
resume, retries and distribution then work unchanged.

Each trial's directory holds keras-tuner's ``trial.json``, the trained model (``model/``,
see :func:`recommenders.models.training.save_trained`) and ``recsys_trial.json`` (which
worker ran it, how long it took).

Hyperband warm start: a trial Hyperband promotes names its parent (``tuner/trial_id``)
and the epochs the parent trained (``tuner/initial_epoch``), as keras-tuner's
``HyperbandOracle`` documents for custom tuners. It starts from the parent's saved
weights and trains epochs ``initial_epoch`` to ``tuner/epochs`` only. The optimizer's
step counter starts at the parent's last step, so the per-epoch learning-rate decay and
the batch order continue where the parent stopped; Adam's moment estimates start afresh
(as in keras-tuner's own Hyperband, which reloads weights only). An interrupted search
reruns its interrupted trial from the parent's saved model again, so resuming still works.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import keras_tuner
import numpy as np
import pandas as pd

from recommenders.data.split import latest_sessions
from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.config import TrainConfig
from recommenders.models.hparams import write_session
from recommenders.models.projector import write_item_projector
from recommenders.models.training import (
    RANKING_MONITOR,
    RETRIEVAL_MONITOR,
    kept_epochs,
    load_trained,
    save_trained,
    saved_weights,
    train_ranking,
    train_retrieval,
)
from recommenders.models.validation import retrieval_metrics, validation_cases
from recsys_base.errors import ConfigError
from tuning import board
from tuning.objective import RANKING_OBJECTIVES, TrialObjective, ranking_metrics, with_objective
from tuning.space import configs_from_values

TRIAL_INFO_FILE = "recsys_trial.json"
MODEL_DIR = "model"
# Keys keras-tuner's Hyperband adds to a trial's values (tuner/bracket and tuner/round are only its bookkeeping).
HYPERBAND_EPOCHS = "tuner/epochs"
HYPERBAND_INITIAL_EPOCH = "tuner/initial_epoch"
HYPERBAND_PARENT = "tuner/trial_id"


@dataclasses.dataclass
class TuningData:
    """What every trial trains and scores on, prepared once per search.

    Example (a retrieval objective scores trials on validation next-item cases; trials
    train on the 200 latest training sessions):

    >>> from recommenders.data.dataset import prepare
    >>> from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
    >>> from tuning.objective import parse_objective
    >>> prepared = prepare(generate_shop(SyntheticShopConfig.small(n_sessions=500)))
    >>> data = TuningData.build(prepared, parse_objective("retrieval"), max_cases=100, train_sessions=200)
    >>> data.vocab.num_items, len(data.cases), data.train["session_id"].nunique()
    (300, 100, 200)
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    catalog: pd.DataFrame
    vocab: FeatureVocabularies
    cases: object | None  # validation next-item cases (retrieval only)

    @classmethod
    def build(cls, prepared, objective: TrialObjective, max_cases: int | None = None, seed: int = 0,
              train_sessions: int | None = None) -> TuningData:
        """The ``train_sessions`` latest training sessions (all for ``None``); vocabularies from
        the whole training split, so trials and the full retrain share one item space;
        validation cases for a retrieval objective."""
        cases = validation_cases(prepared.validation, max_cases, seed) if objective.kind == "retrieval" else None
        return cls(latest_sessions(prepared.train, train_sessions), prepared.validation, prepared.catalog,
                   FeatureVocabularies.build(prepared.train, prepared.catalog), cases)


class SessionModelTuner(keras_tuner.Tuner):
    """Tunes a :class:`SessionRetrievalModel` or :class:`MultiTaskRanker` configuration.

    A trial's hyperparameter values overwrite fields of ``model_config`` and
    ``train_config``; the trial trains with the project's own ``train_*`` function
    (early stopping included), is scored on the validation split, and reports the
    objective plus the other validation metrics and ``epochs``.

    Usage (:func:`tuning.search.build_tuner` assembles all of this from a TuningConfig;
    ``search`` trains a model per trial)::

        objective, space = parse_objective("retrieval"), load_space("retrieval")
        oracle = make_oracle("random", keras_tuner.Objective(objective.metric, objective.direction),
                             to_hyperparameters("retrieval", space), max_trials=10)
        tuner = SessionModelTuner(oracle, "retrieval", objective, space,
                                  directory="runs/tuning", project_name="retrieval")
        tuner.search(TuningData.build(load_prepared("data/shop"), objective))

    Keyword arguments of ``search`` after the data go to every trial's training as in
    keras-tuner (``callbacks=[...]``: Keras callbacks, after the project's own).
    """

    def __init__(self, oracle, kind: str, objective: TrialObjective, space: dict, model_config=None,
                 train_config: TrainConfig | None = None, **kwargs):
        super().__init__(oracle=oracle, hypermodel=None, **kwargs)
        self.kind, self.objective, self.space = kind, objective, space
        self.model_config, self.train_config = model_config, train_config or TrainConfig()

    @property
    def tensorboard_dir(self) -> Path:
        return Path(self.project_dir) / "tensorboard"

    def trial_configs(self, values: dict):
        """``(model config, train config)`` for a trial's hyperparameter values (Hyperband's ``tuner/epochs`` included)."""
        model_config, train_config = configs_from_values(self.kind, values, self.model_config, self.train_config)
        if HYPERBAND_EPOCHS in values:
            train_config = dataclasses.replace(train_config, epochs=int(values[HYPERBAND_EPOCHS]))
        return model_config, train_config

    def on_search_begin(self):
        metrics = (list(dict.fromkeys([f"val_HR@{self.objective.k}", f"val_MRR@{self.objective.k}", self.objective.metric]))
                   if self.kind == "retrieval" else [f"val_{name}" for name in RANKING_OBJECTIVES])
        board.write_experiment(self.tensorboard_dir, self.kind, self.space, metrics + ["epochs"])

    def run_trial(self, trial, data: TuningData, callbacks=()):
        values = trial.hyperparameters.values
        try:
            model_config, train_config = self.trial_configs(values)
        except ConfigError as exc:
            # The same values would fail again: no retry.
            raise keras_tuner.errors.FailedTrialError(str(exc)) from exc
        started = time.perf_counter()
        log_dir = self.tensorboard_dir / f"trial_{trial.trial_id}"
        warm_start = {}
        if values.get(HYPERBAND_PARENT) is not None:
            parent = Path(self.get_trial_dir(values[HYPERBAND_PARENT])) / MODEL_DIR
            warm_start = {"initial_weights": saved_weights(parent, data.train, train_config.max_length),
                          "initial_epoch": int(values[HYPERBAND_INITIAL_EPOCH])}
        train, monitor = (train_retrieval, RETRIEVAL_MONITOR) if self.kind == "retrieval" else (train_ranking, RANKING_MONITOR)
        model, history = train(data.train, data.validation, data.catalog, model_config, train_config, vocab=data.vocab,
                               log_dir=log_dir, extra_callbacks=list(callbacks), **warm_start)
        if self.kind == "retrieval":
            metrics = with_objective(self.objective,
                                     retrieval_metrics(model, data.cases, (self.objective.k,), train_config.max_length))
            write_item_projector(log_dir, model)
        else:
            metrics = ranking_metrics(model, data.validation, train_config.max_length)
        if not np.isfinite(metrics[self.objective.metric]):
            raise keras_tuner.errors.FailedTrialError(f"{self.objective.metric} is {metrics[self.objective.metric]}")
        metrics["epochs"] = kept_epochs(history, train_config, monitor)
        self.save_model(trial.trial_id, model)
        seconds = time.perf_counter() - started
        write_session(log_dir, trial.trial_id, {k: v for k, v in values.items() if k in self.space},
                      metrics, step=metrics["epochs"])
        info = {"tuner_id": self.tuner_id, "seconds": round(seconds, 3)}
        (Path(self.get_trial_dir(trial.trial_id)) / TRIAL_INFO_FILE).write_text(json.dumps(info))
        return metrics

    def save_model(self, trial_id, model, step=0):
        save_trained(model, Path(self.get_trial_dir(trial_id)) / MODEL_DIR)

    def load_model(self, trial):
        return load_trained(Path(self.get_trial_dir(trial.trial_id)) / MODEL_DIR)
