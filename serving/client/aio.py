"""AsyncRecommenderClient: the thin client on grpc.aio, for asyncio services."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc

from serving import contract
from serving.client import channels, requests
from serving.client.client import ClientBase
from serving.client.errors import ServingError


class AsyncRecommenderClient(ClientBase):
    """The asyncio twin of :class:`~serving.client.RecommenderClient` (same options and results).

    Create and use it inside a running event loop.

    Usage::

        async with AsyncRecommenderClient(["localhost:8500"], deadline_s=0.5) as client:
            items = await client.recommend(["item-1"], k=10, user="u1")
    """

    def __init__(self, targets: str | Sequence[str], config: channels.ClientConfig | None = None, **options):
        super().__init__(targets, config, **options)
        self._channel = channels.open_channel(self.target, self.config, self._tls, aio=True)
        self._stubs = channels.stubs(self._channel)

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

    async def status(self, model: str, version: int | None = None) -> list[requests.VersionStatus]:
        """The versions of ``model`` the server knows and their states, newest first (no label:
        TF Serving's GetModelStatus ignores it; predict with the label to see what it serves)."""
        return requests.version_statuses(await self._call(channels.GET_MODEL_STATUS, requests.status_request(model, version)))

    async def metadata(self, model: str, version: int | None = None, label: str | None = None) -> dict[str, dict]:
        """The signatures of ``model``: name -> inputs/outputs with dtypes and shapes."""
        version, label = self._pin(version, label, None)
        return requests.signatures(await self._call(channels.GET_MODEL_METADATA, requests.metadata_request(model, version, label)))

    async def predict(self, model: str, inputs: Mapping, signature=None, version=None, label=None, routing_key=None, output_filter=()):
        """Predict with raw ``inputs`` (name -> array) -> :class:`Prediction`."""
        request = self._predict_request(model, inputs, signature, version, label, routing_key, output_filter)
        return requests.prediction(await self._call(channels.PREDICT, request), self.target)

    async def _call(self, method: str, request):
        try:
            return await self._stubs[method](request, timeout=self.config.deadline_s)
        except grpc.RpcError as error:
            raise ServingError.from_rpc_error(error, self.target) from None

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.close()
