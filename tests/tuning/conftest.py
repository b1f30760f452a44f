"""A tiny prepared shop, a tiny search space, and one finished search shared by the suite.

Trials are the slow part, so the finished search is run once per test run and shared by
every pytest-xdist worker through a file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import recsys_base  # noqa: F401  (selects Keras 2 before anything imports TensorFlow)

# Everything fixed at tiny sizes; only the learning rate varies, from useless to good,
# so the search has a known worst trial. Grid order: trial 0 is the known-good base
# configuration (TrainConfig's learning rate, 0.003), then 1e-6, then 0.01.
TINY = {"embedding_dim": 8, "output_dim": 8, "feature_dim": 4, "lstm_units": 8, "lstm_layers": 1, "dropout": 0.0,
        "l2": 0.0, "l2_normalize": False, "optimizer": "adam", "batch_size": 128, "temperature": 0.1,
        "extra_negatives": 64, "max_title_tokens": 4, "session_attention": True, "learning_rate_decay": 1.0,
        "repeat_head": True, "session_item_readout": True, "negatives": "sampled",
        # Neighbour tables alone rank well: without them an untrained trial is known to be worst.
        "fusion": False, "neighbours_per_item": 50, "co_occurrence_window": 3}
LEARNING_RATES = [1e-6, 0.003, 0.01]


@pytest.fixture(scope="session")
def tiny_shop(tmp_path_factory):
    """``(PreparedData, its directory)`` of a 1,500-session synthetic shop."""
    from recommenders.data.dataset import prepare, save_prepared
    from recommenders.data.synthetic import SyntheticShopConfig, generate_shop

    prepared = prepare(generate_shop(SyntheticShopConfig.small(n_sessions=1_500)), source="tiny shop")
    return prepared, save_prepared(prepared, tmp_path_factory.mktemp("tuning") / "shop")


@pytest.fixture(scope="session")
def tiny_space_file(tmp_path_factory) -> Path:
    """A space file fixing the retrieval entries to tiny sizes; the learning rate is searched."""
    section = dict(TINY, learning_rate=LEARNING_RATES)
    path = tmp_path_factory.mktemp("space") / "tiny_space.json"
    path.write_text(json.dumps({"retrieval": section}))
    return path


@contextlib.contextmanager
def shared_directory(tmp_path_factory, name: str):
    """``name`` in a temporary directory common to all xdist workers, held under an exclusive lock."""
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's basetemp is a child of one directory unique to this run.
    root = base.parent if base.name.startswith("popen-gw") else base
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield root / name


def tiny_search(prepared, space_file, directory, max_trials):
    """Runs (or resumes) the tiny grid search over LEARNING_RATES in ``directory``/tiny, in process."""
    from recommenders.models.config import TrainConfig
    from tuning.search import TuningConfig, run_search

    config = TuningConfig(kind="retrieval", tuner="grid", max_trials=max_trials, directory=str(directory),
                          project_name="tiny", space_file=str(space_file))
    return run_search(prepared, config, train_config=TrainConfig(epochs=1, max_length=10, verbose=0))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def distributed_tiny_search(data_dir, space_file, directory, timeout: float) -> dict[str, int]:
    """The tiny grid search as on three machines: ``recsys tune`` as chief, tuner0 and tuner1.

    Returns each process's exit code; its output is in ``directory/<tuner id>.log``.
    """
    command = [sys.executable, "-m", "recsys", "tune", "--data", str(data_dir), "--space", str(space_file),
               "--tuner", "grid", "--max-trials", "2", "--epochs", "1", "--max-length", "10",
               "--directory", str(directory), "--project", "tiny"]
    directory.mkdir(parents=True, exist_ok=True)
    port = str(free_port())
    processes = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = dict(os.environ, KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP="127.0.0.1",
                   KERASTUNER_ORACLE_PORT=port)
        with open(directory / f"{tuner_id}.log", "w") as log:
            processes[tuner_id] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        return {tuner_id: process.wait(timeout=timeout) for tuner_id, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()


@pytest.fixture(scope="session")
def finished_search_dir(tiny_shop, tiny_space_file, tmp_path_factory) -> Path:
    """A directory holding the finished distributed two-trial search (learning rates 0.003 and 1e-6),
    with ``exit_codes.json`` and each process's log beside the ``tiny`` project."""
    with shared_directory(tmp_path_factory, "tiny_search") as directory:
        if not (directory / "exit_codes.json").exists():
            codes = distributed_tiny_search(tiny_shop[1], tiny_space_file, directory, timeout=400)
            (directory / "exit_codes.json").write_text(json.dumps(codes))
    return directory
