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
from serving.deployment import TF_SERVING_VERSION, DeploymentConfig, docker_compose, kubernetes, write_deployment

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
        assert entry.model_version_policy.latest.num_versions == 2
        assert dict(entry.version_labels) == {contract.STABLE_LABEL: 3, contract.CANARY_LABEL: 4}


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
    config_map, deployment, service = kubernetes(DeploymentConfig(replicas=3))
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
