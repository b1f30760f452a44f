"""keras-tuner oracles selected by name, with a trial budget and a wall-clock budget,
whose first trial is the known-good configuration (:class:`DefaultsFirst`).

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

import itertools
import time

import keras_tuner

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


class DefaultsFirst:
    """Oracle mixin: the first trial runs every hyperparameter's default, the known-good
    configuration (:func:`tuning.search.build_tuner` sets the defaults to the base config's
    values), so the best trial can only match or beat it on validation.

    Grid search starts there by itself; random, Bayesian and Hyperband draw their first
    values at random, so this replaces the drawn values of the first trial (Hyperband's
    ``tuner/*`` entries stay). Only public oracle API is used: ``populate_space``, the
    method keras-tuner documents for subclasses, and the ``hyperparameters`` / ``trials``.

    Example: ``type("Budgeted", (DefaultsFirst, RandomSearchOracle), {})(objective=...)``;
    :func:`make_oracle` builds these.
    """

    def populate_space(self, trial_id):
        response = super().populate_space(trial_id)
        if not self.trials and response.get("values"):
            defaults = {hp.name: hp.default for hp in self.hyperparameters.space}
            response = {**response, "values": {**response["values"], **defaults}}
        return response


class ResumableGridSearchOracle(keras_tuner.oracles.GridSearchOracle):
    """The grid oracle, able to resume: the next combination is the first untried one in grid order.

    keras-tuner 1.4.8's grid oracle keeps its place in the grid (a linked list of tried
    combinations and a queue of trials whose successor is still to be generated) only in
    memory, so a reloaded grid search stops at once; rebuilding that state would mean
    writing its private attributes. Instead ``populate_space`` (the public override point)
    is computed from the trials alone, which keras-tuner saves and reloads: combinations
    in keras-tuner's own grid order (each hyperparameter's default first, then its
    ``values``; the last one varies fastest), skipping those already tried or running.
    Conditional hyperparameters are not supported (the spaces here have none).

    Example: ``make_oracle("grid", ...)`` returns one (with the wall-clock budget).
    """

    def populate_space(self, trial_id):
        tried = [trial.hyperparameters.values for trial in self.trials.values()]
        space = self.hyperparameters.space
        orders = [[hp.default, *(value for value in hp.values if value != hp.default)] for hp in space]
        for combination in itertools.product(*orders):
            values = {hp.name: value for hp, value in zip(space, combination)}
            if values not in tried:
                return {"status": keras_tuner.engine.trial.TrialStatus.RUNNING, "values": values}
        return {"status": keras_tuner.engine.trial.TrialStatus.STOPPED, "values": None}


def _budgeted(oracle_class):
    return type(f"Budgeted{oracle_class.__name__}", (WallClockBudget, DefaultsFirst, oracle_class), {})


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

    Hyperband decides its own epochs per trial up to ``max_epochs`` and repeats its brackets
    (``hyperband_iterations``) until ``max_trials`` trials or the time limit stop it: one
    round of brackets is only about ``3 * log3(max_epochs)`` trials, far below a typical budget.
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
        oracle = ORACLES[name](max_epochs=max_epochs, hyperband_iterations=max_trials, **common)
        oracle.max_trials = max_trials
        return oracle
    return ORACLES[name](max_trials=max_trials, **common)
