"""What a trial is judged by, with an explicit direction, measured on the validation split.

Retrieval: ``HR@K``, ``MRR@K`` or their sum ``HR@K+MRR@K`` from the project's evaluation
harness on next-item cases of the validation sessions, through the same ``retrieve``
signature that is exported (:func:`recommenders.models.validation.retrieval_metrics`).
The sum is for searches that must improve both at once: a trial that buys hit rate with
a worse top of the list (or the reverse) does not win by it. Ranking: validation AUC of one task (``click_auc``, ``cart_auc``,
``purchase_auc``) or their plain mean (``mean_auc``); the mean is deliberately not
weighted by the tuned task weights, or changing them would move the yardstick.

Example:

>>> objective = parse_objective("retrieval", "MRR@20")
>>> objective.metric, objective.direction, objective.k
('val_MRR@20', 'max', 20)
>>> with_objective(parse_objective("retrieval", "HR@20+MRR@20"), {"val_HR@20": 0.5, "val_MRR@20": 0.25})
{'val_HR@20': 0.5, 'val_MRR@20': 0.25, 'val_HR@20+MRR@20': 0.75}
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd

from recommenders.models.config import RANKING_TASKS
from recsys_base.errors import ConfigError

# What a ranking trial may be judged by: one task's validation AUC, or their mean.
RANKING_OBJECTIVES = (*(f"{task}_auc" for task in RANKING_TASKS), "mean_auc")
DEFAULT_OBJECTIVES = {"retrieval": "HR@20", "ranking": "click_auc"}
_RETRIEVAL = re.compile(r"^(HR|MRR)@([1-9][0-9]*)$|^HR@([1-9][0-9]*)\+MRR@\3$")


@dataclasses.dataclass(frozen=True)
class TrialObjective:
    """The objective metric name (as keras-tuner records it), its direction and, for retrieval, K.

    Example:

    >>> TrialObjective("ranking", "mean_auc").metric
    'val_mean_auc'
    """

    kind: str
    name: str  # as the user wrote it, e.g. "HR@20"
    k: int | None = None
    direction: str = "max"

    @property
    def metric(self) -> str:
        return f"val_{self.name}"


def parse_objective(kind: str, name: str | None = None) -> TrialObjective:
    """Validates an objective name for ``kind``; ``None`` picks the kind's default."""
    name = name or DEFAULT_OBJECTIVES.get(kind, "")
    if kind == "retrieval":
        match = _RETRIEVAL.match(name)
        if match:
            return TrialObjective(kind, name, k=int(match.group(2) or match.group(3)))
        raise ConfigError(f"retrieval objective must be HR@K, MRR@K or HR@K+MRR@K (e.g. HR@20), got {name!r}")
    if kind == "ranking":
        if name in RANKING_OBJECTIVES:
            return TrialObjective(kind, name)
        raise ConfigError(f"ranking objective must be one of {', '.join(RANKING_OBJECTIVES)}, got {name!r}")
    raise ConfigError(f"model kind must be retrieval or ranking, got {kind!r}")


def with_objective(objective: TrialObjective, metrics: dict[str, float]) -> dict[str, float]:
    """``metrics`` with the objective's value added when it is a sum of two of them."""
    if objective.metric in metrics:
        return metrics
    k = objective.k
    return {**metrics, objective.metric: metrics[f"val_HR@{k}"] + metrics[f"val_MRR@{k}"]}


def ranking_metrics(model, validation_events: pd.DataFrame, max_length: int) -> dict[str, float]:
    """Per-task validation AUC of a trained ranker (as it stands after early stopping) and their mean."""
    from recommenders.features.sequences import sessions_to_arrays, to_dataset

    dataset = to_dataset(sessions_to_arrays(validation_events, max_length), 512)
    logs = model.evaluate(dataset, return_dict=True, verbose=0)
    values = {f"val_{task}_auc": float(logs[f"{task}_auc"]) for task in RANKING_TASKS}
    values["val_mean_auc"] = float(np.mean(list(values.values())))
    return values
