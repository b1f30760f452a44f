"""AsyncRecommenderClient: same answers, errors and failover as the sync client."""

import asyncio
import socket

import grpc
import pytest

from serving import contract
from serving.client import AsyncRecommenderClient, ServingError
from serving.testing import expected_top_k


def _dead_target() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_concurrent_async_calls_fail_over_and_match_the_model(target):
    async def scenario():
        async with AsyncRecommenderClient([_dead_target(), target], deadline_s=5.0, seed=0) as client:
            answers = await asyncio.gather(*(client.recommend(["item-001"], k=k) for k in (1, 2, 3, 4)))
            ranked = await client.rank(["item-001"], ["item-003", "item-010"])
            statuses = await client.status(contract.RECOMMEND_MODEL)
            return answers, ranked, statuses, client._health.healthy()

    answers, ranked, statuses, healthy = asyncio.run(scenario())
    assert answers == [expected_top_k(50, 1, k) for k in (1, 2, 3, 4)]
    assert [item for item, _ in ranked] == ["item-003", "item-010"]  # toy scores 34 and 33
    assert [(s.version, s.state) for s in statuses] == [(1, "AVAILABLE")]
    assert healthy == [target]


def test_async_errors_carry_the_status_code(target):
    async def scenario():
        async with AsyncRecommenderClient([target], version_label="nightly", deadline_s=5.0) as client:
            await client.retrieve(["item-001"], k=2)

    with pytest.raises(ServingError, match="nightly") as caught:
        asyncio.run(scenario())
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT  # an unknown label, as TF Serving (server_core.cc)
