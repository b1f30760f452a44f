"""Every ``recsys`` command answers bad flags, config files and input files with exactly
one line on stderr naming what is wrong, and exit code 2: never a traceback.

Most cases call :func:`recsys.cli.main` in-process (fast); a few run ``python -m recsys``
in a subprocess, where TensorFlow's native start-up lines would show if they leaked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from recsys.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _parquet(path: Path, **columns) -> Path:
    frame = pd.DataFrame({"session_id": ["a", "a"], "item_id": ["1", "2"], "timestamp": [1_700_000_000, 1_700_000_060]})
    for name, values in columns.items():
        frame[name] = values
    frame.to_parquet(path)
    return path


def _text(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


# name -> (files to create: name -> writer(path), argv with {name} placeholders, what the line must name)
CASES = {
    "session gap inf": ({"e.csv": lambda p: _text(p, "session_id,item_id,timestamp\ns,1,1700000000\n")},
                        ["data", "import", "--format", "csv", "--input", "{e.csv}", "--out", "{out}",
                         "--session-gap-minutes", "inf"], "session_gap_minutes must be a finite number"),
    "validation fraction nan": ({}, ["data", "generate", "--small", "--out", "{out}", "--validation-fraction", "nan"],
                                "validation_fraction must be a finite number"),
    "unknown timestamp unit": ({}, ["data", "import", "--format", "csv", "--input", "x.csv", "--out", "{out}",
                                    "--timestamp-unit", "minutes"], "argument --timestamp-unit: invalid choice"),
    "timestamp unit for retailrocket": ({"e.csv": lambda p: _text(p, "x\n")},
                                        ["data", "import", "--format", "retailrocket", "--input", "{e.csv}",
                                         "--out", "{out}", "--timestamp-unit", "s"], "--timestamp-unit applies to"),
    "bool timestamps": ({"e.parquet": lambda p: _parquet(p, timestamp=[True, False])},
                        ["data", "import", "--format", "parquet", "--input", "{e.parquet}", "--out", "{out}"],
                        "e.parquet column timestamp holds true/false values"),
    "non-UTF-8 ids": ({"e.parquet": lambda p: _parquet(p, session_id=[b"\xff", b"b"])},
                      ["data", "import", "--format", "parquet", "--input", "{e.parquet}", "--out", "{out}"],
                      "e.parquet column session_id holds bytes that are not UTF-8 text"),
    "list item ids": ({"e.parquet": lambda p: _parquet(p, item_id=[[1, 2], [3]])},
                      ["data", "import", "--format", "parquet", "--input", "{e.parquet}", "--out", "{out}"],
                      "e.parquet column item_id holds lists"),
    "epochs beside ISO with a declared unit": (
        {"e.csv": lambda p: _text(p, "session_id,item_id,timestamp\ns,1,1700000000\ns,2,2024-01-01T00:00:00\n")},
        ["data", "import", "--format", "csv", "--input", "{e.csv}", "--out", "{out}", "--timestamp-unit", "ms"],
        "e.csv column timestamp mixes epoch numbers (e.g. '1700000000') and date text (e.g. '2024-01-01T00:00:00')"),
    "line break in a column name": ({"e.csv": lambda p: _text(p, '"sess\nion",item_id,timestamp\ns,1,1700000000\n')},
                                    ["data", "import", "--format", "csv", "--input", "{e.csv}", "--out", "{out}"],
                                    "is missing column(s) session_id; it has 'sess\\nion', item_id, timestamp"),
    "out below a file": ({"e.csv": lambda p: _text(p, "session_id,item_id,timestamp\ns,1,1700000000\n")},
                         ["data", "import", "--format", "csv", "--input", "{e.csv}", "--out", "{e.csv}/out"],
                         "cannot create output directory"),
    "null section": ({"run.json": lambda p: _text(p, '{"train": null}')},
                     ["train", "--data", "{tmp}", "--run", "{out}", "--config", "{run.json}"],
                     "run.json: train must be an object of settings, got null"),
    "list section": ({"run.json": lambda p: _text(p, '{"train": [1]}')},
                     ["train", "--data", "{tmp}", "--run", "{out}", "--config", "{run.json}"],
                     "run.json: train must be an object of settings, got [1]"),
    "list of the wrong type": ({"run.json": lambda p: _text(p, '{"ranking": {"deep_units": ["a"]}}')},
                               ["train", "--data", "{tmp}", "--run", "{out}", "--config", "{run.json}"],
                               "run.json: ranking.deep_units[0] must be an integer, got 'a'"),
    "infinite learning rate": ({"run.json": lambda p: _text(p, '{"train": {"learning_rate": Infinity}}')},
                               ["train", "--data", "{tmp}", "--run", "{out}", "--config", "{run.json}"],
                               "run.json: train.learning_rate must be a finite number, got inf"),
    "NaN learning rate": ({"run.json": lambda p: _text(p, '{"train": {"learning_rate": NaN}}')},
                          ["demo", "--workdir", "{out}", "--config", "{run.json}"],
                          "run.json: train.learning_rate must be a finite number, got nan"),
    "negative half-life": ({"run.json": lambda p: _text(p, '{"retrieval": {"neighbour_half_lives": [0.5, -1]}}')},
                           ["train", "--data", "{tmp}", "--run", "{out}", "--config", "{run.json}"],
                           "run.json: neighbour_half_lives must be one or more numbers >= 0, got [0.5, -1.0]"),
    "no half-life": ({"run.json": lambda p: _text(p, '{"retrieval": {"neighbour_half_lives": []}}')},
                     ["train", "--data", "{tmp}", "--run", "{out}", "--config", "{run.json}"],
                     "run.json: neighbour_half_lives must be one or more numbers >= 0, got []"),
    "empty ensemble": ({"run.json": lambda p: _text(p, '{"retrieval": {"ensemble_size": 0}}')},
                       ["train", "--data", "{tmp}", "--run", "{out}", "--config", "{run.json}"],
                       "run.json: ensemble_size must be at least 1, got 0"),
    "boolean epochs": ({"run.json": lambda p: _text(p, '{"train": {"epochs": true}}')},
                       ["train", "--data", "{tmp}", "--run", "{out}", "--config", "{run.json}"],
                       "run.json: train.epochs must be an integer, got True"),
    "non-UTF-8 config": ({"run.json": lambda p: _text(p, b'{"train": {}} \xff')},
                         ["train", "--data", "{tmp}", "--run", "{out}", "--config", "{run.json}"],
                         "run.json: not UTF-8 text (byte 0xff at offset 14)"),
    "deeply nested config": ({"run.json": lambda p: _text(p, "[" * 100_000 + "]" * 100_000)},
                             ["train", "--data", "{tmp}", "--run", "{out}", "--config", "{run.json}"],
                             "run.json: JSON nested too deeply"),
    # Found by fuzzing: JSON integers past float's range, and past Python's 4300-digit limit.
    "integer learning rate past float": ({"run.json": lambda p: _text(p, '{"train": {"learning_rate": 1' + "0" * 400 + "}}")},
                                         ["train", "--data", "{tmp}", "--run", "{out}", "--config", "{run.json}"],
                                         "run.json: train.learning_rate must be a finite number, got 1000"),
    "integer of 5000 digits": ({"run.json": lambda p: _text(p, '{"train": {"epochs": ' + "1" * 5000 + "}}")},
                               ["train", "--data", "{tmp}", "--run", "{out}", "--config", "{run.json}"],
                               "run.json: not a usable run config (Exceeds the limit (4300 digits)"),
    "infinite learning rate flag": ({}, ["train", "--data", "{tmp}", "--run", "{out}", "--learning-rate", "inf"],
                                    "train.learning_rate must be a finite number, got inf"),
    "bad k": ({}, ["evaluate", "--data", "{tmp}", "--run", "{out}", "--k", "0"], "argument --k: every K must be at least 1"),
    "export base is a file": ({"base": lambda p: _text(p, "")}, ["export", "--run", "{tmp}", "--base", "{base}"],
                              "--base {base} is a file, not a directory"),
    "export version 0": ({}, ["export", "--run", "{tmp}", "--version", "0"], "--version must be a positive whole number"),
    "serve-config out is a file": ({"deploy": lambda p: _text(p, "")}, ["serve-config", "--out", "{deploy}", "--stable", "1"],
                                   "output directory {deploy} is a file"),
    "serve ssl key without cert": ({}, ["serve", "--embedded", "--model-base", "{tmp}", "--ssl-key", "{tmp}"],
                                   "--ssl-cert and --ssl-key go together"),
}
SUBPROCESS_CASES = ("session gap inf", "bool timestamps", "infinite learning rate", "export base is a file")


def _prepare(case: str, tmp_path: Path) -> tuple[list[str], str]:
    files, argv, expected = CASES[case]
    names = {"tmp": str(tmp_path), "out": str(tmp_path / "out")}
    for name, write in files.items():
        names[name] = str(write(tmp_path / name))

    def fill(text: str) -> str:
        for name, value in names.items():
            text = text.replace("{" + name + "}", value)
        return text

    return [fill(arg) for arg in argv], fill(expected)


def _assert_one_line(err: str, expected: str) -> None:
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err, err


@pytest.mark.parametrize("case", sorted(set(CASES) - set(SUBPROCESS_CASES)))
def test_bad_value_in_process(case, tmp_path, capsys):
    argv, expected = _prepare(case, tmp_path)
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse rejects the flag itself
        code = exit_info.code
    assert code == 2
    _assert_one_line(capsys.readouterr().err, expected)


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_bad_value_in_a_subprocess(case, tmp_path):
    argv, expected = _prepare(case, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "recsys", *argv], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 2, done.stderr
    _assert_one_line(done.stderr, expected)
