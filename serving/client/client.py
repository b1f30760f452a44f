"""RecommenderClient: the thin, TensorFlow-free gRPC client for the recommendation models.

One gRPC channel reaches every replica; grpcio retries, balances and waits for replicas
per the service config of :mod:`serving.client.channels`. The client adds what gRPC
cannot do: building TF Serving requests from shopper sessions, pinning a version or
label, and the A/B split between labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import grpc
import numpy as np

from serving import contract
from serving.client import channels, requests, sessions
from serving.client.errors import ServingError
from serving.client.routing import LabelSplit


class ClientBase:
    """Settings, version routing and request/response shaping shared by the sync and async clients.

    ``settings`` are :class:`~serving.client.channels.ClientConfig` fields given as
    keywords (``deadline_s=0.3``), or pass a whole ``config``.
    """

    def __init__(
        self,
        targets: str | Sequence[str],
        config: channels.ClientConfig | None = None,
        *,
        tls: channels.TlsConfig | None = None,
        version: int | None = None,
        version_label: str | None = None,
        label_split: Mapping[str, float] | None = None,
        **settings,
    ):
        if config is not None and settings:
            raise ValueError(f"give either config or its fields as keywords, not both (got config and {sorted(settings)})")
        known = {field.name for field in dataclasses.fields(channels.ClientConfig)}
        if unknown := sorted(set(settings) - known):
            raise TypeError(f"unknown client option(s) {unknown}; the options are {sorted(known)}")
        if sum(choice is not None for choice in (version, version_label, label_split)) > 1:
            raise ValueError("pin at most one of version, version_label and label_split")
        self.config = (config or channels.ClientConfig(**settings)).validate()
        self.target = channels.channel_target(targets)
        self._tls = tls.validate() if tls is not None else None
        if self._tls is not None and "," in self.target and not self._tls.server_name:
            raise ValueError("TLS with several replica addresses: set TlsConfig.server_name, the name their certificate holds")
        self.version = version
        self.version_label = version_label
        self.split = LabelSplit(label_split) if label_split else None

    def label_for(self, routing_key: str | None) -> str | None:
        """The version label a call with ``routing_key`` goes to (None: server default)."""
        if self.split is not None:
            return self.split.label_for(routing_key or "")
        return self.version_label

    def _pin(self, version, label, routing_key):
        if version is not None or label is not None:
            return version, label
        if self.version is not None:
            return self.version, None
        return None, self.label_for(routing_key)

    def _predict_request(self, model, inputs, signature, version, label, routing_key, output_filter):
        version, label = self._pin(version, label, routing_key)
        return requests.predict_request(model, inputs, signature, version, label, output_filter)

    @staticmethod
    def _top_k_inputs(session, k, user, query, exclude=None, with_exclude=False) -> dict:
        inputs = sessions.session_inputs([session], [user], [query])
        inputs[contract.K] = np.array([k], dtype=np.int32)
        if with_exclude:
            inputs.update(sessions.exclude_inputs([exclude]))
        return inputs

    @staticmethod
    def _rank_inputs(session, candidates, user, query) -> tuple[dict, list[str]]:
        candidates = sessions.id_list(candidates, "candidates")
        if not candidates:
            raise ValueError("rank needs at least one candidate item id")
        inputs = sessions.session_inputs([session], [user], [query])
        inputs[contract.CANDIDATE_ITEM_IDS] = np.array([candidates], dtype=object)
        return inputs, candidates

    @staticmethod
    def _top_items(result: requests.Prediction) -> list[tuple[str, float]]:
        return sessions.ranked_items(result.outputs[contract.ITEM_IDS][0], result.outputs[contract.SCORES][0])

    @staticmethod
    def _ranked(result: requests.Prediction, candidates: list[str]) -> list[tuple[str, float]]:
        scores = result.outputs[contract.SCORES][0][: len(candidates)]
        return sorted(zip(candidates, (float(s) for s in scores)), key=lambda pair: -pair[1])


class RecommenderClient(ClientBase):
    """Calls TF Serving (or the embedded server) for recommendations, ranking and status.

    ``targets`` are the replicas: ``host:port`` entries (several: IP addresses), or one
    ``dns:///name:port`` target resolving to all of them. Calls are spread round robin
    over the connected replicas and retried on UNAVAILABLE by gRPC, all within
    ``deadline_s`` per call (see :class:`~serving.client.channels.ClientConfig` for the
    options). Pin one version (``version``) or label (``version_label``), or split
    traffic between labels by the hash of the user (else session) id with
    ``label_split={"stable": 90, "canary": 10}``.

    Usage::

        with RecommenderClient(["10.0.0.1:8500", "10.0.0.2:8500"], deadline_s=0.5) as client:
            client.recommend(["item-1", ("item-7", "cart", 1700000000)], k=10, user="u1")
            # -> [("item-3", 4.2), ("item-9", 3.1), ...]
    """

    def __init__(self, targets: str | Sequence[str], config: channels.ClientConfig | None = None, **options):
        super().__init__(targets, config, **options)
        self._channel = channels.open_channel(self.target, self.config, self._tls)
        self._stubs = channels.stubs(self._channel)

    def recommend(self, session, k: int, user=None, query=None, exclude=None, session_id=None, model=contract.RECOMMEND_MODEL):
        """Top-``k`` (item_id, score) for the shopper, best first, never items in ``exclude``."""
        inputs = self._top_k_inputs(session, k, user, query, exclude, with_exclude=True)
        return self._top_items(self.predict(model, inputs, routing_key=user or session_id))

    def retrieve(self, session, k: int, user=None, query=None, session_id=None, model=contract.RETRIEVAL_MODEL):
        """Top-``k`` candidate (item_id, score) from the retrieval model, best first."""
        inputs = self._top_k_inputs(session, k, user, query)
        return self._top_items(self.predict(model, inputs, routing_key=user or session_id))

    def rank(self, session, candidates, user=None, query=None, session_id=None, model=contract.RANKING_MODEL):
        """``candidates`` as (item_id, score) sorted by the ranking model's score, best first."""
        inputs, candidates = self._rank_inputs(session, candidates, user, query)
        return self._ranked(self.predict(model, inputs, routing_key=user or session_id), candidates)

    def status(self, model: str, version: int | None = None) -> list[requests.VersionStatus]:
        """The versions of ``model`` the server knows and their states, newest first (no label:
        TF Serving's GetModelStatus ignores it; predict with the label to see what it serves)."""
        return requests.version_statuses(self._call(channels.GET_MODEL_STATUS, requests.status_request(model, version)))

    def metadata(self, model: str, version: int | None = None, label: str | None = None) -> dict[str, dict]:
        """The signatures of ``model``: name -> inputs/outputs with dtypes and shapes."""
        version, label = self._pin(version, label, None)
        return requests.signatures(self._call(channels.GET_MODEL_METADATA, requests.metadata_request(model, version, label)))

    def predict(self, model: str, inputs: Mapping, signature=None, version=None, label=None, routing_key=None, output_filter=()):
        """Predict with raw ``inputs`` (name -> array) -> :class:`Prediction`. The client's
        pin/split applies unless ``version``/``label`` is given; ``routing_key`` picks the A/B label."""
        request = self._predict_request(model, inputs, signature, version, label, routing_key, output_filter)
        return requests.prediction(self._call(channels.PREDICT, request), self.target)

    def _call(self, method: str, request):
        try:
            return self._stubs[method](request, timeout=self.config.deadline_s)
        except grpc.RpcError as error:
            raise ServingError.from_rpc_error(error, self.target) from None

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
