"""Distributed tuning on keras-tuner's chief/worker mode: one oracle, trials split between two workers.

The shared search of this suite is run as three ``recsys tune`` processes on 127.0.0.1, as
on three machines (see the README); see ``conftest.distributed_tiny_search``.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.tuning.conftest import LEARNING_RATES


@pytest.mark.slow
def test_chief_and_two_workers_split_the_trials_under_one_oracle(finished_search_dir):
    logs = {tuner_id: (finished_search_dir / f"{tuner_id}.log").read_text() for tuner_id in ("chief", "tuner0", "tuner1")}
    codes = json.loads((finished_search_dir / "exit_codes.json").read_text())
    assert codes == {"chief": 0, "tuner0": 0, "tuner1": 0}, {tuner_id: log[-3000:] for tuner_id, log in logs.items()}

    assert "the chief holds the leaderboard" in logs["tuner0"] and "the chief holds the leaderboard" in logs["tuner1"]
    csv = finished_search_dir / "tiny" / "leaderboard.csv"
    assert f"leaderboard: {csv}" in logs["chief"]
    table = pd.read_csv(csv, dtype={"trial_id": str})
    assert sorted(table["trial_id"]) == ["0", "1"]
    assert (table["status"] == "COMPLETED").all()
    assert sorted(table["tuner_id"]) == ["tuner0", "tuner1"]  # one oracle handed each worker its own trial
    assert sorted(table["hp:learning_rate"]) == sorted(LEARNING_RATES[:2])
