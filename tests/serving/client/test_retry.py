"""The retry/failover core both clients drive, stepped by hand: no server, no sockets."""

import random

import grpc
import pytest

from serving.client import ServingError
from serving.client.retry import Backoff, Connect, Done, RetryPlan, Send, call_steps
from serving.client.routing import TargetHealth


class FakeRpcError(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def _steps(targets, retries=3, deadline_s=5.0, connect_timeout_s=0.5):
    health = TargetHealth(targets)
    plan = RetryPlan(health, retries, deadline_s, (0.02, 0.5), random.Random(0))
    return health, call_steps(plan, "Predict", connect_timeout_s)


def _drive(steps, answer):
    """Runs ``steps`` to the end, answering each with ``answer(step)``; returns every step taken."""
    taken, outcome = [], None
    while True:
        step = steps.send(outcome)
        taken.append(step)
        if isinstance(step, Done):
            return taken
        outcome = answer(step)


def test_an_unavailable_replica_is_failed_over_and_ejected():
    def answer(step):
        if isinstance(step, Connect):
            return True
        if isinstance(step, Send):
            return FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down") if step.target == "a:1" else "response"
        return None

    health, steps = _steps(["a:1", "b:1"])
    taken = _drive(steps, answer)
    assert [type(step) for step in taken] == [Backoff, Connect, Send, Backoff, Connect, Send, Done]
    assert [step.target for step in taken if isinstance(step, Send)] == ["a:1", "b:1"]
    assert taken[0].seconds == taken[3].seconds == 0.0  # no backoff while an untried replica remains
    assert 0 < taken[1].timeout_s <= 0.5 and 4.0 < taken[2].timeout_s <= 5.0
    assert taken[-1] == Done("response", "b:1")
    assert health.healthy() == ["b:1"]


def test_a_status_that_is_not_retryable_fails_at_once_naming_the_target():
    _, steps = _steps(["a:1", "b:1"])
    with pytest.raises(ServingError, match="no such label") as caught:
        _drive(steps, lambda step: isinstance(step, Connect) or FakeRpcError(grpc.StatusCode.NOT_FOUND, "no such label"))
    assert (caught.value.code, caught.value.target) == (grpc.StatusCode.NOT_FOUND, "a:1")


def test_going_round_again_backs_off_with_capped_jitter_then_gives_up_with_the_last_error():
    taken = []
    _, steps = _steps(["a:1", "b:1"], retries=3)
    with pytest.raises(ServingError, match=r"Predict failed on every attempt within 5\.0s; last error: .*could not connect") as caught:
        _drive(steps, lambda step: taken.append(step) or False)
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    backoffs = [step.seconds for step in taken if isinstance(step, Backoff)]
    # Round two starts with a full-jitter backoff in [0, base * 2**attempt]; its second replica follows at once.
    assert backoffs[:2] == [0.0, 0.0] and 0 < backoffs[2] <= 0.02 * 2**2 and backoffs[3] == 0.0
    assert not any(isinstance(step, Send) for step in taken)


def test_a_passed_deadline_is_deadline_exceeded(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("serving.client.retry.time.monotonic", lambda: clock[0])
    _, steps = _steps(["a:1"], deadline_s=1.0)
    assert isinstance(steps.send(None), Backoff)
    clock[0] += 2.0
    with pytest.raises(ServingError, match="no attempt made") as caught:
        steps.send(None)
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
