"""The serving target the conformance suite checks, and what a test may assume about it.

The suite checks that a server behaves as serving/contract and TensorFlow Serving specify,
so the same tests run against three targets (``target`` fixture, one per test session):

* default (CI): the toy models of :mod:`serving.testing` with the production configs of
  :func:`serving.deployment.write_configs` (stable label, batching, monitoring), served by
  the embedded server with batching, REST and the gRPC health service on;
* ``tensorflow_model_server`` on PATH: the same exports and configs served by the real
  binary, started with the production flags (:func:`serving.deployment.server_flags`);
* ``RECSYS_SERVING_TARGET=host:port``: an existing deployment of trained models (one
  replica: the metrics are per process). ``RECSYS_SERVING_REST=host:port`` names its REST
  port; ``RECSYS_SERVING_HEALTH=off`` says it runs without the gRPC health service (the
  generated deployment runs it, so the default is on).

Against a deployment the tests know nothing about the models: they learn item ids from
``retrieve`` with an empty session and compare answers with each other, never with fixed
values. A test that needs REST fails when no REST address is given, saying to set
RECSYS_SERVING_REST, rather than skipping: a conformance run that silently checked less
would read as a pass. Where the embedded server knowingly differs from TF Serving, the
fidelity table (serving/README.md) says how, and no test here asserts either behaviour.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from serving import contract
from serving.client import RecommenderClient, ServingError
from serving.config_files import DEFAULT_PROMETHEUS_PATH

TARGET_ENV = "RECSYS_SERVING_TARGET"
REST_ENV = "RECSYS_SERVING_REST"
HEALTH_ENV = "RECSYS_SERVING_HEALTH"
MODEL_SERVER_BINARY = "tensorflow_model_server"
TOY_VERSION = 1
# A batch closes after 20 ms: long enough that requests sent together on a loaded 2-core CI
# machine share one, short enough that the suite's single requests stay quick.
BATCH_TIMEOUT_MICROS = 20_000
START_TIMEOUT_S = 120.0
# How many items the suite learns from a deployment: the largest k and candidate list it sends.
CATALOG_SAMPLE = 16

@dataclass
class Target:
    """Where the suite sends requests and what is served there.

    ``toy``: the toy models of serving.testing (so answers are known); ``stable_version``:
    the version the ``stable`` label names, when known; ``item_ids``: catalogue items valid
    in requests (learned from the target when not toy); ``kind``: ``embedded``,
    ``tensorflow_model_server`` or ``deployment``.
    """

    grpc: str
    rest: str | None
    kind: str
    health: bool
    toy: bool
    stable_version: int | None = None
    metrics_path: str = DEFAULT_PROMETHEUS_PATH
    item_ids: list[str] = field(default_factory=list)

    def client(self) -> RecommenderClient:
        """A thin client on the gRPC address with a generous deadline (CI shares 2 cores)."""
        return RecommenderClient([self.grpc], deadline_s=30)

    def rest_address(self) -> str:
        """The REST host:port; fails the calling test when the target has none."""
        if self.rest is None:
            pytest.fail(f"this test needs the target's REST port: set {REST_ENV}=host:port (e.g. host:{contract.REST_PORT})")
        return self.rest


def _free_port() -> int:
    # tensorflow_model_server takes --port=0 as "no gRPC", so real ports are picked here.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _toy_configs(root: Path) -> dict[str, Path]:
    """Exports the toy models and writes the production configs for them."""
    from serving.deployment import DeploymentConfig, write_configs
    from serving.testing import export_toy_models

    export_toy_models(root / "models", version=TOY_VERSION)
    deployment = DeploymentConfig(model_base=str(root / "models"), stable_version=TOY_VERSION, batch_timeout_micros=BATCH_TIMEOUT_MICROS)
    return write_configs(deployment, root / "config")


def _wait_until_available(target: Target, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with target.client() as client:
        for model in contract.MODELS:
            while True:
                if process.poll() is not None:
                    pytest.fail(f"{MODEL_SERVER_BINARY} exited with {process.returncode}; the end of {log}:\n{log.read_text()[-4000:]}")
                try:
                    if any(status.state == "AVAILABLE" for status in client.status(model)):
                        break
                except ServingError:
                    pass  # not listening yet, or the model not loaded yet
                if time.monotonic() > deadline:
                    pytest.fail(f"{MODEL_SERVER_BINARY}: model {model!r} not AVAILABLE after {START_TIMEOUT_S:.0f}s")
                time.sleep(0.5)


def _learn_item_ids(target: Target) -> list[str]:
    """Items a deployment's catalogue holds: what retrieve answers for an empty session."""
    with target.client() as client:
        items = [item for item, _ in client.retrieve([], k=CATALOG_SAMPLE)]
    if len(items) < CATALOG_SAMPLE:
        pytest.fail(f"retrieve with an empty session and k={CATALOG_SAMPLE} answered {len(items)} items; the suite needs {CATALOG_SAMPLE}")
    return items


@pytest.fixture(scope="session")
def target(tmp_path_factory):
    from serving.testing import TOY_ITEMS, item_ids

    if os.environ.get(TARGET_ENV):
        health = os.environ.get(HEALTH_ENV, "on")
        if health not in ("on", "off"):
            pytest.fail(f"{HEALTH_ENV} must be 'on' or 'off', got {health!r}")
        found = Target(os.environ[TARGET_ENV], os.environ.get(REST_ENV) or None, "deployment", health == "on", toy=False)
        found.item_ids = _learn_item_ids(found)
        yield found
        return
    import recsys_base  # noqa: F401 - selects Keras 2 before TensorFlow loads

    root = tmp_path_factory.mktemp("conformance")
    configs = _toy_configs(root)
    binary = shutil.which(MODEL_SERVER_BINARY)
    if binary is None:
        from serving.server import ServerConfig, serve

        handle = serve(ServerConfig(
            configs["models.config"], model_base=root / "models", port=0, rest_port=0, enable_batching=True,
            batching_parameters_file=configs["batching_parameters.txt"], monitoring_config_file=configs["monitoring.config"],
            enable_grpc_healthcheck_service=True,
        ))  # fmt: skip
        yield Target(f"127.0.0.1:{handle.port}", f"127.0.0.1:{handle.rest_port}", "embedded", True, True, TOY_VERSION,
                     item_ids=item_ids(TOY_ITEMS))
        handle.stop()
        return
    from serving.deployment import DeploymentConfig, server_flags

    port, rest_port = _free_port(), _free_port()
    flags = server_flags(DeploymentConfig(), str(configs["models.config"]), str(configs["batching_parameters.txt"]),
                         str(configs["monitoring.config"]), port=port, rest_port=rest_port)
    log = root / f"{MODEL_SERVER_BINARY}.log"  # a file, not a pipe: the server logs a lot and must never block on it
    with open(log, "wb") as log_file:
        process = subprocess.Popen([binary, *flags, "--enable_grpc_healthcheck_service=true"], stdout=log_file, stderr=subprocess.STDOUT)
    started = Target(f"127.0.0.1:{port}", f"127.0.0.1:{rest_port}", MODEL_SERVER_BINARY, True, True, TOY_VERSION,
                     item_ids=item_ids(TOY_ITEMS))
    try:
        _wait_until_available(started, process, log)
        yield started
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def client(target):
    with target.client() as opened:
        yield opened

