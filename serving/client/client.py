"""RecommenderClient: the thin, TensorFlow-free gRPC client for the recommendation models."""

from __future__ import annotations

import random
import time
from collections.abc import Generator, Mapping, Sequence

import grpc
import numpy as np

from serving import contract
from serving.client import channels, requests, sessions
from serving.client.retry import Backoff, Connect, Done, RetryPlan, Step, call_steps
from serving.client.routing import LabelSplit, TargetHealth


class ClientBase:
    """Settings, routing and request/response shaping shared by the sync and async clients."""

    def __init__(
        self,
        targets: Sequence[str],
        deadline_s: float = 1.0,
        retries: int = 3,
        backoff_base_s: float = 0.02,
        backoff_cap_s: float = 0.5,
        connect_timeout_s: float = 0.5,
        tls: channels.TlsConfig | None = None,
        version: int | None = None,
        version_label: str | None = None,
        label_split: Mapping[str, float] | None = None,
        max_message_bytes: int = contract.DEFAULT_MAX_MESSAGE_BYTES,
        seed: int | None = None,
    ):
        if isinstance(targets, str):
            targets = [targets]
        if sum(choice is not None for choice in (version, version_label, label_split)) > 1:
            raise ValueError("pin at most one of version, version_label and label_split")
        if deadline_s <= 0 or retries < 0 or connect_timeout_s <= 0:
            raise ValueError(f"need deadline_s > 0, retries >= 0, connect_timeout_s > 0; got {deadline_s}, {retries}, {connect_timeout_s}")
        self.deadline_s = deadline_s
        self.retries = retries
        self.version = version
        self.version_label = version_label
        self.split = LabelSplit(label_split) if label_split else None
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._connect_timeout_s = connect_timeout_s
        self._tls = tls.validate() if tls is not None else None
        self._max_message_bytes = max_message_bytes
        self._rng = random.Random(seed)
        self._health = TargetHealth(list(targets))

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

    def _steps(self, method: str) -> Generator[Step, object, None]:
        """The retry/failover steps of one call (see :mod:`serving.client.retry`) for the client's driver."""
        plan = RetryPlan(self._health, self.retries, self.deadline_s, self._backoff, self._rng)
        return call_steps(plan, method, self._connect_timeout_s)

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

    ``targets`` are ``host:port`` replicas; calls fail over between them, retrying
    UNAVAILABLE (and replicas that cannot connect within ``connect_timeout_s``) with
    exponential backoff and jitter, all within ``deadline_s`` per call. Pin one version
    (``version``) or label (``version_label``), or split traffic between labels by the
    hash of the user (else session) id with ``label_split={"stable": 90, "canary": 10}``.

    Usage::

        with RecommenderClient(["localhost:8500"], deadline_s=0.5) as client:
            client.recommend(["item-1", ("item-7", "cart", 1700000000)], k=10, user="u1")
            # -> [("item-3", 4.2), ("item-9", 3.1), ...]
    """

    def __init__(self, targets: Sequence[str], **options):
        super().__init__(targets, **options)
        self._channels = {
            target: channels.open_channel(target, self._max_message_bytes, self._tls) for target in self._health.targets
        }
        self._ready = dict.fromkeys(self._health.targets, False)
        self._watchers = {target: self._watcher(target) for target in self._health.targets}
        for target, channel in self._channels.items():
            channel.subscribe(self._watchers[target], try_to_connect=True)
        self._stubs = {
            (target, method): channels.unary(channel, method)
            for target, channel in self._channels.items()
            for method in channels.RESPONSE_CLASS
        }

    def _watcher(self, target: str):
        def on_change(state: grpc.ChannelConnectivity) -> None:
            self._ready[target] = state is grpc.ChannelConnectivity.READY

        return on_change

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

    def status(self, model: str, version: int | None = None, label: str | None = None) -> list[requests.VersionStatus]:
        """The versions of ``model`` the server knows and their states, newest first."""
        response, _ = self._call(channels.GET_MODEL_STATUS, requests.status_request(model, version, label))
        return requests.version_statuses(response)

    def metadata(self, model: str, version: int | None = None, label: str | None = None) -> dict[str, dict]:
        """The signatures of ``model``: name -> inputs/outputs with dtypes and shapes."""
        version, label = self._pin(version, label, None)
        response, _ = self._call(channels.GET_MODEL_METADATA, requests.metadata_request(model, version, label))
        return requests.signatures(response)

    def predict(self, model: str, inputs: Mapping, signature=None, version=None, label=None, routing_key=None, output_filter=()):
        """Predict with raw ``inputs`` (name -> array) -> :class:`Prediction`. The client's
        pin/split applies unless ``version``/``label`` is given; ``routing_key`` picks the A/B label."""
        request = self._predict_request(model, inputs, signature, version, label, routing_key, output_filter)
        response, target = self._call(channels.PREDICT, request)
        return requests.prediction(response, target)

    def _call(self, method: str, request):
        steps, outcome = self._steps(method), None
        while not isinstance(step := steps.send(outcome), Done):
            outcome = self._take(step, method, request)
        return step.response, step.target

    def _take(self, step: Step, method: str, request):
        """Carries out one step of the retry core, blocking; returns its outcome."""
        if isinstance(step, Backoff):
            return time.sleep(step.seconds)
        if isinstance(step, Connect):
            return self._ready[step.target] or self._connects(step.target, step.timeout_s)
        try:
            return self._stubs[(step.target, method)](request, timeout=step.timeout_s)
        except grpc.RpcError as error:
            return error

    def _connects(self, target: str, timeout_s: float) -> bool:
        future = grpc.channel_ready_future(self._channels[target])
        try:
            future.result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            future.cancel()  # unsubscribes from the channel's connectivity updates
            return False
        return True

    def close(self) -> None:
        """Closes every channel."""
        for target, channel in self._channels.items():
            channel.unsubscribe(self._watchers[target])
        # gRPC's connectivity poller thread notices the unsubscription within 0.2 s and
        # raises in its thread if the channel closes under it first.
        give_up = time.monotonic() + 0.5
        while time.monotonic() < give_up and any(
            getattr(getattr(channel, "_connectivity_state", None), "polling", False) for channel in self._channels.values()
        ):
            time.sleep(0.01)
        for channel in self._channels.values():
            channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
