"""``serve(config)``: the embedded TF-Serving-compatible server, started in-process."""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

from recsys_base.errors import ConfigError
from serving import contract
from serving.config_files import read_batching_options, read_model_server_config, read_prometheus_path
from serving.server.batching import BatchingOptions
from serving.server.limits import MAX_INPUT_ELEMENTS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerTls:
    """PEM bytes for the server's TLS; ``client_ca`` set means clients must present a cert."""

    private_key: bytes
    certificate_chain: bytes
    client_ca: bytes | None = None


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``serve`` needs; the flags mirror tensorflow_model_server's.

    ``port``/``rest_port`` 0 pick a free port; ``rest_port`` None disables HTTP (TF
    Serving's REST API and the metrics). ``max_message_bytes`` bounds gRPC messages and
    REST request bodies alike. ``config_poll_seconds`` > 0 re-reads the models config when it
    changes (TF Serving's --model_config_file_poll_wait_seconds). Relative base paths in the models config resolve against
    ``model_base``, and no base path may leave it. ``allow_version_labels_for_unavailable_models``
    is TF Serving's flag (semantics in :mod:`serving.server.manager`); it defaults to true
    here, as in the generated deployment, because without it TF Serving refuses any label
    in the config it starts with (server_core.cc checks labels before loading models).
    :func:`serve` validates it.
    """

    model_config_file: Path
    model_base: Path | None = None
    host: str = "127.0.0.1"
    port: int = contract.GRPC_PORT
    rest_port: int | None = None
    poll_seconds: float = 1.0
    config_poll_seconds: float = 0.0
    enable_batching: bool = False
    batching_parameters_file: Path | None = None
    monitoring_config_file: Path | None = None
    max_message_bytes: int = contract.DEFAULT_MAX_MESSAGE_BYTES
    tls: ServerTls | None = None
    workers: int = 64
    enable_grpc_healthcheck_service: bool = False
    allow_version_labels_for_unavailable_models: bool = True
    # HandleReloadConfigRequest can unload every model: off unless asked for, and then
    # only for callers on loopback or authenticated by mutual TLS (service.ModelService).
    allow_config_reload: bool = False
    # The most elements one input tensor may declare: checked before it is decoded, since
    # TF's compact encoding lets a few bytes declare any shape (RESOURCE_EXHAUSTED past it).
    max_input_elements: int = MAX_INPUT_ELEMENTS

    def validate(self) -> ServerConfig:
        """Checks every field; returns ``self``."""
        for name in ("port", "rest_port"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise ConfigError(f"{name} must be in 0..65535, got {value}")
        for name in ("poll_seconds", "config_poll_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (0: never poll), got {getattr(self, name)}")
        if self.max_message_bytes < 1024:
            raise ConfigError(f"max_message_bytes must be >= 1024, got {self.max_message_bytes}")
        if self.max_input_elements < 1:
            raise ConfigError(f"max_input_elements must be >= 1, got {self.max_input_elements}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.batching_parameters_file is not None and not self.enable_batching:
            raise ConfigError("a batching parameters file needs enable_batching (as --enable_batching does)")
        return self

    def batching(self) -> BatchingOptions | None:
        """The batching options in effect (None: batching off)."""
        if not self.enable_batching:
            return None
        return read_batching_options(self.batching_parameters_file) if self.batching_parameters_file else BatchingOptions()


class ServerHandle:
    """A running embedded server: ``port``, ``rest_port``, ``manager``, ``stop()``."""

    def __init__(self, grpc_server, http_server, manager, metrics, port: int, stop_watching: threading.Event):
        self._grpc = grpc_server
        self._http = http_server
        self._stop_watching = stop_watching
        self.manager = manager
        self.metrics = metrics
        self.port = port
        self.rest_port = http_server.server_port if http_server else None

    def stop(self, grace_s: float = 1.0) -> None:
        """Stops accepting calls, lets running ones finish for ``grace_s``, unloads models."""
        self._stop_watching.set()
        self._grpc.stop(grace_s).wait()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self.manager.stop()

    def wait(self) -> None:
        """Blocks until the server stops."""
        self._grpc.wait_for_termination()


def serve(config: ServerConfig) -> ServerHandle:
    """Loads the configured models (blocking until the first poll is done) and starts serving."""
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    from serving.server.errors import ParseErrorsAsInvalidArgument
    from serving.server.http import start_http
    from serving.server.manager import ModelManager, model_entries
    from serving.server.metrics import ServerMetrics
    from serving.server.service import ModelService, PredictionService

    config.validate()
    entries = model_entries(read_model_server_config(config.model_config_file), config.model_base)
    metrics_path = read_prometheus_path(config.monitoring_config_file) if config.monitoring_config_file else None
    metrics = ServerMetrics()
    manager = ModelManager(entries, config.batching(), metrics, config.allow_version_labels_for_unavailable_models,
                           config.max_input_elements)
    manager.poll()
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0),  # two replicas must never share a port by accident
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="grpc"), options=options,
                         interceptors=[ParseErrorsAsInvalidArgument()])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(manager, metrics), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager, metrics, config.model_base, config.allow_config_reload,
                                                                         mutual_tls=config.tls is not None and config.tls.client_ca is not None), server)
    if config.enable_grpc_healthcheck_service:
        _add_health_service(server)
    address = f"{config.host}:{config.port}"
    try:
        if config.tls is None:
            port = server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials(
                [(config.tls.private_key, config.tls.certificate_chain)],
                root_certificates=config.tls.client_ca,
                require_client_auth=config.tls.client_ca is not None,
            )
            port = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpcio reports a failed bind either way, depending on version
        port = 0
    if port == 0:
        manager.stop()
        raise ConfigError(f"cannot bind gRPC to {address} (in use or not a local address)")
    server.start()
    http = None
    if config.rest_port is not None:
        try:
            http = start_http(config.host, config.rest_port, manager, metrics, metrics_path, config.max_message_bytes)
        except OSError as error:
            server.stop(0)
            manager.stop()
            raise ConfigError(f"cannot bind HTTP to {config.host}:{config.rest_port}: {error.strerror or error}") from None
    if config.poll_seconds > 0:
        manager.start(config.poll_seconds)
    stop_watching = threading.Event()
    if config.config_poll_seconds > 0:
        threading.Thread(
            target=_watch_models_config, args=(config, manager, stop_watching), name="config-watcher", daemon=True
        ).start()
    log.info("embedded server: gRPC on %s:%d%s", config.host, port, f", HTTP on {config.host}:{http.server_port}" if http else "")
    return ServerHandle(server, http, manager, metrics, port, stop_watching)


# What --enable_grpc_healthcheck_service reports (model_servers/server.cc): the server as a
# whole ("") and the two services under their short names, SERVING from the start, which
# comes after the first models loaded (serve() polls before it starts the gRPC server).
HEALTH_SERVICES = ("", "ModelService", "PredictionService")


def _add_health_service(server) -> None:
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    servicer = health.HealthServicer()
    for service in HEALTH_SERVICES:
        servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)


def _watch_models_config(config: ServerConfig, manager, stop: threading.Event) -> None:
    """Applies the models config again whenever the file changes; a bad edit is logged and
    the current models keep serving."""
    from serving.server.errors import RequestFailed
    from serving.server.manager import model_entries

    def stamp():
        try:
            return config.model_config_file.stat().st_mtime_ns
        except OSError:
            return None

    last = stamp()
    while not stop.wait(config.config_poll_seconds):
        current = stamp()
        if current is None or current == last:
            continue
        last = current
        try:
            manager.apply(model_entries(read_model_server_config(config.model_config_file), config.model_base))
            log.info("models config %s re-read", config.model_config_file)
        except (ConfigError, RequestFailed) as error:
            log.error("models config %s not applied, keeping the current models: %s", config.model_config_file, error)
