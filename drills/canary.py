"""The canary quality gate: evaluate a canary version against ``stable`` on holdout cases
through the server, then promote it (move ``stable``) or roll it back, logging the decision.

Labels move the way an operator moves them on TF Serving: the models.config file is
rewritten (so a restart keeps the decision) and every replica gets the new config through
ModelService/HandleReloadConfigRequest. With a ``specific`` version policy the served
versions are rewritten with the labels, in TF Serving's two steps
(tensorflow_serving/g3doc/serving_config.md): first load the newly labelled versions next
to the served ones and wait until every replica has them AVAILABLE, then move the labels
and drop the unlabelled versions. A label may only move to a loaded version
(server_core.cc), and this way ``stable`` never points at a version that is not serving.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from drills.load import recommend_inputs
from recsys_base.errors import ConfigError, RecsysError
from serving import contract
from serving.client import RecommenderClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HoldoutCase:
    """A session prefix and the item the shopper actually went to next."""

    session: tuple[str, ...]
    target: str


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided and on which figures (one JSON line in the decision log)."""

    model: str
    stable_version: int
    canary_version: int
    stable_hit_rate: float
    canary_hit_rate: float
    max_drop: float
    cases: int
    promoted: bool
    reason: str
    decided_at: float

    def to_json(self) -> str:
        """The decision as one JSON line."""
        return json.dumps(asdict(self), sort_keys=True)


def hit_rate(client: RecommenderClient, model: str, cases: Sequence[HoldoutCase], k: int, label: str) -> float:
    """Share of ``cases`` whose target is in the top ``k`` of the version behind ``label``."""
    hits = 0
    for case in cases:
        prediction = client.predict(model, recommend_inputs(list(case.session), k), label=label)
        items = [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in prediction.outputs[contract.ITEM_IDS][0]]
        hits += case.target in items
    return hits / len(cases)


def read_labels(config_file: Path, model: str) -> dict[str, int]:
    """The version labels of ``model`` in the models.config file."""
    from serving.config_files import read_model_server_config

    return dict(_model_config(read_model_server_config(config_file), model).version_labels)


def _model_config(config, model: str):
    for entry in config.model_config_list.config:
        if entry.name == model:
            return entry
    raise ConfigError(f"models config has no model {model!r}")


def _publish(config_file: Path, config, targets: Sequence[str], timeout_s: float) -> None:
    """Writes ``config`` to ``config_file`` (atomically) and reloads every replica with it."""
    import grpc
    from google.protobuf import text_format
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    partial = config_file.with_name(config_file.name + ".partial")
    partial.write_text(text_format.MessageToString(config))
    os.replace(partial, config_file)
    request = model_management_pb2.ReloadConfigRequest(config=config)
    for target in targets:
        with grpc.insecure_channel(target) as channel:
            model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, timeout=timeout_s)


