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


@pytest.fixture(scope="session")
def tls_certificates(tmp_path_factory) -> dict[str, bytes]:
    """PEMs made with openssl: a CA (``ca.pem``) and server/client pairs it signed (``server.key``/``server.pem``,
    ``client.key``/``client.pem``), valid for localhost and 127.0.0.1; also written under ``["dir"]``."""
    import subprocess

    directory = tmp_path_factory.mktemp("certs")
    ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", *ec_key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=test-ca")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        run("req", *ec_key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "1", "-extfile", "san.ext")  # fmt: skip
    return {"dir": directory, **{path.name: path.read_bytes() for path in directory.iterdir() if path.suffix in (".pem", ".key")}}
