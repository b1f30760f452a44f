"""Property-based fuzzing of the server (gRPC, REST, batching) and of the files the CLI reads.

The targets and their oracles live in :mod:`tests.reliability.fuzz_targets`, shared with
benchmarks/fuzz_benchmark.py, which runs thousands of cases; here each target gets a few
dozen, so CI stays fast. Every hostile request must get OK or a named client error (never
INTERNAL, UNKNOWN or a hang), every file success or one line and exit 2, and the server
must stay up and not grow. How many cases were tried is printed in the summary.
"""

from __future__ import annotations

import threading

import grpc
import pytest
from hypothesis import HealthCheck, given, settings

from serving.testing import start_toy_server
from tests.reliability import fuzz_targets as fuzz
from tests.reliability.fuzz_targets import KINDS, LIMIT, MODEL, TARGETS, Endpoints

FUZZ = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
# Cases per target beyond the Predict kinds: enough to meet each shape of case a few times.
CI_CASES = {"tensor_proto": 60, "batched": 25, "rest": 60, "run_config": 40, "event_file": 45, "serving_config": 60}


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory):
    """A plain server with REST, and one with batching on; scratch space for files."""
    plain = start_toy_server(tmp_path_factory.mktemp("fuzz"), models=(MODEL,), max_message_bytes=LIMIT, rest_port=0)
    batching = start_toy_server(tmp_path_factory.mktemp("fuzz-batched"), models=(MODEL,), max_message_bytes=LIMIT,
                                rest_port=None, enable_batching=True)
    options = [("grpc.max_send_message_length", 8 * LIMIT)]
    channel = grpc.insecure_channel(f"127.0.0.1:{plain.port}", options=options)
    batched = grpc.insecure_channel(f"127.0.0.1:{batching.port}", options=options)
    yield Endpoints(channel, batched, plain.rest_port, tmp_path_factory.mktemp("fuzz-files")), batching
    channel.close()
    batched.close()
    plain.stop(0)
    batching.stop(0)


def _fuzz(target: str, endpoints: Endpoints, cases: int) -> list[str]:
    """Runs ``cases`` cases of ``target``; a Crash fails the test with hypothesis's smallest case."""
    outcomes = []

    @settings(FUZZ, max_examples=cases)
    @given(TARGETS[target].strategy)
    def check(case):
        outcomes.append(TARGETS[target].check(endpoints, case))

    check()
    return outcomes


@pytest.mark.parametrize("kind", KINDS)
def test_predict_answers_hostile_requests_with_named_client_errors(endpoints, kind, record_property):
    endpoints, _ = endpoints
    tried = []
    FUZZ(given(fuzz.predict_cases(kind))(lambda case: tried.append(fuzz.check_predict(endpoints, case))))()
    record_property("fuzz_cases", len(tried))
    assert fuzz.still_serving(endpoints.channel)  # still serving after everything above


def test_model_status_answers_every_spec_with_status_or_a_named_error(endpoints, record_property):
    outcomes = _fuzz("model_status", endpoints[0], 60)
    record_property("fuzz_cases", len(outcomes))
    assert {"OK", "NOT_FOUND"} <= set(outcomes)


def test_raw_tensor_protos_get_answers_or_named_client_errors(endpoints, record_property):
    outcomes = _fuzz("tensor_proto", endpoints[0], CI_CASES["tensor_proto"])
    record_property("fuzz_cases", len(outcomes))
    assert "INVALID_ARGUMENT" in outcomes and fuzz.still_serving(endpoints[0].channel)


def test_batched_valid_requests_get_their_alone_answer_beside_hostile_ones(endpoints, record_property):
    endpoints, batching = endpoints
    outcomes = _fuzz("batched", endpoints, CI_CASES["batched"])
    record_property("fuzz_cases", len(outcomes))
    # The model ran fewer times than valid requests came in: some really were merged.
    runs = int(batching.metrics.wrapped_run_count.lines()[-1].split()[-1])
    answered = int(next(line for line in batching.metrics.request_count.lines() if 'status="OK"' in line).split()[-1])
    assert runs < answered, (runs, answered)


def test_rest_predict_bodies_get_answers_or_json_errors(endpoints, record_property):
    outcomes = _fuzz("rest", endpoints[0], CI_CASES["rest"])
    record_property("fuzz_cases", len(outcomes))
    assert "HTTP 400" in outcomes and fuzz.still_serving(endpoints[0].channel)


@pytest.mark.parametrize("target", ["run_config", "event_file", "serving_config"])
def test_files_the_cli_reads_give_success_or_one_line_errors(endpoints, target, record_property):
    outcomes = _fuzz(target, endpoints[0], CI_CASES[target])
    record_property("fuzz_cases", len(outcomes))
    assert len(set(outcomes)) >= 2, outcomes  # both accepted and refused files were met


@pytest.mark.parametrize("method", ["/tensorflow.serving.PredictionService/Predict", "/tensorflow.serving.ModelService/GetModelStatus"])
def test_bytes_that_do_not_parse_are_invalid_argument(endpoints, method):
    raw = endpoints[0].channel.unary_unary(method, request_serializer=lambda data: data, response_deserializer=lambda data: data)
    # Field 1 (model_spec) holding field 1 (name) with bytes that are not UTF-8.
    for payload in (b"\x0a\x05\x0a\x03\xff\xfe\xfd", b"\xff\xff\xff\xff"):
        code, details = fuzz.call(raw, payload)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "does not parse" in details


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def test_repeated_bad_requests_do_not_grow_threads_or_memory(endpoints):
    endpoints, _ = endpoints
    cases = []
    for kind in KINDS:
        settings(FUZZ, max_examples=3)(given(fuzz.predict_cases(kind))(lambda case: cases.append(case)))()

    def round_of_requests():
        for case in cases:
            fuzz.check_predict(endpoints, case)

    for _ in range(3):  # let pools and caches reach their working size
        round_of_requests()
    threads, rss = threading.active_count(), _rss_mb()
    for _ in range(5):
        round_of_requests()
    assert threading.active_count() <= threads + 2
    assert _rss_mb() - rss < 25.0
    assert fuzz.still_serving(endpoints.channel)
