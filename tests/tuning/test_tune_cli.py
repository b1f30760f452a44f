"""``recsys tune`` input errors: one line naming what is wrong, exit code 2, before any training."""

import subprocess
import sys

import pytest

from recsys.cli import main


@pytest.mark.parametrize("flags, message", [
    (["--space", "{space}"], "{space}: retrieval.lstm_units[1]: lstm_units must be at least 1, got 0"),
    (["--max-trials", "0"], "max_trials must be at least 1, got 0"),
    (["--objective", "NDCG@20"], "retrieval objective must be HR@K, MRR@K or HR@K+MRR@K (e.g. HR@20), got 'NDCG@20'"),
    (["--objective", "HR@20+MRR@10"], "retrieval objective must be HR@K, MRR@K or HR@K+MRR@K (e.g. HR@20), "
                                      "got 'HR@20+MRR@10'"),
    (["--kind", "ranking", "--objective", "HR@20"], "ranking objective must be one of click_auc, cart_auc"),
    (["--time-limit", "0"], "time limit must be positive seconds, got 0.0"),
    (["--epochs", "0"], "epochs must be at least 1, got 0"),
    (["--max-length", "1"], "max_length must be at least 2, got 1"),
    (["--train-sessions", "0"], "train_sessions must be at least 1, got 0"),
])
def test_bad_input_is_a_one_line_error_with_exit_code_2(tmp_path, capsys, flags, message):
    space = tmp_path / "space.yaml"
    space.write_text("retrieval:\n  lstm_units: [64, 0]\n")
    flags = [flag.format(space=space) for flag in flags]
    assert main(["tune", "--data", str(tmp_path / "missing"), *flags]) == 2
    error = capsys.readouterr().err
    assert error.startswith("recsys tune: error: ") and error.count("\n") == 1
    assert message.format(space=space) in error


def test_missing_data_directory_is_an_error_before_any_training(tmp_path, capsys):
    assert main(["tune", "--data", str(tmp_path / "missing")]) == 2
    assert f"prepared data directory not found: {tmp_path / 'missing'}" in capsys.readouterr().err


def test_bad_input_does_not_load_tensorflow():
    probe = ("import sys; from recsys.cli import main; "
             "code = main(['tune', '--data', '.', '--max-trials', '0']); "
             "print(code, 'tensorflow' in sys.modules, 'keras_tuner' in sys.modules)")
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert completed.stdout.split() == ["2", "False", "False"], completed.stderr[-2000:]


def test_incomplete_distributed_environment_is_a_config_error(tiny_shop, monkeypatch, capsys):
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.delenv("KERASTUNER_ORACLE_PORT", raising=False)
    assert main(["tune", "--data", str(tiny_shop[1])]) == 2
    assert "KERASTUNER_ORACLE_IP is set but KERASTUNER_ORACLE_PORT is not: distributed tuning needs" in \
        capsys.readouterr().err


def test_bad_known_good_config_file_names_the_field(tmp_path, capsys):
    config = tmp_path / "run.json"
    config.write_text('{"retrieval": {"lstm_unitz": 64}}')
    assert main(["tune", "--data", str(tmp_path / "missing"), "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert f"{config}: unknown retrieval setting(s) lstm_unitz" in error and error.count("\n") == 1
