"""Deployment artifacts for the real TF Serving: configs, docker-compose, Kubernetes.

Everything is generated from one :class:`DeploymentConfig`, so the flags, ports and
paths agree across files. ``recsys serve-config`` writes them; ``deploy/`` holds the
output for the default config.

Labelled versions are served with a ``specific`` version policy listing exactly the
labelled versions (TF Serving's canary recipe, tensorflow_serving/g3doc/serving_config.md):
with ``latest {num_versions: N}`` the N+1-th export unloads the version ``stable`` points
at, and TF Serving then answers every ``stable`` request NOT_FOUND.

Usage::

    write_deployment(DeploymentConfig(stable_version=3, canary_version=4), Path("deploy"))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from google.protobuf import text_format

from recsys_base.errors import ConfigError
from serving import contract
from serving.config_files import DEFAULT_PROMETHEUS_PATH, BatchingParameters, MonitoringConfig, SSLConfig
from serving.server.app import ServerConfig
from serving.server.batching import BatchingOptions

MODELS_CONFIG = "models.config"
BATCHING_CONFIG = "batching_parameters.txt"
MONITORING_CONFIG = "monitoring.config"
CONFIG_DIR_IN_CONTAINER = "/config"
# TF Serving parses each --grpc_channel_arguments value as an int32 (server.cc).
MAX_GRPC_INT = 2**31 - 1
# How often Kubernetes runs the startup probe; its failure threshold covers startup_seconds.
STARTUP_PROBE_PERIOD_S = 10
POLICIES = ("latest", "all", "specific")
# The TF Serving release that serves the SavedModels: the TensorFlow release that writes
# them (setup.cfg pins tensorflow and tensorflow-serving-api to it). An older server fails
# to load a newer graph ("NodeDef mentions attr ... not in Op", tensorflow/serving#1737,
# #1757); tests/serving/test_deployment.py fails when setup.cfg and this drift apart.
TF_SERVING_VERSION = "2.21.0"
TF_SERVING_IMAGE = "tensorflow/serving"


@dataclass(frozen=True)
class DeploymentConfig:
    """What to deploy and how; defaults are a 2-replica GPU deployment of the three models.

    ``model_base`` is where the SavedModels live as seen by the server (inside the
    container for docker/Kubernetes). Labels are only written when their version is set;
    the ``specific`` policy serves ``specific_versions``, or if that is empty the labelled
    versions; ``version_policy`` None means ``specific`` when a label is set, else
    ``latest``. ``startup_seconds`` bounds model load plus warmup on a cold GPU node (the
    startup probe's budget); ``max_connection_age_seconds`` makes clients reconnect, and so
    re-resolve the headless Service's pod IPs, at least that often.
    :func:`write_configs` (and so :func:`write_deployment`) validates it.
    """

    model_base: str = "/models"
    models: tuple[str, ...] = contract.MODELS
    version_policy: str | None = None
    num_versions: int = 2
    specific_versions: tuple[int, ...] = ()
    stable_version: int | None = None
    canary_version: int | None = None
    allow_version_labels_for_unavailable_models: bool = ServerConfig.allow_version_labels_for_unavailable_models
    max_message_bytes: int = ServerConfig.max_message_bytes
    max_connection_age_seconds: int = 300
    startup_seconds: int = 600
    max_batch_size: int = BatchingOptions.max_batch_size
    batch_timeout_micros: int = BatchingOptions.batch_timeout_micros
    max_enqueued_batches: int = BatchingOptions.max_enqueued_batches
    num_batch_threads: int = BatchingOptions.num_batch_threads
    pad_variable_length_inputs: bool = BatchingOptions.pad_variable_length_inputs
    prometheus_path: str = DEFAULT_PROMETHEUS_PATH
    file_system_poll_wait_seconds: int = 30
    model_config_file_poll_wait_seconds: int = 60
    image: str = f"{TF_SERVING_IMAGE}:{TF_SERVING_VERSION}-gpu"
    replicas: int = 2
    gpus_per_replica: int = 1
    host_model_dir: str = "../saved_models"  # docker-compose bind mount source, relative to its file

    def validate(self) -> DeploymentConfig:
        """Checks every field; returns ``self``."""
        if self.version_policy is not None and self.version_policy not in POLICIES:
            raise ConfigError(f"version policy must be one of {POLICIES}, got {self.version_policy!r}")
        if self.policy() == "specific" and not self.served_versions():
            raise ConfigError("version policy 'specific' needs specific_versions or a stable/canary version to serve")
        if self.policy() == "latest" and self.labels():
            raise ConfigError(f"labels {sorted(self.labels())} need version policy 'specific' (or 'all'): with 'latest' a newer "
                              "export unloads the version a label points to")
        if self.policy() == "specific":
            unserved = {label: version for label, version in self.labels().items() if version not in self.served_versions()}
            if unserved:
                raise ConfigError(f"labels {unserved} point to versions that specific_versions {list(self.specific_versions)} does not serve")
        if self.num_versions < 1:
            raise ConfigError(f"num_versions must be >= 1, got {self.num_versions}")
        for name in ("stable_version", "canary_version"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if any(version < 1 for version in self.specific_versions):
            raise ConfigError(f"specific_versions must be >= 1, got {list(self.specific_versions)}")
        if not self.models:
            raise ConfigError("give at least one model to deploy")
        if self.replicas < 1:
            raise ConfigError(f"replicas must be >= 1, got {self.replicas}")
        self.batching_options().validate()  # the embedded server's checks: both servers refuse the same values
        if _release(self.image) is not None and _release(self.image) < _release(f"{TF_SERVING_IMAGE}:{TF_SERVING_VERSION}"):
            raise ConfigError(f"image {self.image!r} is older than TensorFlow {TF_SERVING_VERSION}, which writes the models; "
                              "an older server cannot load a newer graph")
        if not 1024 <= self.max_message_bytes <= MAX_GRPC_INT:
            raise ConfigError(f"max_message_bytes must be in 1024..{MAX_GRPC_INT} (TF Serving reads it as an int32), got {self.max_message_bytes}")
        for name in ("max_connection_age_seconds", "startup_seconds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_connection_age_seconds * 1000 > MAX_GRPC_INT:
            raise ConfigError(f"max_connection_age_seconds must be <= {MAX_GRPC_INT // 1000}, got {self.max_connection_age_seconds}")
        if not self.prometheus_path.startswith("/"):
            raise ConfigError(f"prometheus_path must start with '/', got {self.prometheus_path!r}")
        return self

    def batching_options(self) -> BatchingOptions:
        """The batching fields as the embedded server's :class:`BatchingOptions`."""
        return BatchingOptions(
            max_batch_size=self.max_batch_size,
            batch_timeout_micros=self.batch_timeout_micros,
            max_enqueued_batches=self.max_enqueued_batches,
            num_batch_threads=self.num_batch_threads,
            pad_variable_length_inputs=self.pad_variable_length_inputs,
        )

    def labels(self) -> dict[str, int]:
        """Version labels to write: stable/canary for the versions that are set."""
        labels = {contract.STABLE_LABEL: self.stable_version, contract.CANARY_LABEL: self.canary_version}
        return {label: version for label, version in labels.items() if version is not None}

    def policy(self) -> str:
        """The version policy written: ``version_policy``, or ``specific`` if labelled, else ``latest``.

        >>> DeploymentConfig().policy(), DeploymentConfig(stable_version=3).policy()
        ('latest', 'specific')
        """
        return self.version_policy or ("specific" if self.labels() else "latest")

    def served_versions(self) -> tuple[int, ...]:
        """The versions a ``specific`` policy lists: ``specific_versions``, else the labelled ones.

        >>> DeploymentConfig(stable_version=3, canary_version=4).served_versions()
        (3, 4)
        """
        return tuple(sorted(set(self.specific_versions) or set(self.labels().values())))


def _release(image: str) -> tuple[int, int] | None:
    """(major, minor) of an official TF Serving image tag; None for other images.

    >>> _release("tensorflow/serving:2.18.0-gpu"), _release("registry.local/serving:canary")
    ((2, 18), None)
    """
    match = re.fullmatch(rf"{TF_SERVING_IMAGE}:(\d+)\.(\d+)[.\w-]*", image)
    return (int(match[1]), int(match[2])) if match else None


def models_config_text(config: DeploymentConfig) -> str:
    """models.config: a text-format ModelServerConfig with every model of ``config``."""
    from tensorflow_serving.config import model_server_config_pb2

    server_config = model_server_config_pb2.ModelServerConfig()
    for model in config.models:
        entry = server_config.model_config_list.config.add(
            name=model, base_path=f"{config.model_base.rstrip('/')}/{model}", model_platform="tensorflow"
        )
        policy = entry.model_version_policy
        if config.policy() == "latest":
            policy.latest.num_versions = config.num_versions
        elif config.policy() == "all":
            policy.all.SetInParent()
        else:
            policy.specific.versions.extend(config.served_versions())
        for label, version in config.labels().items():
            entry.version_labels[label] = version
    return text_format.MessageToString(server_config)


def batching_parameters_text(config: DeploymentConfig) -> str:
    """The --batching_parameters_file contents (text-format BatchingParameters)."""
    params = BatchingParameters(pad_variable_length_inputs=config.pad_variable_length_inputs)
    params.max_batch_size.value = config.max_batch_size
    params.batch_timeout_micros.value = config.batch_timeout_micros
    params.max_enqueued_batches.value = config.max_enqueued_batches
    params.num_batch_threads.value = config.num_batch_threads
    return text_format.MessageToString(params)


def monitoring_config_text(config: DeploymentConfig) -> str:
    """The --monitoring_config_file contents (Prometheus on the REST port)."""
    monitoring = MonitoringConfig()
    monitoring.prometheus_config.enable = True
    monitoring.prometheus_config.path = config.prometheus_path
    return text_format.MessageToString(monitoring)


def server_flags(
    config: DeploymentConfig,
    models_config: str,
    batching_config: str | None,
    monitoring_config: str,
    port: int = contract.GRPC_PORT,
    rest_port: int = contract.REST_PORT,
    ssl_config: str | None = None,
) -> list[str]:
    """tensorflow_model_server flags for the given config file paths (batching off if None).

    Only flags tensorflow_serving/model_servers/main.cc defines; a ConfigError for ports
    the binary would misread (server.cc: port 0 turns gRPC off and the server refuses to
    start, REST port 0 or equal to the gRPC port silently turns REST and metrics off).
    """
    if port == 0:
        raise ConfigError("gRPC port 0: tensorflow_model_server cannot pick a free port (--port=0 turns its gRPC API off "
                          "and it refuses to start); give a port number")
    if rest_port == 0 or rest_port == port:
        raise ConfigError(f"REST port {rest_port}: tensorflow_model_server would silently run without REST API and metrics "
                          "(--rest_api_port=0, or equal to --port); give a free port number other than the gRPC port")
    for name, value in (("gRPC port", port), ("REST port", rest_port)):
        if not 1 <= value <= 65535:
            raise ConfigError(f"{name} must be in 1..65535, got {value}")
    # Channel arguments override the server's own 2 GiB message limit (server.cc applies
    # them after SetMaxMessageSize), so both servers refuse the same oversized requests.
    channel_arguments = {
        "grpc.max_receive_message_length": config.max_message_bytes,
        "grpc.max_send_message_length": config.max_message_bytes,
        "grpc.max_connection_age_ms": config.max_connection_age_seconds * 1000,
    }
    flags = [
        f"--port={port}",
        f"--rest_api_port={rest_port}",
        f"--model_config_file={models_config}",
        f"--model_config_file_poll_wait_seconds={config.model_config_file_poll_wait_seconds}",
        f"--file_system_poll_wait_seconds={config.file_system_poll_wait_seconds}",
        f"--monitoring_config_file={monitoring_config}",
        # With it a new label (a canary) may point at a version still loading; a label that
        # moves must still point at a loaded version (server_core.cc).
        f"--allow_version_labels_for_unavailable_models={str(config.allow_version_labels_for_unavailable_models).lower()}",
        # grpc.health.v1 for the Kubernetes gRPC probes; the gRPC server only starts once the
        # models of the first config are loaded and warmed up (server.cc).
        "--enable_grpc_healthcheck_service=true",
        "--grpc_channel_arguments=" + ",".join(f"{key}={value}" for key, value in channel_arguments.items()),
    ]
    if batching_config is not None:
        flags += ["--enable_batching=true", f"--batching_parameters_file={batching_config}"]
    if ssl_config is not None:
        flags.append(f"--ssl_config_file={ssl_config}")
    return flags


def ssl_config_text(private_key: bytes, certificate_chain: bytes, client_ca: bytes | None = None) -> str:
    """TF Serving's SSLConfig (text format) for ``--ssl_config_file``: gRPC over TLS, mutual TLS with ``client_ca``.

    The fields hold the PEM contents themselves, not paths (config/ssl_config.proto).
    """
    config = SSLConfig(server_key=private_key.decode("ascii"), server_cert=certificate_chain.decode("ascii"))
    if client_ca is not None:
        config.custom_ca, config.client_verify = client_ca.decode("ascii"), True
    return text_format.MessageToString(config)


def container_flags(config: DeploymentConfig) -> list[str]:
    """The flags for the container images, reading the configs mounted at /config."""
    return server_flags(
        config,
        f"{CONFIG_DIR_IN_CONTAINER}/{MODELS_CONFIG}",
        f"{CONFIG_DIR_IN_CONTAINER}/{BATCHING_CONFIG}",
        f"{CONFIG_DIR_IN_CONTAINER}/{MONITORING_CONFIG}",
    )


def _readiness_model(config: DeploymentConfig) -> str:
    return contract.RECOMMEND_MODEL if contract.RECOMMEND_MODEL in config.models else config.models[0]


def _bash_http_probe(path: str) -> str:
    return (
        f"exec 3<>/dev/tcp/127.0.0.1/{contract.REST_PORT} && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q AVAILABLE <&3"
    )


def docker_compose(config: DeploymentConfig) -> dict:
    """docker-compose.yml as a dict: one GPU TF Serving service per replica."""
    services = {}
    for index in range(config.replicas):
        services[f"recsys-serving-{index}"] = {
            "image": config.image,
            "command": container_flags(config),
            "ports": [f"{contract.GRPC_PORT + 10 * index}:{contract.GRPC_PORT}", f"{contract.REST_PORT + 10 * index}:{contract.REST_PORT}"],
            "volumes": [f"{config.host_model_dir}:{config.model_base}:ro", f"./:{CONFIG_DIR_IN_CONTAINER}:ro"],
            "deploy": {
                "resources": {"reservations": {"devices": [{"driver": "nvidia", "count": config.gpus_per_replica, "capabilities": ["gpu"]}]}}
            },
            "healthcheck": {
                # The tensorflow/serving image has bash but no curl.
                "test": ["CMD", "bash", "-c", _bash_http_probe(f"/v1/models/{_readiness_model(config)}")],
                "interval": "10s",
                "timeout": "3s",
                "retries": 3,
                "start_period": f"{config.startup_seconds}s",  # model load and warmup
            },
            "restart": "unless-stopped",
        }
    return {"services": services}


# The pod label that lets a pod reach the serving pods (see the NetworkPolicy in kubernetes()).
CLIENT_POD_LABEL = ("recsys-serving-client", "true")


def kubernetes(config: DeploymentConfig) -> list[dict]:
    """Kubernetes manifests: ConfigMap with the configs, Deployment (GPU, rolling update,
    probes), headless Service for gRPC 8500 and REST 8501.

    The Service is headless (no cluster IP): a ClusterIP balances connections, and an
    HTTP/2 client keeps one connection, so all its requests would land on one pod. With
    ``dns:///recsys-serving.<namespace>.svc.cluster.local:8500`` and the ``round_robin``
    policy a gRPC client resolves every ready pod and spreads requests over them. The
    startup probe gives model load plus warmup ``startup_seconds`` before the liveness
    probe may restart the pod; both use TF Serving's gRPC health service.

    A NetworkPolicy admits only pods labelled ``CLIENT_POD_LABEL`` (the shop's backend
    services, and Prometheus) to the ports: TF Serving answers HandleReloadConfigRequest
    (which can unload every model) for anyone who reaches its gRPC port, and has no flag
    to turn it off. Kubelet probes are not subject to NetworkPolicy.
    """
    labels = {"app": "recsys-serving"}
    container = {
        "name": "tensorflow-serving",
        "image": config.image,
        "args": container_flags(config),
        "ports": [{"name": "grpc", "containerPort": contract.GRPC_PORT}, {"name": "rest", "containerPort": contract.REST_PORT}],
        "resources": {"limits": {"nvidia.com/gpu": config.gpus_per_replica}},
        "readinessProbe": {
            "httpGet": {"path": f"/v1/models/{_readiness_model(config)}", "port": contract.REST_PORT},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "startupProbe": {
            "grpc": {"port": contract.GRPC_PORT},
            "periodSeconds": STARTUP_PROBE_PERIOD_S,
            "failureThreshold": -(-config.startup_seconds // STARTUP_PROBE_PERIOD_S),
        },
        "livenessProbe": {"grpc": {"port": contract.GRPC_PORT}, "periodSeconds": 10, "failureThreshold": 3},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR_IN_CONTAINER, "readOnly": True},
            {"name": "models", "mountPath": config.model_base, "readOnly": True},
        ],
    }
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(contract.REST_PORT), "prometheus.io/path": config.prometheus_path}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "recsys-serving-config"},
            "data": {
                MODELS_CONFIG: models_config_text(config),
                BATCHING_CONFIG: batching_parameters_text(config),
                MONITORING_CONFIG: monitoring_config_text(config),
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "recsys-serving", "labels": labels},
            "spec": {
                "replicas": config.replicas,
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": labels, "annotations": annotations},
                    "spec": {
                        "containers": [container],
                        "volumes": [
                            {"name": "config", "configMap": {"name": "recsys-serving-config"}},
                            {"name": "models", "persistentVolumeClaim": {"claimName": "recsys-models", "readOnly": True}},
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "recsys-serving", "labels": labels},
            "spec": {
                "clusterIP": "None",
                "selector": labels,
                "ports": [
                    {"name": "grpc", "port": contract.GRPC_PORT, "targetPort": contract.GRPC_PORT},
                    {"name": "rest", "port": contract.REST_PORT, "targetPort": contract.REST_PORT},
                ],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "recsys-serving-clients-only", "labels": labels},
            "spec": {
                "podSelector": {"matchLabels": labels},
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": dict([CLIENT_POD_LABEL])}}],
                    "ports": [{"protocol": "TCP", "port": contract.GRPC_PORT}, {"protocol": "TCP", "port": contract.REST_PORT}],
                }],
            },
        },
    ]


