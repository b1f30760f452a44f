"""The tiny grid search on the synthetic shop: leaderboard, TensorBoard, resume, export."""

from __future__ import annotations

import json
import shutil

import pytest

from recommenders.models.config import RankingConfig
from tests.tensorboard_http import TensorBoardServer
from tests.tuning.conftest import LEARNING_RATES, tiny_search
from tuning.search import retrain_and_export

TINY_RANKER = RankingConfig(embedding_dim=8, output_dim=8, feature_dim=4, lstm_units=8, deep_units=(8,),
                            max_title_tokens=4)


@pytest.fixture(scope="module")
def finished(tiny_shop, tiny_space_file, finished_search_dir):
    """The shared finished search, reloaded in this process (its two trials are done, so none runs)."""
    return tiny_search(tiny_shop[0], tiny_space_file, finished_search_dir, max_trials=2)


@pytest.mark.slow
def test_leaderboard_ranks_completed_trials_best_first(finished):
    table = finished.leaderboard
    assert list(table["status"]) == ["COMPLETED", "COMPLETED"]
    assert list(table["hp:learning_rate"]) == [LEARNING_RATES[1], LEARNING_RATES[0]]
    assert table["val_HR@20"].is_monotonic_decreasing
    # Known structure: a trained model finds the next item far more often than an untrained one.
    assert table["val_HR@20"].iloc[0] > table["val_HR@20"].iloc[1] + 0.05
    assert (table["epochs"] == 1).all()


@pytest.mark.slow
def test_tensorboard_has_the_hparams_experiment_and_per_trial_sessions_with_curves(finished):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    log_dir = finished.tuner.tensorboard_dir
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(log_dir))
    multiplexer.Reload()
    hparams_runs = multiplexer.PluginRunToTagToContent("hparams")
    assert "." in hparams_runs  # the experiment: space and metric columns
    for trial_id in finished.leaderboard["trial_id"]:
        assert f"trial_{trial_id}" in hparams_runs  # the trial's values
        assert {f"trial_{trial_id}/train", f"trial_{trial_id}/validation"} <= set(multiplexer.Runs())
        assert "val_HR@20" in multiplexer.Runs()[f"trial_{trial_id}"]["tensors"]


@pytest.mark.slow
def test_tensorboard_projector_labels_the_best_trials_item_embeddings(finished, tiny_shop, tmp_path):
    run = f"trial_{finished.best_trial().trial_id}/train"
    with TensorBoardServer(finished.tuner.tensorboard_dir, tmp_path) as board:
        board.wait_for(lambda: run in board.json("/data/plugin/projector/runs"), f"the projector to list {run}")
        header, *rows = board.get("/data/plugin/projector/metadata", run=run, name="item_embeddings").decode().splitlines()
    assert header.split("\t") == ["title", "category", "item_id"]
    labels = [row.split("\t") for row in rows[2:]]  # after the padding and unknown-item rows
    catalog = tiny_shop[0].catalog.set_index("item_id")
    assert len(labels) == len(catalog)
    assert [[title, category] for title, category, _ in labels] == catalog.loc[[item for *_, item in labels], ["title", "category"]].values.tolist()


@pytest.mark.slow
def test_best_trial_retrained_and_exported_beats_the_worst_trial(finished, tiny_shop, tmp_path):
    import tensorflow as tf

    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.evaluation.harness import evaluate
    from recommenders.models.inference import SignatureRecommender

    exported = retrain_and_export(finished, tiny_shop[0], tmp_path / "saved_models", other_model_config=TINY_RANKER)
    assert {name: path.name for name, path in exported.items()} == {"retrieval": "1", "ranking": "1", "recommend": "1"}
    metadata = json.loads((exported["retrieval"] / "assets.extra" / "recsys_model.json").read_text())
    assert metadata["tuning"]["hyperparameters"]["learning_rate"] == LEARNING_RATES[1]

    loaded = tf.saved_model.load(str(exported["retrieval"]))
    report = evaluate({"tuned": SignatureRecommender(loaded.signatures["retrieve"])},
                      make_next_item_cases(tiny_shop[0].test), k_values=(20,), catalog_size=300)
    worst = finished.leaderboard["val_HR@20"].min()
    assert report.result("tuned").metrics["HR@20"] > worst + 0.05


@pytest.mark.slow
def test_rerun_with_one_more_trial_resumes_and_runs_only_the_new_trial(finished, tiny_shop, tiny_space_file,
                                                                       tmp_path):
    shutil.copytree(finished.config.directory, tmp_path, dirs_exist_ok=True)  # keeps the shared search as it is
    records = [tmp_path / "tiny" / f"trial_{trial_id}" / "recsys_trial.json" for trial_id in finished.leaderboard["trial_id"]]
    written = [path.stat().st_mtime_ns for path in records]

    resumed = tiny_search(tiny_shop[0], tiny_space_file, tmp_path, max_trials=3)

    assert sorted(resumed.leaderboard["trial_id"]) == ["0", "1", "2"]
    assert [path.stat().st_mtime_ns for path in records] == written  # finished trials were not rerun
    new = resumed.leaderboard.set_index("trial_id").loc["2"]
    assert new["status"] == "COMPLETED" and new["hp:learning_rate"] == LEARNING_RATES[2]
