"""The standard gRPC health service, as TF Serving's --enable_grpc_healthcheck_service serves it."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving.server.app import HEALTH_SERVICES
from serving.testing import start_toy_server


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with_health = start_toy_server(tmp_path_factory.mktemp("health"), models=("recommend",), enable_grpc_healthcheck_service=True)
    without = start_toy_server(tmp_path_factory.mktemp("no-health"), models=("recommend",))
    yield with_health, without
    with_health.stop()
    without.stop()


def _check(port: int, service: str):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)


@pytest.mark.parametrize("service", HEALTH_SERVICES)
def test_the_server_and_its_services_report_serving_once_models_loaded(servers, service):
    assert _check(servers[0].port, service).status == health_pb2.HealthCheckResponse.SERVING


def test_an_unknown_service_is_not_found(servers):
    with pytest.raises(grpc.RpcError) as caught:
        _check(servers[0].port, "tensorflow.serving.PredictionService")  # TF Serving registers the short names only
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


def test_without_the_flag_there_is_no_health_service(servers):
    with pytest.raises(grpc.RpcError) as caught:
        _check(servers[1].port, "")
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
