"""Training across devices and machines: the ``tf.distribute`` strategy, losses per replica, who writes.

``TrainConfig.distribute`` picks the strategy: ``"none"`` (the strategy in effect, one
device by default), ``"mirrored"`` (``MirroredStrategy`` over this machine's GPUs, else
its logical CPU devices) or ``"multi-worker"`` (``MultiWorkerMirroredStrategy``, one
process per machine, the cluster read from the ``TF_CONFIG`` environment variable).

Gradients: every replica runs the train step on its slice of the global batch and the
Keras optimizer all-reduces the gradients with a SUM. The retrieval losses are sums over
a batch's positions (``tfrs.tasks.Retrieval``), so the summed per-replica gradients are
the gradient of the whole batch, as on one device. Terms that are not sums over positions
are turned into a replica's share of the global batch's term: the regularization loss is
divided by the number of replicas (:func:`replica_share`) and a mean over positions is
the replica's sum over the global count (:func:`share_of_mean`). The loss a replica logs
is multiplied back by the number of replicas, since Keras averages the replicas' metrics.

What differs: a sampled softmax draws its in-batch negatives from the replica's own slice
(half the batch with two replicas) and each replica samples its own extra negatives.

Writing: under ``multi-worker`` every worker runs the same program, and every worker must
take part in saving (saving reads variables with collective ops), but only the chief's
files are kept; the others write to a scratch directory (:func:`written_by_chief`), as
the TensorFlow multi-worker guide recommends.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

from recsys_base.errors import ConfigError
from recsys_base.tf_compat import tensorflow

tf = tensorflow()

TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'


def split_cpu(devices: int) -> None:
    """Splits the CPU into ``devices`` logical devices, so ``"mirrored"`` has replicas without GPUs.

    Must run before TensorFlow initializes its devices (before the first op), so tests and
    benchmarks call it first thing in a fresh process. It makes no training faster: the
    replicas share the same cores.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)


def loopback_tf_configs(workers: int) -> list[str]:
    """One ``TF_CONFIG`` per worker of a cluster on this machine (free 127.0.0.1 ports), by task index.

    For trying ``multi-worker`` without machines (tests, benchmarks): start one process per
    value, each with its value in the ``TF_CONFIG`` environment variable.

    >>> configs = [json.loads(value) for value in loopback_tf_configs(2)]
    >>> [config["task"] for config in configs]
    [{'type': 'worker', 'index': 0}, {'type': 'worker', 'index': 1}]
    >>> configs[0]["cluster"] == configs[1]["cluster"] and len(set(configs[0]["cluster"]["worker"]))
    2
    """
    # All sockets stay bound until every port is known: no port is handed out twice.
    sockets = [socket.socket() for _ in range(workers)]
    try:
        for listener in sockets:
            listener.bind(("127.0.0.1", 0))
        cluster = {"worker": [f"127.0.0.1:{listener.getsockname()[1]}" for listener in sockets]}
    finally:
        for listener in sockets:
            listener.close()
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}) for index in range(workers)]


def cluster_from_environment() -> dict:
    """The validated ``TF_CONFIG`` of this process; ConfigError names what is missing or wrong.

    >>> os.environ["TF_CONFIG"] = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}'
    >>> cluster_from_environment()
    Traceback (most recent call last):
    ...
    recsys_base.errors.ConfigError: TF_CONFIG task index 2 is out of range: cluster 'worker' has 2 address(es)
    >>> del os.environ["TF_CONFIG"]
    """
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        raise ConfigError(f"--distribute multi-worker needs the TF_CONFIG environment variable, e.g. {TF_CONFIG_EXAMPLE}")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({exc.msg} at column {exc.colno})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not any(isinstance(cluster.get(job), list) and cluster[job]
                                                for job in ("chief", "worker")):
        raise ConfigError(f"TF_CONFIG needs a cluster with a non-empty 'worker' (or 'chief') address list, e.g. {TF_CONFIG_EXAMPLE}")
    if not isinstance(task, dict) or not isinstance(task.get("type"), str) or isinstance(task.get("index"), bool) \
            or not isinstance(task.get("index"), int):
        raise ConfigError(f"TF_CONFIG needs this process's task as {{\"type\": ..., \"index\": ...}}, got {task!r:.80}")
    addresses = cluster.get(task["type"])
    if not isinstance(addresses, list):
        raise ConfigError(f"TF_CONFIG task type {task['type']!r} is not a job of the cluster ({', '.join(map(str, cluster))})")
    if not 0 <= task["index"] < len(addresses):
        raise ConfigError(f"TF_CONFIG task index {task['index']} is out of range: cluster {task['type']!r} has "
                          f"{len(addresses)} address(es)")
    return config


@functools.cache
def _strategy(mode: str):
    if mode == "mirrored":
        # GPUs when there are any, else the logical CPU devices (one unless split_cpu ran).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    cluster_from_environment()
    return tf.distribute.MultiWorkerMirroredStrategy()


def strategy_for(mode: str):
    """The ``tf.distribute.Strategy`` for ``TrainConfig.distribute``.

    ``"none"`` is the strategy in effect (the default one-device strategy unless the caller
    entered a scope). The others are made once per process: a process joins one cluster,
    and TensorFlow configures its collective ops once.
    """
    return tf.distribute.get_strategy() if mode == "none" else _strategy(mode)


def is_chief(strategy) -> bool:
    """Whether this process keeps what it writes (always, except on non-chief workers)."""
    return strategy.extended.should_checkpoint


@contextlib.contextmanager
def written_by_chief(directory, strategy):
    """Yields ``directory`` on the chief; on another worker a scratch directory, removed after the block."""
    if is_chief(strategy):
        yield Path(directory)
        return
    scratch = Path(tempfile.mkdtemp(prefix="recsys-worker-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def leave_together(strategy) -> None:
    """Returns once every worker of ``strategy`` has called it (at once without a cluster).

    A worker that exits while the chief still works (fitting the recommend blend) reads,
    to the chief's coordination service, as a crashed task.
    """
    strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1)), axis=None)


def replicas() -> int:
    """How many replicas share the global batch (1 outside a strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_share(value):
    """This replica's share of a term counted once per global batch (a regularization loss).

    >>> float(replica_share(tf.constant(6.0)))   # one replica: all of it
    6.0
    """
    return value / replicas()


def share_of_mean(total, count):
    """This replica's share of a mean over the global batch: its ``total`` over every replica's ``count``.

    The shares of all replicas add up to the mean over the whole batch.

    >>> float(share_of_mean(tf.constant(6.0), tf.constant(4)))   # one replica: the mean
    1.5
    """
    context = tf.distribute.get_replica_context()
    if context is not None:  # None in a strategy's cross-replica context, where the batch is whole
        count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
    return total / tf.cast(tf.maximum(count, 1), total.dtype)
