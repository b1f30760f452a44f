"""Training under tf.distribute: the strategy flag, one step on 2 replicas against one device,
resume and save under MirroredStrategy, and a 2-worker MultiWorkerMirroredStrategy run on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recommenders.models.config import TrainConfig
from recommenders.models.distribute import cluster_from_environment, loopback_tf_configs
from recsys.cli import main
from recsys_base.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
# Tiny towers, one epoch, one table half-life to fit the fusion gate with (not four): the
# 2-worker run is about the cluster, not the model.
TINY_RUN = {
    "train": {"epochs": 1, "batch_size": 128, "early_stopping_patience": 0, "verbose": 0},
    "retrieval": {"embedding_dim": 16, "feature_dim": 4, "output_dim": 16, "lstm_units": 16, "neighbour_half_lives": [0.0]},
    "ranking": {"embedding_dim": 16, "feature_dim": 4, "output_dim": 16, "lstm_units": 16, "deep_units": [16]},
}


def _environment(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def test_unknown_distribute_mode_is_named():
    with pytest.raises(ConfigError, match="distribute must be one of none, mirrored, multi-worker, got 'gpus'"):
        TrainConfig(distribute="gpus").validate()


def test_unknown_distribute_flag_is_one_line_naming_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(tmp_path), "--run", str(tmp_path / "run"), "--distribute", "tpu"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "argument --distribute: invalid choice: 'tpu'" in err and err.count("\n") == 1


def test_multi_worker_without_tf_config_names_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code = main(["train", "--data", str(tmp_path), "--run", str(tmp_path / "run"), "--distribute", "multi-worker"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("recsys train: error: --distribute multi-worker needs the TF_CONFIG environment")
    assert err.count("\n") == 1


@pytest.mark.parametrize("tf_config, message", [
    ("{cluster", "TF_CONFIG is not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG needs a cluster with a non-empty 'worker'"),
    ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG needs this process's task"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "TF_CONFIG task type 'ps' is not a job"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "TF_CONFIG task index 1 is out of range"),
])
def test_bad_tf_config_is_named(monkeypatch, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ConfigError, match=message):
        cluster_from_environment()


@pytest.fixture(scope="module")
def mirrored(small_shop_dir, tmp_path_factory) -> dict:
    """What ``mirrored_checks.py`` measured on 2 logical CPU devices (it asserts the resume itself)."""
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("mirrored_checks.py")), str(small_shop_dir),
                           str(tmp_path_factory.mktemp("mirrored"))],
                          env=_environment(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_one_step_on_two_replicas_matches_one_device(mirrored):
    one_step = mirrored["one_step"]
    assert one_step["replicas"] == 2
    # Per variable, |update on 2 replicas - update on one device| / |update on one device|.
    # Measured: 6e-6 with unnormalized towers, 1.1e-4 with L2-normalized ones (the default;
    # float32 sums in another order); with the regularization loss whole on each replica
    # 0.65, with the repeat gate's mean taken per replica 0.05.
    assert one_step["max_update_relative_error"] < 1e-3
    assert one_step["mirrored_logs"] == pytest.approx(one_step["single_logs"], rel=1e-5)


@pytest.mark.slow
def test_loss_shares_add_up_to_the_global_batch(mirrored):
    # Replica 0 sums 6.0 over 1 label, replica 1 sums 2.0 over 3: the mean over 4 labels is 2.0.
    assert mirrored["shares"] == {"mean_shares": [1.5, 0.5], "regularization_shares": [3.0, 3.0]}


@pytest.mark.slow
def test_mirrored_run_resumes_exactly_and_saves(mirrored):
    resume = mirrored["resume"]
    # 2 epochs, killed in the second and resumed; the weights' average spans several steps.
    assert resume["steps_per_epoch"] >= 15 and resume["resumed_iterations"] == 2 * resume["steps_per_epoch"]
    assert resume["averaging_momentum"] > 0.3
    assert resume["saved_query_max_difference"] == resume["saved_catalog_max_difference"] == 0.0


@pytest.mark.slow
def test_two_workers_on_loopback_train_and_the_chief_run_exports(small_shop_dir, tmp_path):
    from recsys.workflow import evaluate_run, export_run

    config, run = tmp_path / "run.json", tmp_path / "run"
    config.write_text(json.dumps(TINY_RUN))
    workers = [
        subprocess.Popen([sys.executable, "-m", "recsys", "train", "--data", str(small_shop_dir), "--run", str(run),
                          "--config", str(config), "--distribute", "multi-worker"],
                         env=_environment(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for tf_config in loopback_tf_configs(2)
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    assert "recommend:" in outputs[0][0] and "recommend:" not in outputs[1][0]  # only the chief fits the blend
    validation = json.loads((run / "validation_metrics.json").read_text())
    rates = {name: value for part in ("retrieval", "ranking") for name, value in validation[part].items()
             if name.endswith(("_auc", "_accuracy"))}
    assert len(rates) == 6 and all(0 <= value <= 1 for value in rates.values()), rates  # not summed over workers
    assert rates["val_factorized_top_k/top_20_categorical_accuracy"] > 0.5
    assert sorted(path.name for path in run.iterdir()) == [
        "data_source.json", "logs", "ranking", "recommend_blend.json", "retrieval", "run_config.json",
        "validation_metrics.json"]

    report = evaluate_run(small_shop_dir, run, "validation", k_values=(20,)).overall
    ours, popularity = report.result("retrieval (LSTM two-tower)").metrics, report.result("popularity").metrics
    assert ours["HR@20"] > popularity["HR@20"] + 0.1
    assert sorted(export_run(run, tmp_path / "models")) == ["ranking", "recommend", "retrieval"]
