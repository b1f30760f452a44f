"""Generated deployment files parse as TF Serving's configs and agree with each other."""

import configparser
from pathlib import Path

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

import recsys_base  # noqa: F401 - Keras 2 before the official protos pull in TensorFlow
from recsys_base.errors import ConfigError
from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.config_files import BatchingParameters, MonitoringConfig, parse_text, read_batching_options, read_prometheus_path
from serving.deployment import (
    TF_SERVING_VERSION,
    DeploymentConfig,
    container_flags,
    docker_compose,
    kubernetes,
    server_flags,
    write_deployment,
)

REPO = Path(__file__).resolve().parents[2]


def _official_models_config(path):
    return text_format.Parse(Path(path).read_text(), model_server_config_pb2.ModelServerConfig())


def test_models_config_lists_every_model_with_policy_and_labels(tmp_path):
    written = write_deployment(DeploymentConfig(model_base="/models", stable_version=3, canary_version=4), tmp_path)
    config = _official_models_config(written["models.config"])
    models = {entry.name: entry for entry in config.model_config_list.config}
    assert set(models) == set(contract.MODELS)
    for name, entry in models.items():
        assert entry.base_path == f"/models/{name}" and entry.model_platform == "tensorflow"
        # TF Serving's canary recipe: serve exactly the labelled versions (not 'latest', where
        # a newer export would unload the version 'stable' points at).
        assert list(entry.model_version_policy.specific.versions) == [3, 4]
        assert dict(entry.version_labels) == {contract.STABLE_LABEL: 3, contract.CANARY_LABEL: 4}
    unlabelled = _official_models_config(write_deployment(DeploymentConfig(), tmp_path)["models.config"])
    assert unlabelled.model_config_list.config[0].model_version_policy.latest.num_versions == 2


@pytest.mark.parametrize("policy, field, expected", [("all", "all", None), ("specific", "specific", [5, 6])])
def test_other_version_policies_are_written(tmp_path, policy, field, expected):
    write_deployment(DeploymentConfig(version_policy=policy, specific_versions=(5, 6)), tmp_path)
    entry = _official_models_config(tmp_path / "models.config").model_config_list.config[0]
    assert entry.model_version_policy.WhichOneof("policy_choice") == field
    if expected:
        assert list(entry.model_version_policy.specific.versions) == expected


def test_batching_and_monitoring_configs_round_trip(tmp_path):
    write_deployment(DeploymentConfig(max_batch_size=16, batch_timeout_micros=500, prometheus_path="/metrics"), tmp_path)
    batching = parse_text(tmp_path / "batching_parameters.txt", BatchingParameters)
    assert (batching.max_batch_size.value, batching.batch_timeout_micros.value, batching.pad_variable_length_inputs) == (16, 500, True)
    options = read_batching_options(tmp_path / "batching_parameters.txt")
    assert (options.max_batch_size, options.batch_timeout_micros, options.num_batch_threads) == (16, 500, 4)
    assert parse_text(tmp_path / "monitoring.config", MonitoringConfig).prometheus_config.enable
    assert read_prometheus_path(tmp_path / "monitoring.config") == "/metrics"


def test_config_protos_declare_upstream_field_numbers():
    # From tensorflow_serving/servables/tensorflow/session_bundle_config.proto and
    # tensorflow_serving/config/monitoring_config.proto (not shipped in tensorflow-serving-api).
    batching = {f.name: (f.number, f.message_type.full_name if f.message_type else f.type) for f in BatchingParameters.DESCRIPTOR.fields}
    assert batching == {
        "max_batch_size": (1, "google.protobuf.Int64Value"),
        "batch_timeout_micros": (2, "google.protobuf.Int64Value"),
        "max_enqueued_batches": (3, "google.protobuf.Int64Value"),
        "num_batch_threads": (4, "google.protobuf.Int64Value"),
        "thread_pool_name": (5, "google.protobuf.StringValue"),
        "allowed_batch_sizes": (6, 3),
        "pad_variable_length_inputs": (7, 8),
    }
    assert BatchingParameters.DESCRIPTOR.full_name == "tensorflow.serving.BatchingParameters"
    prometheus = MonitoringConfig.DESCRIPTOR.fields_by_name["prometheus_config"].message_type
    assert {f.name: f.number for f in prometheus.fields} == {"enable": 1, "path": 2}


