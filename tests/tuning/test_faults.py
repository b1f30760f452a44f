"""Failing trials: recorded with their reason, the search goes on, and stops after too many in a row."""

import dataclasses

import pytest

from recommenders.models.config import TrainConfig
from recsys_base.errors import ConfigError, DataError
from tuning.search import TuningConfig, run_search

REASON = "DataError: the validation split has no session with two or more item events to learn from"


@pytest.fixture(scope="module")
def unlearnable(tiny_shop):
    """The tiny shop with one-event validation sessions: every trial fails as soon as it fits."""
    prepared = tiny_shop[0]
    return dataclasses.replace(prepared, validation=prepared.validation.groupby("session_id").head(1))


def search(prepared, space_file, directory, max_failures):
    config = TuningConfig(tuner="random", max_trials=2, directory=str(directory), space_file=str(space_file),
                          max_consecutive_failed_trials=max_failures)
    return run_search(prepared, config, train_config=TrainConfig(epochs=1, verbose=0))


def test_failed_trials_are_recorded_with_their_reason_and_the_search_goes_on(unlearnable, tiny_space_file, tmp_path):
    result = search(unlearnable, tiny_space_file, tmp_path, max_failures=3)
    table = result.leaderboard
    assert list(table["status"]) == ["FAILED", "FAILED"]
    assert all(reason.endswith(REASON) for reason in table["reason"])
    with pytest.raises(DataError, match="no trial completed, so there is no best configuration"):
        result.best_trial()


def test_too_many_consecutive_failures_stop_the_search_with_the_reason(unlearnable, tiny_space_file, tmp_path):
    with pytest.raises(ConfigError, match=f"search stopped after 1 consecutive failed trials; last reason: .*{REASON}"):
        search(unlearnable, tiny_space_file, tmp_path, max_failures=1)
