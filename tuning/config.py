"""What to tune, how, and within which budgets: checked before anything heavy loads.

Example:

>>> TuningConfig(kind="ranking", objective="mean_auc", max_trials=30).validate().trial_objective().metric
'val_mean_auc'
"""

from __future__ import annotations

import dataclasses

from recsys_base.errors import ConfigError
from tuning.objective import TrialObjective, parse_objective
from tuning.space import KINDS

# keras-tuner oracles by the names users pick them with (see tuning.oracles).
TUNERS = ("random", "bayesian", "hyperband", "grid")


@dataclasses.dataclass
class TuningConfig:
    """What to tune, how, and within which budgets.

    Multi-fidelity budget: trials train on the ``train_sessions`` most recent training
    sessions (``None``: all) and the retrieval objective scores at most
    ``max_validation_cases`` validation cases (a fixed random subset; ``None``: all), so a
    trial costs a fraction of a full training; the best configuration is then retrained
    on all the data (:func:`tuning.search.retrain_best`). :mod:`tuning.fidelity` measures
    how well such subsample scores rank configurations.

    Example:

    >>> TuningConfig(tuner="hyperband", time_limit_seconds=3600, space_file="space.yaml").tuner
    'hyperband'
    """

    kind: str = "retrieval"
    tuner: str = "random"
    objective: str | None = None  # None: HR@20 for retrieval, click_auc for ranking
    max_trials: int = 10
    time_limit_seconds: float | None = None
    max_validation_cases: int | None = 20_000
    train_sessions: int | None = None
    max_retries_per_trial: int = 0
    max_consecutive_failed_trials: int = 3
    seed: int = 0
    directory: str = "runs/tuning"
    project_name: str | None = None  # None: the kind
    overwrite: bool = False
    space_file: str | None = None

    def validate(self) -> TuningConfig:
        """Checks every field, the objective name included; returns ``self``."""
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.tuner not in TUNERS:
            raise ConfigError(f"tuner must be one of {', '.join(TUNERS)}, got {self.tuner!r}")
        if self.max_trials < 1:
            raise ConfigError(f"max_trials must be at least 1, got {self.max_trials}")
        if self.time_limit_seconds is not None and self.time_limit_seconds <= 0:
            raise ConfigError(f"time limit must be positive seconds, got {self.time_limit_seconds}")
        if self.max_validation_cases is not None and self.max_validation_cases < 1:
            raise ConfigError(f"max_validation_cases must be at least 1, got {self.max_validation_cases}")
        if self.train_sessions is not None and self.train_sessions < 1:
            raise ConfigError(f"train_sessions must be at least 1, got {self.train_sessions}")
        if self.max_retries_per_trial < 0 or self.max_consecutive_failed_trials < 1:
            raise ConfigError("max_retries_per_trial must be >= 0 and max_consecutive_failed_trials >= 1")
        self.trial_objective()
        return self

    def trial_objective(self) -> TrialObjective:
        """The objective parsed for ``kind`` (its default when ``objective`` is None)."""
        return parse_objective(self.kind, self.objective)
