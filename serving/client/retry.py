"""The retry and failover policy of one call, written once for the sync and asyncio clients.

The policy does no I/O (the "sans-IO" pattern): :func:`call_steps` yields what to do next
(back off, connect to a replica, send the request) and receives how it went, so the retry
budget, backoff with jitter, which status codes retry, the failover order and the final
error live here, and each client only carries out the steps, with ``time.sleep`` and
blocking stubs or with ``await`` on ``grpc.aio``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Generator
from typing import Any, NamedTuple

import grpc

from serving.client.errors import ServingError
from serving.client.routing import TargetHealth, backoff_delay

# Codes that mean "this replica could not take the call", never "the call is wrong".
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})


class RetryPlan:
    """The attempts of one call: which replica next, how long to back off, when to give up.

    Iterating yields ``(target, sleep_s)``; report each attempt with :meth:`failed` or
    :meth:`succeeded`. :func:`call_steps` drives it for both clients.
    """

    def __init__(self, health: TargetHealth, retries: int, deadline_s: float, backoff: tuple[float, float], rng: random.Random):
        self._health = health
        self._retries = retries
        self._deadline_s = deadline_s
        self._deadline = time.monotonic() + deadline_s
        self._backoff = backoff
        self._rng = rng
        self._last_error = "no attempt made"

    def __iter__(self):
        tried: set[str] = set()
        for attempt in range(self._retries + 1):
            target = self._health.pick(avoid=tried)
            sleep_s = 0.0
            if target in tried:
                # Every replica failed once already: back off before going round again.
                tried.clear()
                sleep_s = max(0.0, min(self.remaining(), backoff_delay(attempt, *self._backoff, self._rng)))
            tried.add(target)
            yield target, sleep_s

    def remaining(self) -> float:
        """Seconds left before the call's deadline (may be <= 0)."""
        return self._deadline - time.monotonic()

    def failed(self, target: str, reason: str) -> None:
        """Records a retryable failure of ``target``."""
        self._health.failed(target)
        self._last_error = f"{target}: {reason}"

    def succeeded(self, target: str) -> None:
        """Records a successful call to ``target``."""
        self._health.succeeded(target)

    def exhausted(self, method: str) -> ServingError:
        """The error to raise once every attempt failed or the deadline passed."""
        code = grpc.StatusCode.UNAVAILABLE if self.remaining() > 0 else grpc.StatusCode.DEADLINE_EXCEEDED
        return ServingError(code, f"{method} failed on every attempt within {self._deadline_s}s; last error: {self._last_error}")


class Backoff(NamedTuple):
    """Wait ``seconds`` (may be 0) before the next attempt; the outcome sent back is ignored."""

    seconds: float


class Connect(NamedTuple):
    """Make sure the channel to ``target`` is ready, waiting at most ``timeout_s``; send back True if it is."""

    target: str
    timeout_s: float


class Send(NamedTuple):
    """Call ``target`` with ``timeout_s``; send back the response, or the ``grpc.RpcError`` it raised."""

    target: str
    timeout_s: float


class Done(NamedTuple):
    """The call succeeded: the last step, nothing more to send."""

    response: Any
    target: str


Step = Backoff | Connect | Send | Done


def call_steps(plan: RetryPlan, method: str, connect_timeout_s: float) -> Generator[Step, Any, None]:
    """The steps of one call of ``method`` under ``plan``, ending with :class:`Done`.

    Raises :class:`ServingError` at once for a status that is not retryable, and once
    every attempt failed or the deadline passed.

    Usage (a driver; the asyncio one awaits in ``take``)::

        steps, outcome = call_steps(plan, method, connect_timeout_s), None
        while not isinstance(step := steps.send(outcome), Done):
            outcome = take(step)
        return step.response, step.target
    """
    for target, sleep_s in plan:
        yield Backoff(sleep_s)
        if plan.remaining() <= 0:
            break
        connect_s = min(connect_timeout_s, plan.remaining())
        if not (yield Connect(target, connect_s)):
            plan.failed(target, f"could not connect within {connect_s:.3f}s")
            continue
        outcome = yield Send(target, max(1e-3, plan.remaining()))
        if isinstance(outcome, grpc.RpcError):
            if outcome.code() not in RETRYABLE:
                raise ServingError(outcome.code(), outcome.details() or "", target) from None
            plan.failed(target, f"{outcome.code().name}: {outcome.details()}")
            continue
        plan.succeeded(target)
        yield Done(outcome, target)
        return
    raise plan.exhausted(method)