def test_compose_runs_each_replica_on_a_gpu_with_the_generated_flags():
    services = docker_compose(DeploymentConfig(replicas=2))["services"]
    assert len(services) == 2
    for service in services.values():
        assert service["image"].startswith("tensorflow/serving:") and service["image"].endswith("-gpu")
        assert service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
        flags = dict(flag.lstrip("-").split("=", 1) for flag in service["command"])
        assert flags["model_config_file"] == "/config/models.config"
        assert flags["enable_batching"] == "true" and flags["batching_parameters_file"] == "/config/batching_parameters.txt"
        assert flags["monitoring_config_file"] == "/config/monitoring.config"
        assert "model_config_file_poll_wait_seconds" in flags
    assert sorted(port for service in services.values() for port in service["ports"]) == ["8500:8500", "8501:8501", "8510:8500", "8511:8501"]


def test_kubernetes_deployment_has_gpu_probe_rolling_update_and_ports():
    config_map, deployment, service, _ = kubernetes(DeploymentConfig(replicas=3))
    assert set(config_map["data"]) == {"models.config", "batching_parameters.txt", "monitoring.config"}
    text_format.Parse(config_map["data"]["models.config"], model_server_config_pb2.ModelServerConfig())
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    container = spec["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/models/recommend", "port": 8501}
    assert {port["containerPort"] for port in container["ports"]} == {8500, 8501}
    assert {port["port"] for port in service["spec"]["ports"]} == {8500, 8501}
    # Headless: clients resolve every pod (dns:/// + round_robin) instead of pinning one
    # HTTP/2 connection to one pod behind a cluster IP.
    assert service["spec"]["clusterIP"] == "None"
    # Liveness may only act once model load and warmup are done (10 min by default).
    startup = container["startupProbe"]
    assert startup["grpc"] == {"port": 8500} and startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert container["livenessProbe"]["grpc"] == {"port": 8500}
    flags = dict(flag.lstrip("-").split("=", 1) for flag in container["args"])
    assert flags["enable_grpc_healthcheck_service"] == "true"
    assert kubernetes(DeploymentConfig(startup_seconds=1205))[1]["spec"]["template"]["spec"]["containers"][0]["startupProbe"][
        "failureThreshold"] == 121


# Every flag tensorflow_model_server defines (tensorflow_serving/model_servers/main.cc);
# it refuses to start on any other.
MAIN_CC_FLAGS = {
    "port", "grpc_socket_path", "rest_api_port", "rest_api_num_threads", "rest_api_timeout_in_ms",
    "rest_api_enable_cors_support", "enable_batching", "allow_version_labels_for_unavailable_models",
    "batching_parameters_file", "enable_per_model_batching_parameters", "model_config_file",
    "model_config_file_poll_wait_seconds", "model_name", "model_base_path", "num_load_threads",
    "num_unload_threads", "max_num_load_retries", "load_retry_interval_micros", "file_system_poll_wait_seconds",
    "flush_filesystem_caches", "tensorflow_session_parallelism", "tensorflow_intra_op_parallelism",
    "tensorflow_inter_op_parallelism", "use_alts_credentials", "ssl_config_file", "platform_config_file",
    "per_process_gpu_memory_fraction", "saved_model_tags", "grpc_channel_arguments", "grpc_max_threads",
    "enable_model_warmup", "num_request_iterations_for_warmup", "version", "monitoring_config_file",
    "remove_unused_fields_from_bundle_metagraph", "prefer_tflite_model", "num_tflite_pools",
    "num_tflite_interpreters_per_pool", "enable_signature_method_name_check", "xla_cpu_compilation_enabled",
    "xla_gpu_compilation_enabled", "enable_profiler", "thread_pool_factory_config_file", "mixed_precision",
    "skip_initialize_tpu", "tensorflow_session_config_file", "enable_grpc_healthcheck_service",
    "enable_serialization_as_tensor_content",
}


