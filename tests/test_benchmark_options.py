"""The ablation benchmarks refuse Diginetica-only options with ``--dataset synthetic``.

That run uses the demo's shop and run config, so an ``--epochs`` or ``--config`` given
with it would be silently ignored and its results page would not say so.
"""

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["fusion_ablation", "ranker_ablation"])
def test_synthetic_run_refuses_diginetica_options_by_name(name, capsys):
    parse_args = _benchmark(name).parse_args
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--dataset", "synthetic", "--epochs", "3", "--validation-fraction", "0.1"])
    assert exit_info.value.code == 2
    assert "does not take --epochs, --validation-fraction" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["fusion_ablation", "ranker_ablation"])
def test_options_still_apply_to_diginetica_and_defaults_to_synthetic(name):
    parse_args = _benchmark(name).parse_args
    assert parse_args(["--dataset", "diginetica", "--epochs", "3"]).epochs == 3
    assert parse_args(["--dataset", "synthetic"]).dataset == "synthetic"
