"""keras-tuner oracles selected by name, with a trial budget and a wall-clock budget.

The wall-clock budget lives in the oracle, not in the tuner, because in distributed
tuning only the chief's oracle sees every worker: once the limit has passed it answers
the next trial request with keras-tuner's own "stop" (running trials finish normally),
so workers and the chief all shut down the way they do after ``max_trials``.

Example:

>>> import keras_tuner
>>> space = keras_tuner.HyperParameters()
>>> _ = space.Choice("embedding_dim", [32, 64])
>>> oracle = make_oracle("random", keras_tuner.Objective("val_HR@20", "max"), space, max_trials=5,
...                      time_limit_seconds=3600)
>>> type(oracle).__name__
'BudgetedRandomSearchOracle'
"""

from __future__ import annotations

import functools
import time

import keras_tuner
from keras_tuner.src.tuners.gridsearch import LinkedList

from recsys_base.errors import ConfigError
from tuning.config import TUNERS


class WallClockBudget:
    """Oracle mixin: after ``time_limit_seconds`` (from construction) no new trial starts.

    Example: ``type("Budgeted", (WallClockBudget, RandomSearchOracle), {})(objective=...,
    time_limit_seconds=600)``; :func:`make_oracle` builds these.
    """

    def __init__(self, *args, time_limit_seconds: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_limit_seconds = time_limit_seconds
        self.started_at = time.monotonic()

    def out_of_time(self) -> bool:
        """Whether the wall-clock budget is spent."""
        return self.time_limit_seconds is not None and time.monotonic() - self.started_at >= self.time_limit_seconds

    def create_trial(self, tuner_id):
        if self.out_of_time() and tuner_id not in self.ongoing_trials:
            # Capping max_trials at the trials so far makes the base class answer STOPPED
            # and do its own bookkeeping for the requesting tuner.
            self.max_trials = len(self.trials)
        return super().create_trial(tuner_id)


class ResumableGridSearchOracle(keras_tuner.oracles.GridSearchOracle):
    """The grid oracle, able to resume.

    keras-tuner 1.4.8's grid oracle keeps its place in the grid (the tried combinations
    in grid order, and the trials whose successor is still to be generated) only in
    memory, so a reloaded grid search stops at once. Both are rebuilt here from the
    reloaded trials: grid order is the oracle's own comparison of their values.

    Example: ``make_oracle("grid", ...)`` returns one (with the wall-clock budget).
    """

    def set_state(self, state):
        super().set_state(state)
        self._ordered_ids = LinkedList()
        by_grid_order = functools.cmp_to_key(
            lambda a, b: self._compare(self.trials[a].hyperparameters.values, self.trials[b].hyperparameters.values))
        for trial_id in sorted(self.trials, key=by_grid_order):
            self._ordered_ids.insert(trial_id)
        # Successors of tried combinations that exist already are skipped by populate_space.
        self._populate_next = list(self.end_order)


def _budgeted(oracle_class):
    return type(f"Budgeted{oracle_class.__name__}", (WallClockBudget, oracle_class), {})


ORACLES = dict(zip(TUNERS, (
    _budgeted(keras_tuner.oracles.RandomSearchOracle),
    _budgeted(keras_tuner.oracles.BayesianOptimizationOracle),
    _budgeted(keras_tuner.oracles.HyperbandOracle),
    _budgeted(ResumableGridSearchOracle),
)))


def make_oracle(name: str, objective: keras_tuner.Objective, hyperparameters: keras_tuner.HyperParameters,
                max_trials: int, max_epochs: int = 8, seed: int = 0,
                time_limit_seconds: float | None = None, max_retries_per_trial: int = 0,
                max_consecutive_failed_trials: int = 3):
    """The oracle called ``name`` (random, bayesian, hyperband, grid) searching ``hyperparameters``.

    Hyperband decides its own epochs per trial up to ``max_epochs``; it also stops after
    ``max_trials`` trials.
    """
    if name not in ORACLES:
        raise ConfigError(f"tuner must be one of {', '.join(ORACLES)}, got {name!r}")
    if max_trials < 1:
        raise ConfigError(f"max_trials must be at least 1, got {max_trials}")
    if time_limit_seconds is not None and time_limit_seconds <= 0:
        raise ConfigError(f"time limit must be positive seconds, got {time_limit_seconds}")
    common = dict(objective=objective, hyperparameters=hyperparameters, seed=seed, time_limit_seconds=time_limit_seconds,
                  max_retries_per_trial=max_retries_per_trial,
                  max_consecutive_failed_trials=max_consecutive_failed_trials,
                  # The space is declared in full up front; a trial asking for more is a bug.
                  allow_new_entries=False, tune_new_entries=False)
    if name == "hyperband":
        if max_epochs < 2:
            raise ConfigError(f"hyperband needs at least 2 epochs to allocate, got {max_epochs}")
        oracle = ORACLES[name](max_epochs=max_epochs, **common)
        oracle.max_trials = max_trials
        return oracle
    return ORACLES[name](max_trials=max_trials, **common)
