"""The leaderboard: every trial of a project directory, best first, as a table or CSV.

Read from the trial files keras-tuner's oracle writes (``trial_*/trial.json``) plus our
own ``recsys_trial.json`` (which worker ran it, how long it took), so it works for a
single process, the chief of a distributed search, and a shared directory after the fact.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from recsys_base.errors import DataError
from tuning.tuner import TRIAL_INFO_FILE

_STATUS_ORDER = {"COMPLETED": 0, "RUNNING": 1, "INVALID": 2, "FAILED": 3}


def failure_reason(message: str | None) -> str:
    """The last non-empty line of a trial's traceback: the exception and its message."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def leaderboard(project_dir: str | Path, objective_metric: str, direction: str = "max") -> pd.DataFrame:
    """One row per trial: id, status, objective, other metrics, worker, seconds, values, failure reason."""
    import keras_tuner

    project_dir = Path(project_dir)
    files = sorted(project_dir.glob("trial_*/trial.json"))
    if not files:
        raise DataError(f"no tuning trials in {project_dir}")
    rows = []
    for path in files:
        trial = keras_tuner.engine.trial.Trial.load(str(path))
        info_path = path.parent / TRIAL_INFO_FILE
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        metrics = {name: trial.metrics.get_last_value(name) for name in trial.metrics.metrics}
        row = {"trial_id": trial.trial_id, "status": trial.status,
               "objective": metrics.pop(objective_metric, None), **metrics,
               "tuner_id": info.get("tuner_id", ""), "seconds": info.get("seconds")}
        row.update({f"hp:{name}": value for name, value in trial.hyperparameters.values.items()})
        row["reason"] = failure_reason(trial.message) if trial.status != "COMPLETED" else ""
        rows.append(row)
    table = pd.DataFrame(rows).rename(columns={"objective": objective_metric})
    table["_status"] = table["status"].map(_STATUS_ORDER).fillna(len(_STATUS_ORDER))
    table = table.sort_values(["_status", objective_metric, "trial_id"], ascending=[True, direction != "max", True],
                              na_position="last")
    return table.drop(columns="_status").reset_index(drop=True)
