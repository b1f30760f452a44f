"""Fixtures shared across the suite: the small synthetic shop and one trained run of it.

Training is the slow part of the suite, so the trained run is built once per test run
and shared by every test (and every pytest-xdist worker, through a file lock).
"""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

import recsys_base  # noqa: F401  (selects Keras 2 before anything imports TensorFlow)

# Small but real: enough epochs for the learning floors the model tests assert.
TEST_RUN_CONFIG = {
    "train": {"epochs": 8, "batch_size": 128, "early_stopping_patience": 0, "verbose": 0, "seed": 0},
    "retrieval": {"embedding_dim": 32, "output_dim": 32, "lstm_units": 64},
    "ranking": {"embedding_dim": 32, "output_dim": 32, "lstm_units": 64, "deep_units": [64, 32]},
}


def _shared_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's basetemp is a child of one directory unique to this run.
    return base.parent if base.name.startswith("popen-gw") else base


@pytest.fixture(scope="session")
def small_shop_dir(tmp_path_factory) -> Path:
    """A prepared data directory of ``SyntheticShopConfig.small()`` (with its dirty rows)."""
    root = _shared_root(tmp_path_factory)
    with open(root / "small_shop.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data_dir = root / "small_shop"
        if not (data_dir / "report.json").exists():
            from recommenders.data.dataset import prepare, save_prepared
            from recommenders.data.synthetic import SyntheticShopConfig, generate_shop

            save_prepared(prepare(generate_shop(SyntheticShopConfig.small()), source="small synthetic shop"), data_dir)
    return data_dir


@pytest.fixture(scope="session")
def trained_run_dir(tmp_path_factory, small_shop_dir) -> Path:
    """A run directory with retrieval and ranking trained on the small shop."""
    root = _shared_root(tmp_path_factory)
    with open(root / "trained_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run_dir = root / "trained_run"
        if not (run_dir / "validation_metrics.json").exists():
            from recsys.workflow import RunConfig, train_run

            train_run(small_shop_dir, run_dir, RunConfig.from_dict(TEST_RUN_CONFIG), overwrite=True)
    return run_dir
