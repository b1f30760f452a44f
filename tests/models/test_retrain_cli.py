"""Bad new data for ``recsys retrain``: one line naming the problem, exit code 2, the serving version untouched."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.cli import main
from recsys.retrain import RetrainConfig, replay_sample, split_window
from recsys_base.errors import ConfigError, DataError
from serving import contract


@pytest.fixture
def serving(tmp_path):
    """A models.config whose stable label names version 1 of an (empty) base directory."""
    from serving.deployment import DeploymentConfig, write_configs

    base = tmp_path / "models"
    base.mkdir()
    config = write_configs(DeploymentConfig(model_base=str(base), models=(contract.RECOMMEND_MODEL,), stable_version=1),
                           tmp_path / "config")["models.config"]
    return base, config, config.read_text()


def _retrain(capsys, tmp_path, trained_run_dir, serving, events: pd.DataFrame, catalog: pd.DataFrame):
    base, config, _ = serving
    events.to_parquet(tmp_path / "events.parquet", index=False)
    catalog.to_parquet(tmp_path / "catalog.parquet", index=False)
    code = main(["retrain", "--from", str(trained_run_dir), "--events", str(tmp_path / "events.parquet"),
                 "--catalog", str(tmp_path / "catalog.parquet"), "--run", str(tmp_path / "run"), "--base", str(base),
                 "--models-config", str(config)])
    return code, capsys.readouterr().err


def _untouched(serving):
    base, config, text = serving
    return config.read_text() == text and not any(base.iterdir())


def test_unknown_columns_in_new_events_are_named(tmp_path, capsys, small_shop_dir, trained_run_dir, serving):
    test = pd.read_parquet(small_shop_dir / "test.parquet").assign(colour="red")
    code, err = _retrain(capsys, tmp_path, trained_run_dir, serving, test, pd.read_parquet(small_shop_dir / "catalog.parquet"))
    assert code == 2 and "unknown column(s) colour" in err and len(err.strip().splitlines()) == 1
    assert _untouched(serving)


def test_a_catalog_dropping_served_items_is_refused(tmp_path, capsys, small_shop_dir, trained_run_dir, serving):
    catalog = pd.read_parquet(small_shop_dir / "catalog.parquet")
    code, err = _retrain(capsys, tmp_path, trained_run_dir, serving, pd.read_parquet(small_shop_dir / "test.parquet"),
                         catalog.iloc[3:])
    assert code == 2 and "the new catalog drops 3 item(s) the serving model still knows" in err
    assert _untouched(serving)


def test_an_empty_window_is_refused(tmp_path, capsys, small_shop_dir, trained_run_dir, serving):
    empty = pd.read_parquet(small_shop_dir / "test.parquet").iloc[:0]
    code, err = _retrain(capsys, tmp_path, trained_run_dir, serving, empty, pd.read_parquet(small_shop_dir / "catalog.parquet"))
    assert code == 2 and "nothing to retrain on (an empty window)" in err
    assert _untouched(serving)


def test_a_models_config_without_a_stable_version_is_refused(tmp_path, capsys, small_shop_dir, trained_run_dir, serving):
    base, config, _ = serving
    config.write_text(config.read_text().replace('key: "stable"', 'key: "canary"'))
    code, err = _retrain(capsys, tmp_path, trained_run_dir, serving, pd.read_parquet(small_shop_dir / "test.parquet"),
                         pd.read_parquet(small_shop_dir / "catalog.parquet"))
    assert code == 2 and "has no 'stable' label" in err and not any(base.iterdir())


@pytest.mark.parametrize("fields, message", [({"epochs": 0}, "epochs must be at least 1"),
                                             ({"new_item_init": "mean"}, "new_item_init must be one of"),
                                             ({"validation_fraction": 0.5, "holdout_fraction": 0.5}, "must be < 1")])
def test_retrain_settings_are_checked(fields, message):
    with pytest.raises(ConfigError, match=message):
        RetrainConfig(**fields).validate()


def test_the_window_splits_by_session_end_and_replay_takes_whole_sessions():
    times = pd.date_range("2024-01-01", periods=20, freq="h")
    events = pd.DataFrame({"session_id": [f"s{i // 2:02d}" for i in range(20)], "item_id": "x", "event_type": "view",
                           "timestamp": times})
    recent, validation, holdout = split_window(events, RetrainConfig(validation_fraction=0.2, holdout_fraction=0.2))
    assert [sorted(part["session_id"].unique()) for part in (validation, holdout)] == [["s06", "s07"], ["s08", "s09"]]
    assert recent["session_id"].nunique() == 6
    replay = replay_sample(events, 3, seed=1)
    assert replay["session_id"].nunique() == 3 and replay.groupby("session_id").size().eq(2).all()
    with pytest.raises(DataError, match="empty window"):
        split_window(events.iloc[:0], RetrainConfig())
