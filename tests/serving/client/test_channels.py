"""The service config and target the client hands gRPC, read back as gRPC reads them."""

import json

import grpc
import pytest

from serving.client import ClientConfig, RecommenderClient, RetryThrottling, TlsConfig
from serving.client.channels import SERVICES, channel_options, channel_target, service_config


def test_the_service_config_carries_the_typed_config():
    config = ClientConfig(deadline_s=0.25, retries=4, backoff_base_s=0.01, backoff_cap_s=0.3, backoff_multiplier=1.5,
                          retry_on=(grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED),
                          retry_throttling=RetryThrottling(max_tokens=50, token_ratio=0.2), wait_for_ready=False)
    document = json.loads(service_config(config.validate()))
    assert document["loadBalancingConfig"] == [{"round_robin": {}}]
    assert document["retryThrottling"] == {"maxTokens": 50, "tokenRatio": 0.2}
    [method] = document["methodConfig"]
    assert method["name"] == [{"service": "tensorflow.serving.ModelService"}, {"service": "tensorflow.serving.PredictionService"}]
    assert method["waitForReady"] is False and "timeout" not in method  # calls carry deadline_s
    assert method["retryPolicy"] == {
        "maxAttempts": 5, "initialBackoff": "0.01s", "maxBackoff": "0.3s", "backoffMultiplier": 1.5,
        "retryableStatusCodes": ["UNAVAILABLE", "ABORTED"],
    }  # fmt: skip


def test_no_retries_means_no_retry_policy_and_no_throttling_by_default():
    document = json.loads(service_config(ClientConfig(retries=0)))
    assert "retryPolicy" not in document["methodConfig"][0] and "retryThrottling" not in document
    assert len(SERVICES) == 2


def test_channel_options_keep_transparent_retries_and_set_keepalive():
    options = dict(channel_options(ClientConfig(keepalive_s=20.0, keepalive_timeout_s=4.0), None))
    assert "grpc.enable_retries" not in options  # 0 would also turn off gRPC's transparent retries
    assert json.loads(options["grpc.service_config"])["loadBalancingConfig"] == [{"round_robin": {}}]
    assert (options["grpc.keepalive_time_ms"], options["grpc.keepalive_timeout_ms"], options["grpc.keepalive_permit_without_calls"]) == (20000, 4000, 0)
    assert options["grpc.per_rpc_retry_buffer_size"] == options["grpc.max_send_message_length"]
    assert "grpc.keepalive_time_ms" not in dict(channel_options(ClientConfig(keepalive_s=None), None))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"deadline_s": 0}, "deadline_s must be a number of seconds >= 0.001, got 0"),
        ({"retries": 5}, r"retries must be an integer in 0\.\.4"),
        ({"retries": -1}, r"retries must be an integer in 0\.\.4"),
        ({"backoff_base_s": 0.5, "backoff_cap_s": 0.1}, r"backoff_cap_s \(0\.1\) must be >= backoff_base_s \(0\.5\)"),
        ({"backoff_multiplier": 0}, "backoff_multiplier must be > 0"),
        ({"retry_on": ("UNAVAILABLE",)}, "retry_on must be a non-empty tuple of grpc.StatusCode"),
        ({"retry_on": ()}, "retry_on must be a non-empty tuple"),
        ({"retry_throttling": RetryThrottling(max_tokens=0)}, r"retry_throttling.max_tokens must be an integer in 1\.\.1000"),
        ({"retry_throttling": RetryThrottling(token_ratio=0)}, "retry_throttling.token_ratio must be > 0"),
        ({"wait_for_ready": 1}, "wait_for_ready must be True or False"),
        ({"keepalive_s": -1.0}, "keepalive_s must be a number of seconds"),
        ({"max_message_bytes": 0}, "max_message_bytes must be a positive integer"),
    ],
)
def test_bad_config_fields_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        ClientConfig(**fields).validate()
    with pytest.raises(ValueError, match=message):
        RecommenderClient(["127.0.0.1:1"], **fields)


def test_client_options_are_checked_where_they_enter():
    with pytest.raises(TypeError, match=r"unknown client option\(s\) \['seed'\]"):
        RecommenderClient(["127.0.0.1:1"], seed=0)
    with pytest.raises(ValueError, match="either config or its fields"):
        RecommenderClient(["127.0.0.1:1"], ClientConfig(), deadline_s=1.0)
    with pytest.raises(ValueError, match="TlsConfig.server_name"):
        RecommenderClient(["127.0.0.1:1", "127.0.0.2:1"], tls=TlsConfig(root_certificates=b"ca"))


@pytest.mark.parametrize(
    "targets, expected",
    [
        ("localhost:8500", "localhost:8500"),
        (["recsys.internal:8500"], "recsys.internal:8500"),
        (["10.0.0.1:8500", "10.0.0.2:8510"], "ipv4:10.0.0.1:8500,10.0.0.2:8510"),
        (("[::1]:8500", "[fe80::1]:8500"), "ipv6:[::1]:8500,[fe80::1]:8500"),
        ("dns:///recsys-serving.shop.svc.cluster.local:8500", "dns:///recsys-serving.shop.svc.cluster.local:8500"),
        (["ipv4:10.0.0.1:8500,10.0.0.2:8500"], "ipv4:10.0.0.1:8500,10.0.0.2:8500"),
    ],
)
def test_targets_become_one_grpc_target(targets, expected):
    assert channel_target(targets) == expected


@pytest.mark.parametrize(
    "targets, message",
    [
        ([], "give host:port replicas"),
        (["10.0.0.1"], "'10.0.0.1' is not host:port"),
        (["10.0.0.1:99999"], "'10.0.0.1:99999' is not host:port"),
        (["a.internal:8500", "b.internal:8500"], "'a.internal:8500': several replicas must be IP addresses"),
        (["10.0.0.1:8500", "[::1]:8500"], "mix IPv4 and IPv6"),
        (["dns:///recsys:8500", "10.0.0.1:8500"], "names its replicas itself; give it alone"),
    ],
)
def test_bad_targets_are_named(targets, message):
    with pytest.raises(ValueError, match=message):
        channel_target(targets)
