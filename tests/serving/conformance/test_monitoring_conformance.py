"""What dashboards, alerts and probes read: the Prometheus page and the gRPC health service.

Against a deployment, point RECSYS_SERVING_TARGET and RECSYS_SERVING_REST at one replica:
the counters are per process.
"""

from __future__ import annotations

import re
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving import contract
from serving.client import ServingError
from serving.contract.warmup import warmup_inputs

MODEL = contract.RECOMMEND_MODEL
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"


def _scrape(target) -> str:
    url = f"http://{target.rest_address()}{target.metrics_path}"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200, url
        return response.read().decode()


def _sample(page: str, line_prefix: str) -> float:
    """The value of the series whose line starts with ``line_prefix`` (0 when it is absent)."""
    for line in page.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_request_count_by_model_and_status_grows_with_requests(target, client):
    """servables/tensorflow/util.cc ``RecordModelRequestCount`` from prediction_service_impl.cc; util/prometheus_exporter.cc renders it."""
    series = [f'{REQUEST_COUNT}{{model_name="{MODEL}",status="{status}"}}' for status in ("OK", "INVALID_ARGUMENT")]
    before = _scrape(target)
    assert f"# TYPE {REQUEST_COUNT} counter" in before
    client.predict(MODEL, warmup_inputs(MODEL, target.item_ids))
    with pytest.raises(ServingError):
        client.predict(MODEL, {**warmup_inputs(MODEL, target.item_ids), contract.K: np.array([0], dtype=np.int32)})
    after = _scrape(target)
    for prefix in series:
        assert _sample(after, prefix) >= _sample(before, prefix) + 1, f"{prefix} did not grow"


def test_request_latency_is_a_histogram_by_model_api_and_entrypoint(target, client):
    """servables/tensorflow/util.cc ``RecordRequestLatency``: successful gRPC Predicts, microseconds."""
    client.predict(MODEL, warmup_inputs(MODEL, target.item_ids))
    page = _scrape(target)
    assert f"# TYPE {REQUEST_LATENCY} histogram" in page
    count = f'{REQUEST_LATENCY}_count{{model_name="{MODEL}",API="Predict",entrypoint="GRPC"}}'
    assert _sample(page, count) >= 1, f"no {count} series"
    assert re.search(rf'^{re.escape(REQUEST_LATENCY)}_bucket{{model_name="{MODEL}",API="Predict",entrypoint="GRPC",le="\+Inf"}} \d+$', page, re.M)


@pytest.mark.parametrize("service", ["", "ModelService", "PredictionService"])
def test_the_health_service_reports_serving_when_enabled(target, service):
    """model_servers/server.cc: --enable_grpc_healthcheck_service sets "" (gRPC's default), ModelService and
    PredictionService SERVING; without the flag there is no health service (UNIMPLEMENTED)."""
    with grpc.insecure_channel(target.grpc) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        if target.health:
            assert check(health_pb2.HealthCheckRequest(service=service), timeout=30).status == health_pb2.HealthCheckResponse.SERVING
        else:
            with pytest.raises(grpc.RpcError) as caught:
                check(health_pb2.HealthCheckRequest(service=service), timeout=30)
            assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED, caught.value
