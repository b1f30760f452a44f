"""Distributed tuning on keras-tuner's chief/worker mode: one oracle, trials split between two workers.

Three ``recsys tune`` processes on 127.0.0.1, as on three machines (see the README).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pandas as pd
import pytest

TIMEOUT_SECONDS = 400


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_split_the_trials_under_one_oracle(tiny_shop, tiny_space_file, tmp_path):
    command = [sys.executable, "-m", "recommenders", "tune", "--data", str(tiny_shop[1]), "--space",
               str(tiny_space_file), "--tuner", "random", "--max-trials", "2", "--epochs", "1", "--max-length", "10",
               "--directory", str(tmp_path / "runs"), "--project", "distributed"]
    port = str(free_port())
    processes = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = dict(os.environ, KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP="127.0.0.1",
                   KERASTUNER_ORACLE_PORT=port)
        log = open(tmp_path / f"{tuner_id}.log", "w")
        processes[tuner_id] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        codes = {tuner_id: process.wait(timeout=TIMEOUT_SECONDS) for tuner_id, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    logs = {tuner_id: (tmp_path / f"{tuner_id}.log").read_text()[-3000:] for tuner_id in processes}
    assert codes == {"chief": 0, "tuner0": 0, "tuner1": 0}, logs

    assert "the chief holds the leaderboard" in logs["tuner0"]
    table = pd.read_csv(tmp_path / "runs" / "distributed" / "leaderboard.csv", dtype={"trial_id": str})
    assert sorted(table["trial_id"]) == ["0", "1"]
    assert (table["status"] == "COMPLETED").all()
    assert sorted(table["tuner_id"]) == ["tuner0", "tuner1"]  # one oracle handed each worker its own trial
    assert table["hp:learning_rate"].nunique() == 2
