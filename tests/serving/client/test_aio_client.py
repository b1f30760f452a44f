"""AsyncRecommenderClient: same answers, errors and failover as the sync client."""

import asyncio

import grpc
import pytest

from serving import contract
from serving.client import AsyncRecommenderClient, ServingError
from serving.testing import expected_top_k


def test_concurrent_async_calls_skip_a_dead_replica_and_match_the_model(target, dead_target):
    async def scenario():
        async with AsyncRecommenderClient([dead_target(), target], deadline_s=5.0) as client:
            answers = await asyncio.gather(*(client.recommend(["item-001"], k=k) for k in (1, 2, 3, 4, 1, 2, 3, 4)))
            ranked = await client.rank(["item-001"], ["item-003", "item-010"])
            statuses = await client.status(contract.RECOMMEND_MODEL)
            return answers, ranked, statuses

    answers, ranked, statuses = asyncio.run(scenario())
    assert answers == [expected_top_k(50, 1, k) for k in (1, 2, 3, 4, 1, 2, 3, 4)]
    assert [item for item, _ in ranked] == ["item-003", "item-010"]  # toy scores 34 and 33
    assert [(s.version, s.state) for s in statuses] == [(1, "AVAILABLE")]


def test_async_unavailable_answers_are_retried_on_another_replica(target, unavailable_replica):
    # One call at a time, so round robin alternates each call's attempts between the two
    # (concurrent calls share the rotation: see README, "what is retried").
    async def scenario():
        async with AsyncRecommenderClient([unavailable_replica.target, target], deadline_s=5.0, retries=4) as client:
            for _ in range(50):
                assert await client.recommend(["item-001"], k=1) == expected_top_k(50, 1, 1)
                if unavailable_replica.calls >= 5:
                    break

    asyncio.run(scenario())
    assert unavailable_replica.calls >= 5


def test_async_errors_carry_the_status_code(target):
    async def scenario():
        async with AsyncRecommenderClient([target], version_label="nightly", deadline_s=5.0) as client:
            await client.retrieve(["item-001"], k=2)

    with pytest.raises(ServingError, match="nightly") as caught:
        asyncio.run(scenario())
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT  # an unknown label, as TF Serving (server_core.cc)
