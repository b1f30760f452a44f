"""TF Serving's config files: models.config, batching parameters, monitoring config, SSL config.

``ModelServerConfig`` comes from tensorflow-serving-api. ``BatchingParameters``,
``MonitoringConfig`` and ``SSLConfig`` are not shipped in that package, so they are
declared here with the field numbers of
tensorflow_serving/servables/tensorflow/session_bundle_config.proto,
tensorflow_serving/config/monitoring_config.proto and
tensorflow_serving/config/ssl_config.proto, in a private descriptor pool.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format

from recsys_base.errors import ConfigError
from serving.contract.protodef import WRAPPERS_FILE, add_file, message, message_class, new_pool

_POOL = new_pool()
add_file(
    _POOL,
    "thin/tensorflow_serving/config_files.proto",
    "tensorflow.serving",
    [
        message(
            "BatchingParameters",
            [
                ("max_batch_size", 1, ".google.protobuf.Int64Value"),
                ("batch_timeout_micros", 2, ".google.protobuf.Int64Value"),
                ("max_enqueued_batches", 3, ".google.protobuf.Int64Value"),
                ("num_batch_threads", 4, ".google.protobuf.Int64Value"),
                ("thread_pool_name", 5, ".google.protobuf.StringValue"),
                ("allowed_batch_sizes", 6, "repeated int64"),
                ("pad_variable_length_inputs", 7, "bool"),
            ],
        ),
        message("PrometheusConfig", [("enable", 1, "bool"), ("path", 2, "string")]),
        message("MonitoringConfig", [("prometheus_config", 1, ".tensorflow.serving.PrometheusConfig")]),
        message("SSLConfig", [("server_key", 1, "string"), ("server_cert", 2, "string"), ("custom_ca", 3, "string"),
                              ("client_verify", 4, "bool")]),
    ],
    deps=[WRAPPERS_FILE],
)
BatchingParameters = message_class(_POOL, "tensorflow.serving.BatchingParameters")
MonitoringConfig = message_class(_POOL, "tensorflow.serving.MonitoringConfig")
SSLConfig = message_class(_POOL, "tensorflow.serving.SSLConfig")
DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


def parse_text(path: str | Path, message_type):
    """Parses the text-format file ``path`` into ``message_type``; ConfigError if it cannot."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:  # a UnicodeDecodeError has no strerror
        raise ConfigError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        return text_format.Parse(text, message_type())
    except text_format.ParseError as error:
        raise ConfigError(f"{path}: not a valid {message_type.DESCRIPTOR.name} text proto: {error}") from None


def read_model_server_config(path: str | Path):
    """The ModelServerConfig (official proto) in ``path``."""
    from tensorflow_serving.config import model_server_config_pb2

    return parse_text(path, model_server_config_pb2.ModelServerConfig)


def read_batching_options(path: str | Path):
    """Validated BatchingOptions from a BatchingParameters file (unset fields keep the defaults)."""
    from serving.server.batching import BatchingOptions

    params = parse_text(path, BatchingParameters)
    values = {
        name: getattr(params, name).value
        for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
        if params.HasField(name)
    }
    return BatchingOptions(**values, pad_variable_length_inputs=params.pad_variable_length_inputs).validate()


def read_prometheus_path(path: str | Path) -> str | None:
    """The metrics path of a MonitoringConfig file, or None if Prometheus is disabled."""
    config = parse_text(path, MonitoringConfig).prometheus_config
    return (config.path or DEFAULT_PROMETHEUS_PATH) if config.enable else None
