"""Bad input to ``recsys train | evaluate | export`` gets one clear line and exit code 2."""

import json

import pytest

from recsys.cli import main


def _error(capsys, argv):
    code = main(argv)
    return code, capsys.readouterr().err


def test_train_without_data_directory_names_it(tmp_path, capsys):
    code, err = _error(capsys, ["train", "--data", str(tmp_path / "nope"), "--run", str(tmp_path / "run")])
    assert code == 2 and "data directory not found" in err and "nope" in err


@pytest.mark.parametrize("content, message", [
    ('{"trian": {}}', "unknown section(s) trian"),
    ('{"train": {"epoch": 3}}', "unknown train setting(s) epoch"),
    ('{"train": {"epochs": "three"}}', "train.epochs must be an integer, got 'three'"),
    ('{"retrieval": {"dropout": 1.5}}', "dropout must be in [0, 1)"),
    ("{not json", "not valid JSON"),
])
def test_bad_config_file_is_named(tmp_path, capsys, content, message):
    config = tmp_path / "run.json"
    config.write_text(content)
    code, err = _error(capsys, ["train", "--data", str(tmp_path), "--run", str(tmp_path / "run"), "--config", str(config)])
    assert code == 2 and message in err


def test_flag_overrides_are_validated(tmp_path, capsys):
    code, err = _error(capsys, ["train", "--data", str(tmp_path), "--run", str(tmp_path / "r"), "--epochs", "0"])
    assert code == 2 and "epochs must be at least 1" in err


def test_evaluate_without_trained_run_names_it(small_shop_dir, tmp_path, capsys):
    code, err = _error(capsys, ["evaluate", "--data", str(small_shop_dir), "--run", str(tmp_path / "missing")])
    assert code == 2 and "run directory not found" in err


def test_export_of_a_directory_without_models_says_so(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    code, err = _error(capsys, ["export", "--run", str(tmp_path / "run"), "--base", str(tmp_path / "models")])
    assert code == 2 and "config.json is missing" in err


def test_bad_k_list_is_rejected_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--data", str(tmp_path), "--run", str(tmp_path), "--k", "5,zero"])
    assert exit_info.value.code == 2 and "comma-separated whole numbers" in capsys.readouterr().err


def test_train_refuses_to_overwrite_a_finished_run(small_shop_dir, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "retrieval").mkdir(parents=True)
    (run / "retrieval" / "config.json").write_text(json.dumps({}))
    code, err = _error(capsys, ["train", "--data", str(small_shop_dir), "--run", str(run)])
    assert code == 2 and "--overwrite" in err
