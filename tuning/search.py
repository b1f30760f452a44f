"""A whole tuning run: search, leaderboard, retrain the best trial on all training sessions, export.

One model kind is tuned per search; the export pairs it with the other kind trained with
its default configuration (at the same base training settings), because every
SavedModel version holds a retrieval, a ranking and a recommend model.

Usage (every trial trains a model: minutes to hours)::

    config = TuningConfig(kind="retrieval", tuner="bayesian", max_trials=20, time_limit_seconds=3600)
    result = run_search(load_prepared("data/shop"), config)
    print(result.leaderboard.head())
    retrain_and_export(result, load_prepared("data/shop"), "saved_models")
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import keras_tuner
import pandas as pd

from recommenders.models.config import RankingConfig, RetrievalConfig, TrainConfig
from recommenders.models.hparams import hparam_values
from recommenders.models.training import (
    RANKING_MONITOR,
    RETRIEVAL_MONITOR,
    count_served_tables,
    kept_epochs,
    train_ranking,
    train_retrieval,
)
from recsys_base.errors import ConfigError, DataError
from tuning.config import TuningConfig
from tuning.leaderboard import failure_reason, leaderboard
from tuning.objective import TrialObjective
from tuning.oracles import make_oracle
from tuning.space import MODEL_CONFIGS, Choice, Fixed, anchored, field_type, load_space
from tuning.tuner import SessionModelTuner, TuningData

# keras-tuner's distributed-tuning variables (its documented way to run a chief and workers).
ORACLE_IP, ORACLE_PORT, TUNER_ID = "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"


@dataclasses.dataclass
class SearchResult:
    """The finished search: its tuner (with the oracle) and, unless a worker, the leaderboard.

    Usage (``run_search`` trains a model per trial)::

        result = run_search(prepared, TuningConfig(max_trials=5))
        result.best_trial().hyperparameters.values["learning_rate"]  # e.g. 0.0031
    """

    config: TuningConfig
    objective: TrialObjective
    tuner: SessionModelTuner
    role: str  # "single", "chief" or "worker"
    leaderboard: pd.DataFrame | None

    def best_trial(self) -> keras_tuner.engine.trial.Trial:
        """The best completed trial (its values, metrics and status) by the objective."""
        completed = self.leaderboard[self.leaderboard["status"] == "COMPLETED"] if self.leaderboard is not None else []
        if len(completed) == 0:
            raise DataError("no trial completed, so there is no best configuration (see the leaderboard reasons)")
        trial_id = completed.iloc[0]["trial_id"]
        return keras_tuner.engine.trial.Trial.load(str(Path(self.tuner.get_trial_dir(trial_id)) / "trial.json"))


def to_hyperparameters(kind: str, space: dict, defaults: dict | None = None) -> keras_tuner.HyperParameters:
    """The space as keras-tuner ``HyperParameters`` (Fixed, Choice, Int or Float).

    A choice between ``True`` and ``False`` becomes a ``Boolean``. Each entry's default is
    its value in ``defaults`` (which the entry must hold, see :func:`tuning.space.anchored`),
    else keras-tuner's (the first value, the minimum).

    >>> from tuning.space import Range
    >>> hp = to_hyperparameters("retrieval", {"learning_rate": Range(1e-3, 1e-2, sampling="log"),
    ...     "embedding_dim": Choice((32, 64)), "l2_normalize": Choice((True, False)), "dropout": Fixed(0.1)},
    ...     defaults={"embedding_dim": 64})
    >>> [type(entry).__name__ for entry in hp.space], hp.values
    (['Float', 'Choice', 'Boolean', 'Fixed'], {'learning_rate': 0.001, 'embedding_dim': 64, 'l2_normalize': False, 'dropout': 0.1})
    """
    defaults = defaults or {}
    hp = keras_tuner.HyperParameters()
    for name, spec in space.items():
        default = {"default": defaults[name]} if name in defaults else {}
        if isinstance(spec, Choice) and field_type(kind, name) is bool and len(set(spec.values)) == 2:
            # keras-tuner's Choice turns booleans into 0/1; Boolean keeps them booleans.
            hp.Boolean(name, **default)
        elif isinstance(spec, Choice) and len(set(spec.values)) == 1:
            hp.Fixed(name, spec.values[0])
        elif isinstance(spec, Fixed):
            hp.Fixed(name, spec.value)
        elif isinstance(spec, Choice):
            hp.Choice(name, list(spec.values), **default)
        elif field_type(kind, name) is int:
            hp.Int(name, int(spec.low), int(spec.high), step=int(spec.step) if spec.step else None, sampling=spec.sampling,
                   **default)
        else:
            hp.Float(name, spec.low, spec.high, step=spec.step, sampling=spec.sampling, **default)
    return hp


def role() -> str:
    """This process's part in keras-tuner's distributed mode, from its ``KERASTUNER_*`` variables:
    "single" without an oracle address, else "chief" when the tuner id says so, else "worker"."""
    if ORACLE_IP not in os.environ:
        return "single"
    for needed in (ORACLE_PORT, TUNER_ID):
        if needed not in os.environ:
            raise ConfigError(f"{ORACLE_IP} is set but {needed} is not: distributed tuning needs "
                              f"{ORACLE_IP}, {ORACLE_PORT} and {TUNER_ID}")
    return "chief" if "chief" in os.environ[TUNER_ID] else "worker"


def build_tuner(config: TuningConfig, model_config=None, train_config: TrainConfig | None = None) -> SessionModelTuner:
    """The tuner for ``config`` (validated here, where it enters); reloads an existing project unless ``overwrite``.

    ``model_config`` and ``train_config`` are the known-good configuration: the space is
    widened to hold their values, and they are the first trial; a trial's values overwrite
    their fields.
    """
    objective = config.validate().trial_objective()
    # A trial's per-epoch validation (early stopping) scores as many cases as its objective does.
    train_config = train_config or TrainConfig()
    train_config = dataclasses.replace(train_config,
                                       max_validation_cases=config.max_validation_cases or train_config.max_validation_cases)
    known = hparam_values(model_config or MODEL_CONFIGS[config.kind](), train_config)
    space = anchored(load_space(config.kind, config.space_file), known)
    oracle = make_oracle(config.tuner, keras_tuner.Objective(objective.metric, objective.direction),
                         to_hyperparameters(config.kind, space, known), max_trials=config.max_trials,
                         max_epochs=train_config.epochs, seed=config.seed,
                         time_limit_seconds=config.time_limit_seconds,
                         max_retries_per_trial=config.max_retries_per_trial,
                         max_consecutive_failed_trials=config.max_consecutive_failed_trials)
    return SessionModelTuner(oracle, config.kind, objective, space, model_config, train_config,
                             directory=config.directory, project_name=config.project_name or config.kind,
                             overwrite=config.overwrite)


def run_search(prepared, config: TuningConfig, model_config=None, train_config: TrainConfig | None = None) -> SearchResult:
    """Runs (or resumes) the search and returns it with its leaderboard.

    A chief only serves the oracle and returns when every worker is done; a worker runs
    trials and leaves the leaderboard to the chief.
    """
    this_role = role()  # first: a half-set KERASTUNER_* environment is a ConfigError, not a crash
    tuner = build_tuner(config, model_config, train_config)
    data = None if this_role == "chief" else TuningData.build(prepared, tuner.objective, config.max_validation_cases,
                                                              config.seed, config.train_sessions)
    try:
        tuner.search(data)
    except RuntimeError as exc:
        # keras-tuner's oracle ends the search this way after max_consecutive_failed_trials.
        if "consecutive failures" not in str(exc):
            raise
        raise ConfigError(f"search stopped after {config.max_consecutive_failed_trials} consecutive failed "
                          f"trials; last reason: {failure_reason(str(exc))}") from None
    table = None if this_role == "worker" else leaderboard(tuner.project_dir, tuner.objective.metric,
                                                           tuner.objective.direction)
    return SearchResult(config, tuner.objective, tuner, this_role, table)


def best_configs(result: SearchResult, epochs: int | None = None):
    """``(model config, train config)`` of the best trial, for a full training of up to ``epochs``
    (``None``: the base train config's) with early stopping, not Hyperband's epochs."""
    values = {k: v for k, v in result.best_trial().hyperparameters.values.items() if not k.startswith("tuner/")}
    model_config, train_config = result.tuner.trial_configs(values)
    return model_config, dataclasses.replace(train_config, epochs=epochs or train_config.epochs)


def retrain_best(result: SearchResult, prepared, epochs: int | None = None, **fit_kwargs):
    """Trains the best trial's configuration on the whole training split: ``(model, history)``.

    The full-fidelity step after a search whose trials saw a subsample
    (``TuningConfig.train_sessions``): up to ``epochs`` with early stopping on validation,
    as any ``recsys train``, with the best trial's values. ``fit_kwargs`` go to
    :func:`recommenders.models.training.fit` (``backup_dir`` makes it resumable).
    """
    model_config, train_config = best_configs(result, epochs)
    train = train_retrieval if result.config.kind == "retrieval" else train_ranking
    return train(prepared.train, prepared.validation, prepared.catalog, model_config, train_config, **fit_kwargs)


def retrain_and_export(result: SearchResult, prepared, export_dir: str | Path, version: int | None = None,
                       other_model_config=None) -> dict:
    """Retrains the best trial on the whole training split (:func:`retrain_best`), pairs it
    with a model of the other kind (``other_model_config``, default: that kind's defaults)
    trained the same way, and exports both as the next SavedModel version. Returns
    ``{model name: version directory}``.

    Both train as ``recsys train`` does: up to the search's base epochs, early stopping on
    the validation split. Not on train + validation for the best trial's epoch count: a
    trial's count was learned on its subsample (``TuningConfig.train_sessions``), and the
    fusion gate must be fitted on sessions its neighbour tables were not counted from
    (``recommenders/models/fusion.py``).
    """
    from recommenders.models.export import export_models

    best, tuner = result.best_trial(), result.tuner
    tuned, history = retrain_best(result, prepared)
    monitor = RETRIEVAL_MONITOR if result.config.kind == "retrieval" else RANKING_MONITOR
    epochs = kept_epochs(history, tuner.train_config, monitor)
    vocab = tuned.vocab
    if result.config.kind == "retrieval":
        other, _ = train_ranking(prepared.train, prepared.validation, prepared.catalog,
                                 other_model_config or RankingConfig(), tuner.train_config, vocab=vocab)
        retrieval, ranking = tuned, other
    else:
        other, _ = train_retrieval(prepared.train, prepared.validation, prepared.catalog,
                                   other_model_config or RetrievalConfig(), tuner.train_config, vocab=vocab)
        retrieval, ranking = other, tuned
    # Nothing else is fitted on validation here: serve tables that also count it, as a trained run does.
    served_events = pd.concat([prepared.train, prepared.validation], ignore_index=True)
    for model in (retrieval, ranking):
        count_served_tables(model, served_events)
    metadata = {"tuning": {"kind": result.config.kind, "objective": result.objective.metric,
                           "validation_score": float(best.score), "trial_id": best.trial_id,
                           "hyperparameters": dict(best.hyperparameters.values), "epochs": epochs}}
    return export_models(retrieval, ranking, export_dir, version=version, metadata=metadata)
