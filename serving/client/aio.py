"""AsyncRecommenderClient: the thin client on grpc.aio, for asyncio services."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import grpc

from serving import contract
from serving.client import channels, requests
from serving.client.client import ClientBase
from serving.client.retry import Backoff, Connect, Done, Step


class AsyncRecommenderClient(ClientBase):
    """The asyncio twin of :class:`~serving.client.RecommenderClient` (same options and results).

    Create and use it inside a running event loop.

    Usage::

        async with AsyncRecommenderClient(["localhost:8500"], deadline_s=0.5) as client:
            items = await client.recommend(["item-1"], k=10, user="u1")
    """

    def __init__(self, targets: Sequence[str], **options):
        super().__init__(targets, **options)
        self._channels = {
            target: channels.open_channel(target, self._max_message_bytes, self._tls, aio=True) for target in self._health.targets
        }
        self._stubs = {
            (target, method): channels.unary(channel, method)
            for target, channel in self._channels.items()
            for method in channels.RESPONSE_CLASS
        }

    async def recommend(self, session, k: int, user=None, query=None, exclude=None, session_id=None, model=contract.RECOMMEND_MODEL):
        """Top-``k`` (item_id, score) for the shopper, best first, never items in ``exclude``."""
        inputs = self._top_k_inputs(session, k, user, query, exclude, with_exclude=True)
        return self._top_items(await self.predict(model, inputs, routing_key=user or session_id))

    async def retrieve(self, session, k: int, user=None, query=None, session_id=None, model=contract.RETRIEVAL_MODEL):
        """Top-``k`` candidate (item_id, score) from the retrieval model, best first."""
        inputs = self._top_k_inputs(session, k, user, query)
        return self._top_items(await self.predict(model, inputs, routing_key=user or session_id))

    async def rank(self, session, candidates, user=None, query=None, session_id=None, model=contract.RANKING_MODEL):
        """``candidates`` as (item_id, score) sorted by the ranking model's score, best first."""
        inputs, candidates = self._rank_inputs(session, candidates, user, query)
        return self._ranked(await self.predict(model, inputs, routing_key=user or session_id), candidates)

    async def status(self, model: str, version: int | None = None, label: str | None = None) -> list[requests.VersionStatus]:
        """The versions of ``model`` the server knows and their states, newest first."""
        response, _ = await self._call(channels.GET_MODEL_STATUS, requests.status_request(model, version, label))
        return requests.version_statuses(response)

    async def metadata(self, model: str, version: int | None = None, label: str | None = None) -> dict[str, dict]:
        """The signatures of ``model``: name -> inputs/outputs with dtypes and shapes."""
        version, label = self._pin(version, label, None)
        response, _ = await self._call(channels.GET_MODEL_METADATA, requests.metadata_request(model, version, label))
        return requests.signatures(response)

    async def predict(self, model: str, inputs: Mapping, signature=None, version=None, label=None, routing_key=None, output_filter=()):
        """Predict with raw ``inputs`` (name -> array) -> :class:`Prediction`."""
        request = self._predict_request(model, inputs, signature, version, label, routing_key, output_filter)
        response, target = await self._call(channels.PREDICT, request)
        return requests.prediction(response, target)

    async def _call(self, method: str, request):
        steps, outcome = self._steps(method), None
        while not isinstance(step := steps.send(outcome), Done):
            outcome = await self._take(step, method, request)
        return step.response, step.target

    async def _take(self, step: Step, method: str, request):
        """Carries out one step of the retry core, awaiting; returns its outcome."""
        if isinstance(step, Backoff):
            return await asyncio.sleep(step.seconds)
        if isinstance(step, Connect):
            return await self._connects(step.target, step.timeout_s)
        try:
            return await self._stubs[(step.target, method)](request, timeout=step.timeout_s)
        except grpc.aio.AioRpcError as error:
            return error

    async def _connects(self, target: str, timeout_s: float) -> bool:
        channel = self._channels[target]
        if channel.get_state(try_to_connect=True) is grpc.ChannelConnectivity.READY:
            return True
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout=timeout_s)
        except asyncio.TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Closes every channel."""
        await asyncio.gather(*(channel.close() for channel in self._channels.values()))

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.close()