def test_every_generated_flag_is_one_tensorflow_model_server_defines():
    flags = dict(flag.lstrip("-").split("=", 1) for flag in container_flags(DeploymentConfig(max_message_bytes=32 * 2**20)))
    assert set(flags) <= MAIN_CC_FLAGS
    # server.cc splits on ',' then '=' and passes int values as ints.
    arguments = dict(argument.split("=") for argument in flags["grpc_channel_arguments"].split(","))
    assert arguments == {"grpc.max_receive_message_length": str(32 * 2**20), "grpc.max_send_message_length": str(32 * 2**20),
                         "grpc.max_connection_age_ms": "300000"}


@pytest.mark.parametrize(
    "ports, message",
    [((0, 8501), "cannot pick a free port"), ((8500, 0), "without REST API and metrics"), ((8500, 8500), "other than the gRPC port")],
)
def test_ports_the_binary_would_misread_are_refused(ports, message):
    with pytest.raises(ConfigError, match=message):
        server_flags(DeploymentConfig(), "m", None, "mon", *ports)


def _pins() -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    requirements = parser["options"]["install_requires"].split()
    return dict(requirement.split("==") for requirement in requirements if "==" in requirement)


def test_the_image_serves_the_tensorflow_release_that_writes_the_models():
    # An older TF Serving cannot load a newer graph (tensorflow/serving#1737): the image tag,
    # setup.cfg's tensorflow and tensorflow-serving-api pins and the installed TensorFlow agree.
    pins = _pins()
    assert pins["tensorflow"] == pins["tensorflow-serving-api"] == TF_SERVING_VERSION, (pins, TF_SERVING_VERSION)
    assert tensorflow().__version__.split(".")[:2] == TF_SERVING_VERSION.split(".")[:2]
    assert DeploymentConfig().image == f"tensorflow/serving:{TF_SERVING_VERSION}-gpu"
    for name in ("docker-compose.yml", "kubernetes.yaml"):
        assert f"image: tensorflow/serving:{TF_SERVING_VERSION}-gpu" in (REPO / "deploy" / name).read_text()
    with pytest.raises(ConfigError, match="older than TensorFlow"):
        DeploymentConfig(image="tensorflow/serving:2.18.0-gpu").validate()
    DeploymentConfig(image="registry.local/tf-serving:patched").validate()  # own builds are the operator's call


def test_committed_deploy_directory_matches_the_generator(tmp_path):
    written = write_deployment(DeploymentConfig(stable_version=1), tmp_path)
    for name, path in written.items():
        assert (REPO / "deploy" / name).read_text() == path.read_text(), f"deploy/{name} is stale: see deploy/README.md"
    for name in ("docker-compose.yml", "kubernetes.yaml"):
        assert list(yaml.safe_load_all((REPO / "deploy" / name).read_text()))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"version_policy": "newest"}, "version policy must be one of"),
        ({"version_policy": "specific"}, "needs specific_versions"),
        ({"version_policy": "latest", "stable_version": 1}, "with 'latest' a newer export unloads the version a label points to"),
        ({"specific_versions": (2,), "version_policy": "specific", "stable_version": 1}, r"labels \{'stable': 1\} point to versions"),
        ({"max_message_bytes": 2**31}, "TF Serving reads it as an int32"),
        ({"startup_seconds": 0}, "startup_seconds must be >= 1"),
        ({"stable_version": 0}, "stable_version must be >= 1"),
        ({"prometheus_path": "metrics"}, "must start with '/'"),
    ],
)
def test_bad_deployment_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        DeploymentConfig(**options).validate()


def test_unparseable_config_files_name_the_file(tmp_path):
    bad = tmp_path / "batching.txt"
    bad.write_text("max_batch_size: banana")
    with pytest.raises(ConfigError, match="batching.txt: not a valid BatchingParameters"):
        read_batching_options(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        read_prometheus_path(tmp_path / "missing.config")


def test_only_labelled_client_pods_may_reach_the_serving_ports():
    from serving.deployment import CLIENT_POD_LABEL

    *_, policy = kubernetes(DeploymentConfig())
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": dict([CLIENT_POD_LABEL])}}]
    assert {port["port"] for port in rule["ports"]} == {contract.GRPC_PORT, contract.REST_PORT}