def wait_available(targets: Sequence[str], model: str, versions, timeout_s: float, interval_s: float = 0.1) -> None:
    """Returns once every replica reports each of ``versions`` AVAILABLE; RecsysError if one
    failed to load (END with an error) or ``timeout_s`` passed. TF Serving loads the versions
    of a reloaded config in the background (server_core.cc waits for new models only)."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    end = get_model_status_pb2.ModelVersionStatus.END
    give_up = time.monotonic() + timeout_s
    for target in targets:
        with grpc.insecure_channel(target) as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = model
            while True:
                states = {s.version: s for s in stub.GetModelStatus(request, timeout=timeout_s).model_version_status}
                failed = [f"{v}: {states[v].status.error_message}" for v in versions
                          if v in states and states[v].state == end and states[v].status.error_code != 0]
                if failed:
                    raise RecsysError(f"model {model!r} on {target}: version {'; '.join(failed)}")
                if all(v in states and states[v].state == available for v in versions):
                    break
                if time.monotonic() > give_up:
                    raise RecsysError(f"model {model!r} on {target}: versions {sorted(versions)} not all AVAILABLE after {timeout_s:.0f}s")
                time.sleep(interval_s)


def set_labels(config_file: Path, model: str, labels: dict[str, int], targets: Sequence[str], timeout_s: float = 60.0) -> None:
    """Sets ``model``'s labels in ``config_file`` and on every replica, loading the labelled
    versions first; with a ``specific`` policy the served versions become the labelled ones.
    RecsysError if a labelled version does not load; the previous config is then restored."""
    from serving.config_files import read_model_server_config

    config = read_model_server_config(config_file)
    entry = _model_config(config, model)
    specific = entry.model_version_policy.WhichOneof("policy_choice") == "specific"
    if specific and not labels:
        raise ConfigError(f"model {model!r} serves the versions its labels name; give at least one label")
    if specific:
        # Step 1: the labelled versions load next to the served ones; the labels stay put.
        before = type(config)()
        before.CopyFrom(config)
        served = set(entry.model_version_policy.specific.versions)
        entry.model_version_policy.specific.versions[:] = sorted(served | set(labels.values()))
        _publish(config_file, config, targets, timeout_s)
    try:
        wait_available(targets, model, set(labels.values()), timeout_s)
    except RecsysError:
        if specific:  # a version that does not load is not left listed
            _publish(config_file, before, targets, timeout_s)
        raise
    # Step 2: the labels move to loaded versions; versions no label names unload.
    entry.version_labels.clear()
    entry.version_labels.update(labels)
    if specific:
        entry.model_version_policy.specific.versions[:] = sorted(set(labels.values()))
    _publish(config_file, config, targets, timeout_s)


def canary_gate(
    client: RecommenderClient,
    targets: Sequence[str],
    config_file: Path,
    model: str,
    canary_version: int,
    cases: Sequence[HoldoutCase],
    k: int = 10,
    max_drop: float = 0.02,
    decision_log: Path | None = None,
) -> GateDecision:
    """Labels ``canary_version`` as canary, compares it with stable on ``cases``, decides.

    The canary is promoted (``stable`` moves to it) when its hit rate@``k`` is at least
    the stable's minus ``max_drop``; otherwise ``stable`` stays where it was. Either way
    the canary label is removed and the decision is appended to ``decision_log``.
    """
    if not cases:
        raise ConfigError("the canary gate needs at least one holdout case")
    labels = read_labels(config_file, model)
    if contract.STABLE_LABEL not in labels:
        raise ConfigError(f"model {model!r} has no {contract.STABLE_LABEL!r} label in {config_file}; nothing to compare the canary with")
    stable_version = labels[contract.STABLE_LABEL]
    set_labels(config_file, model, {**labels, contract.CANARY_LABEL: canary_version}, targets)
    stable_rate = hit_rate(client, model, cases, k, contract.STABLE_LABEL)
    canary_rate = hit_rate(client, model, cases, k, contract.CANARY_LABEL)
    promoted = bool(canary_rate >= stable_rate - max_drop)
    reason = (
        f"canary hit rate@{k} {canary_rate:.3f} {'>=' if promoted else '<'} stable {stable_rate:.3f} - {max_drop} "
        f"on {len(cases)} holdout cases: {'promoted' if promoted else 'rolled back, stable stays at version ' + str(stable_version)}"
    )
    final = {label: version for label, version in labels.items() if label != contract.CANARY_LABEL}
    final[contract.STABLE_LABEL] = canary_version if promoted else stable_version
    set_labels(config_file, model, final, targets)
    decision = GateDecision(model, stable_version, canary_version, stable_rate, canary_rate, max_drop, len(cases), promoted, reason, time.time())
    log.info("canary gate: model %s version %d: %s", model, canary_version, reason)
    if decision_log is not None:
        with open(decision_log, "a") as stream:
            stream.write(decision.to_json() + "\n")
    return decision


def toy_holdout(num_items: int, version: int, count: int, k: int, seed: int = 0) -> list[HoldoutCase]:
    """Holdout cases for the toy shop whose shoppers go to what ``version`` ranks in its top ``k``."""
    from serving.testing import expected_top_k, item_ids

    rng = np.random.default_rng(seed)
    liked = [item for item, _ in expected_top_k(num_items, version, k)]
    catalogue = item_ids(num_items)
    return [HoldoutCase(tuple(rng.choice(catalogue, size=2)), str(rng.choice(liked))) for _ in range(count)]


def prepared_holdout(directory: Path, count: int, seed: int = 0) -> list[HoldoutCase]:
    """Up to ``count`` next-item cases with a non-empty prefix from a prepared dataset's test split."""
    from recommenders.data.dataset import load_prepared
    from recommenders.evaluation.cases import make_next_item_cases

    cases = make_next_item_cases(load_prepared(directory).test)
    usable = [index for index, prefix in enumerate(cases.prefix_item_ids) if prefix]
    if not usable:
        raise ConfigError(f"{directory}: the test split has no next-item case with a non-empty session")
    chosen = np.random.default_rng(seed).permutation(usable)[:count]
    return [HoldoutCase(tuple(cases.prefix_item_ids[i][-20:]), str(cases.targets[i])) for i in chosen]