def _write_files(out_dir: Path, texts: dict[str, str]) -> dict[str, Path]:
    """Writes ``texts`` (file name -> text) into ``out_dir``; a ConfigError names what cannot be written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output directory {out_dir} is a file")
    written = {}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            written[name] = out_dir / name
            written[name].write_text(text)
    except OSError as error:
        raise ConfigError(f"cannot write {error.filename or out_dir}: {error.strerror or error}") from None
    return written


def write_configs(config: DeploymentConfig, out_dir: Path) -> dict[str, Path]:
    """Writes models.config, the batching parameters and the monitoring config."""
    config.validate()
    return _write_files(out_dir, {
        MODELS_CONFIG: models_config_text(config),
        BATCHING_CONFIG: batching_parameters_text(config),
        MONITORING_CONFIG: monitoring_config_text(config),
    })


def write_deployment(config: DeploymentConfig, out_dir: Path) -> dict[str, Path]:
    """Writes the configs plus docker-compose.yml and kubernetes.yaml into ``out_dir``."""
    written = write_configs(config, out_dir)  # validates config
    header = "# Generated by `recsys serve-config`; edit the flags there, not here.\n"
    return {**written, **_write_files(out_dir, {
        "docker-compose.yml": header + yaml.safe_dump(docker_compose(config), sort_keys=False),
        "kubernetes.yaml": header + yaml.safe_dump_all(kubernetes(config), sort_keys=False),
    })}
