"""The keras-tuner ``Tuner`` for our tf-keras models: custom ``run_trial`` and model save/load.

keras-tuner 1.4.8 builds and type-checks Keras 3 models in its default ``run_trial``
and rejects tf-keras ones (keras-tuner issue 1039). Its documented way out is to
override ``run_trial`` (train and return the objective) and the model hooks; the oracle,
resume, retries and distribution then work unchanged.

Each trial's directory holds keras-tuner's ``trial.json``, the trained model (``model/``,
see :func:`recommenders.models.training.save_trained`) and ``recsys_trial.json`` (which
worker ran it, how long it took).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import keras_tuner
import numpy as np
import pandas as pd

from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.config import TrainConfig
from recommenders.models.projector import write_item_projector
from recommenders.models.training import RANKING_MONITOR, RETRIEVAL_MONITOR, load_trained, save_trained, train_ranking, train_retrieval
from recsys_base.errors import ConfigError
from tuning import board
from tuning.objective import RANKING_OBJECTIVES, TrialObjective, ranking_metrics, retrieval_metrics, validation_cases
from tuning.space import configs_from_values

TRIAL_INFO_FILE = "recsys_trial.json"
MODEL_DIR = "model"
# Keys keras-tuner's Hyperband adds to a trial's values; only tuner/epochs is used (no warm start).
HYPERBAND_EPOCHS = "tuner/epochs"


@dataclasses.dataclass
class TuningData:
    """What every trial trains and scores on, prepared once per search.

    Example (a retrieval objective scores trials on validation next-item cases):

    >>> from recommenders.data.dataset import prepare
    >>> from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
    >>> from tuning.objective import parse_objective
    >>> prepared = prepare(generate_shop(SyntheticShopConfig.small(n_sessions=500)))
    >>> data = TuningData.build(prepared, parse_objective("retrieval"), max_cases=100)
    >>> data.vocab.num_items, len(data.cases)
    (300, 100)
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    catalog: pd.DataFrame
    vocab: FeatureVocabularies
    cases: object | None  # validation next-item cases (retrieval only)

    @classmethod
    def build(cls, prepared, objective: TrialObjective, max_cases: int | None = None, seed: int = 0) -> TuningData:
        """Vocabularies from the training split; validation cases for a retrieval objective."""
        cases = validation_cases(prepared.validation, max_cases, seed) if objective.kind == "retrieval" else None
        return cls(prepared.train, prepared.validation, prepared.catalog,
                   FeatureVocabularies.build(prepared.train, prepared.catalog), cases)


def trained_epochs(history, train_config: TrainConfig, monitor: str) -> int:
    """Epochs that produced the kept weights: the best monitored epoch under early stopping."""
    curve = history.history.get(monitor)
    if train_config.early_stopping_patience and curve:
        return int(np.nanargmax(curve)) + 1
    return len(history.epoch)


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
        """``(model config, train config)`` for a trial's hyperparameter values."""
        model_config, train_config = configs_from_values(self.kind, values, self.model_config, self.train_config)
        if HYPERBAND_EPOCHS in values:
            train_config = dataclasses.replace(train_config, epochs=int(values[HYPERBAND_EPOCHS]))
        return model_config, train_config

    def on_search_begin(self):
        metrics = ([f"val_HR@{self.objective.k}", f"val_MRR@{self.objective.k}"] if self.kind == "retrieval"
                   else [f"val_{name}" for name in RANKING_OBJECTIVES])
        board.write_experiment(self.tensorboard_dir, self.kind, self.space, metrics + ["epochs"])

    def run_trial(self, trial, data: TuningData):
        values = trial.hyperparameters.values
        try:
            model_config, train_config = self.trial_configs(values)
        except ConfigError as exc:
            # The same values would fail again: no retry.
            raise keras_tuner.errors.FailedTrialError(str(exc)) from exc
        started = time.perf_counter()
        log_dir = self.tensorboard_dir / f"trial_{trial.trial_id}"
        if self.kind == "retrieval":
            model, history = train_retrieval(data.train, data.validation, data.catalog, model_config, train_config,
                                             vocab=data.vocab, log_dir=log_dir)
            metrics = retrieval_metrics(model, data.cases, self.objective.k, train_config.max_length)
            monitor = RETRIEVAL_MONITOR
            write_item_projector(log_dir, model)
        else:
            model, history = train_ranking(data.train, data.validation, data.catalog, model_config, train_config,
                                           vocab=data.vocab, log_dir=log_dir)
            metrics = ranking_metrics(model, data.validation, train_config.max_length)
            monitor = RANKING_MONITOR
        if not np.isfinite(metrics[self.objective.metric]):
            raise keras_tuner.errors.FailedTrialError(f"{self.objective.metric} is {metrics[self.objective.metric]}")
        metrics["epochs"] = trained_epochs(history, train_config, monitor)
        self.save_model(trial.trial_id, model)
        seconds = time.perf_counter() - started
        board.write_trial(log_dir, trial.trial_id, {k: v for k, v in values.items() if k in self.space},
                          metrics, step=metrics["epochs"])
        info = {"tuner_id": self.tuner_id, "seconds": round(seconds, 3)}
        (Path(self.get_trial_dir(trial.trial_id)) / TRIAL_INFO_FILE).write_text(json.dumps(info))
        return metrics

    def save_model(self, trial_id, model, step=0):
        save_trained(model, Path(self.get_trial_dir(trial_id)) / MODEL_DIR)

    def load_model(self, trial):
        return load_trained(Path(self.get_trial_dir(trial.trial_id)) / MODEL_DIR)
