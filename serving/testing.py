"""Toy SavedModels that follow serving/contract/__init__.py exactly, for tests, drills and benchmarks.

A fixed-score catalogue of ``num_items`` items ``item-000``... whose scores depend on the
version (so tests can tell versions apart) and not on the session, plus exclusion and
per-row ``k`` exactly as the contract describes. Built with plain TensorFlow, so the
serving stack can be exercised without training anything.

Usage::

    export_toy_models("saved_models", version=1)   # retrieval/1, ranking/1, recommend/1
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from serving import contract
from serving.contract.warmup import warmup_inputs, write_warmup_requests

TOY_ITEMS = 50  # catalogue size of the toy models unless a caller asks for another


def item_ids(num_items: int) -> list[str]:
    """The toy catalogue's item ids."""
    return [f"item-{index:03d}" for index in range(num_items)]


def item_scores(num_items: int, version: int) -> np.ndarray:
    """Each item's fixed score for ``version``: a version-dependent permutation of 0..n-1."""
    return np.array([float((index * 7 + version * 13) % num_items) for index in range(num_items)], dtype=np.float32)


def expected_top_k(num_items: int, version: int, k: int, exclude: tuple[str, ...] = ()) -> list[tuple[str, float]]:
    """What the toy recommend model answers for ``k`` (the oracle for tests)."""
    pairs = [(item, float(score)) for item, score in zip(item_ids(num_items), item_scores(num_items, version)) if item not in exclude]
    return sorted(pairs, key=lambda pair: -pair[1])[:k]


def toy_request(model: str, num_items: int = TOY_ITEMS) -> dict[str, np.ndarray]:
    """One small valid request for the toy ``model``: its warmup inputs (session ``item-000``..``item-002``, ``k`` 10, ``item-000`` excluded)."""
    return warmup_inputs(model, item_ids(num_items))


def _build_functions(tf, num_items: int, version: int):
    from serving.contract.specs import input_signature

    ids = tf.constant(item_ids(num_items))
    scores = tf.constant(item_scores(num_items, version))
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(ids, scores), default_value=0.0)

    def at_least_one_column(**rank2):
        # The contract's rule: TF Serving's batching cannot pad an empty tensor, so the models
        # refuse one alone too.
        return [tf.debugging.assert_greater_equal(tf.shape(values)[1], 1, message=f"{name} must be at least one column wide")
                for name, values in rank2.items()]

    def top_k(batch_size, k, excluded):
        checks = [
            tf.debugging.assert_greater_equal(k, 1, message=f"k must be in 1..{num_items}"),
            tf.debugging.assert_less_equal(k, num_items, message=f"k must be in 1..{num_items}"),
        ]
        with tf.control_dependencies(checks):  # so top_k never sees a bad k first
            k = tf.identity(k)
        row_scores = tf.where(excluded, -np.inf, tf.tile(scores[None, :], [batch_size, 1]))
        best = tf.math.top_k(row_scores, k=tf.reduce_max(k))
        keep = (tf.range(tf.reduce_max(k))[None, :] < k[:, None]) & tf.math.is_finite(best.values)
        return {
            contract.ITEM_IDS: tf.where(keep, tf.gather(ids, best.indices), ""),
            contract.SCORES: tf.where(keep, best.values, -np.inf),
        }

    @tf.function(input_signature=input_signature(contract.RETRIEVAL_MODEL))
    def retrieve(session_item_ids, session_event_types, session_timestamps, session_length, user_id, query, k):
        with tf.control_dependencies(at_least_one_column(
                session_item_ids=session_item_ids, session_event_types=session_event_types, session_timestamps=session_timestamps)):
            k = tf.identity(k)
        return top_k(tf.shape(k)[0], k, tf.zeros([tf.shape(k)[0], num_items], tf.bool))

    @tf.function(input_signature=input_signature(contract.RECOMMEND_MODEL))
    def recommend(session_item_ids, session_event_types, session_timestamps, session_length, user_id, query, k,
                  exclude_item_ids, exclude_length):
        with tf.control_dependencies(at_least_one_column(
                session_item_ids=session_item_ids, session_event_types=session_event_types, session_timestamps=session_timestamps,
                exclude_item_ids=exclude_item_ids)):
            k = tf.identity(k)
        # Only each row's own exclusions: past exclude_length lies TF Serving's batch padding.
        own = tf.sequence_mask(exclude_length, tf.shape(exclude_item_ids)[1])
        excluded = tf.reduce_any(tf.equal(exclude_item_ids[:, :, None], ids[None, None, :]) & own[:, :, None], axis=1)
        return top_k(tf.shape(k)[0], k, excluded)

    @tf.function(input_signature=input_signature(contract.RANKING_MODEL))
    def rank(session_item_ids, session_event_types, session_timestamps, session_length, user_id, query, candidate_item_ids):
        with tf.control_dependencies(at_least_one_column(
                session_item_ids=session_item_ids, session_event_types=session_event_types, session_timestamps=session_timestamps,
                candidate_item_ids=candidate_item_ids)):
            candidate_scores = table.lookup(candidate_item_ids)
        probability = tf.sigmoid(candidate_scores - num_items / 2)
        return {
            contract.CLICK_PROBABILITY: probability,
            contract.CART_PROBABILITY: probability / 2,
            contract.PURCHASE_PROBABILITY: probability / 4,
            contract.SCORES: candidate_scores,
        }

    return table, {contract.RETRIEVAL_MODEL: retrieve, contract.RANKING_MODEL: rank, contract.RECOMMEND_MODEL: recommend}


def export_toy_models(base_dir, version: int = 1, num_items: int = TOY_ITEMS, models=contract.MODELS, warmup: bool = True) -> dict[str, Path]:
    """Exports the toy ``models`` as ``base_dir/<model>/<version>/``; returns model -> dir."""
    from recsys_base.tf_compat import tensorflow

    tf = tensorflow()
    table, functions = _build_functions(tf, num_items, version)
    exported = {}
    for model in models:
        concrete = functions[model].get_concrete_function()
        module = tf.Module()
        module.table = table  # tracked so the SavedModel restores the score lookup
        module.signature_function = functions[model]
        version_dir = Path(base_dir) / model / str(version)
        tf.saved_model.save(module, str(version_dir), signatures={contract.SIGNATURES[model]: concrete, contract.DEFAULT_SIGNATURE: concrete})
        if warmup:
            write_warmup_requests(version_dir, model, [toy_request(model, num_items)])
        exported[model] = version_dir
    return exported


def start_toy_server(base_dir, version: int = 1, models=contract.MODELS, **server_options):
    """Exports the toy models under ``base_dir`` and serves them on a free loopback port.

    The models config labels ``version`` as ``stable``; ``server_options`` go to
    :class:`serving.server.ServerConfig` (e.g. ``enable_batching=True``). Returns the
    server handle (``.port``, ``.stop()``).
    """
    from serving.deployment import DeploymentConfig, write_configs
    from serving.server import ServerConfig, serve

    base_dir = Path(base_dir)
    export_toy_models(base_dir / "models", version=version, models=models)
    configs = write_configs(
        DeploymentConfig(model_base=str(base_dir / "models"), models=tuple(models), stable_version=version),
        base_dir / "config",
    )
    options = {"port": 0, "rest_port": 0, "monitoring_config_file": configs["monitoring.config"], **server_options}
    return serve(ServerConfig(configs["models.config"], model_base=base_dir / "models", **options))
