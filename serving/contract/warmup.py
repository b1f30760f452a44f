"""Warmup requests: ``assets.extra/tf_serving_warmup_requests`` in a SavedModel version dir.

Part of the contract because three sides share the record format: the exporters write it
(trained models and :mod:`serving.testing`'s toy models), and TF Serving and the embedded
server replay it.

TF Serving (and the embedded server) replay these PredictionLog records when a version
loads, so the first real request does not pay for graph tracing and memory allocation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from serving import contract

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
# TF Serving refuses files with more records than this.
MAX_WARMUP_RECORDS = 1000
_WARMUP_START = 1_700_000_000  # any real unix time: warmup timestamps only need to be plausible


def warmup_inputs(model: str, item_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """One small valid request for ``model`` over its catalog ``item_ids`` (its warmup record).

    A session of the first three items, viewed a minute apart; ``k`` up to 10, the first
    item excluded, the next ten items as ranking candidates: every input a signature has,
    so warmup traces the same graph real requests run.

    >>> inputs = warmup_inputs("recommend", ["a", "b", "c", "d"])
    >>> sorted(inputs)
    ['exclude_item_ids', 'exclude_length', 'k', 'query', 'session_event_types', 'session_item_ids', 'session_length', 'session_timestamps', 'user_id']
    >>> inputs["session_item_ids"].tolist(), inputs["k"].tolist()
    ([['a', 'b', 'c']], [4])
    """
    session = list(item_ids[:3])
    inputs = {
        contract.SESSION_ITEM_IDS: np.array([session], dtype=object),
        contract.SESSION_EVENT_TYPES: np.array([[contract.VIEW] * len(session)], dtype=object),
        contract.SESSION_TIMESTAMPS: np.array([[_WARMUP_START + 60 * i for i in range(len(session))]], dtype=np.int64),
        contract.SESSION_LENGTH: np.array([len(session)], dtype=np.int32),
        contract.USER_ID: np.array([""], dtype=object),
        contract.QUERY: np.array([""], dtype=object),
    }
    model_inputs = contract.INPUTS[model]
    if contract.K in model_inputs:
        inputs[contract.K] = np.array([min(10, len(item_ids))], dtype=np.int32)
    if contract.EXCLUDE_ITEM_IDS in model_inputs:
        inputs[contract.EXCLUDE_ITEM_IDS] = np.array([list(item_ids[:1])], dtype=object)
        inputs[contract.EXCLUDE_LENGTH] = np.array([1], dtype=np.int32)
    if contract.CANDIDATE_ITEM_IDS in model_inputs:
        inputs[contract.CANDIDATE_ITEM_IDS] = np.array([list(item_ids[3:13])], dtype=object)
    return inputs


def write_warmup_requests(
    version_dir: str | Path,
    model_name: str,
    requests: Iterable[Mapping[str, np.ndarray]],
    signature_name: str = contract.DEFAULT_SIGNATURE,
) -> Path:
    """Writes ``requests`` (input name -> array, as the signature expects) as warmup records.

    Each request becomes one ``PredictionLog`` whose ``predict_log.request`` targets
    ``model_name``/``signature_name``; returns the written file's path.
    """
    from recsys_base.tf_compat import tensorflow

    tf = tensorflow()
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    records = []
    for inputs in requests:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature_name
        for name, values in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
        records.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    if not records:
        raise ValueError("write_warmup_requests: give at least one request")
    if len(records) > MAX_WARMUP_RECORDS:
        raise ValueError(f"write_warmup_requests: {len(records)} requests, TF Serving accepts at most {MAX_WARMUP_RECORDS}")
    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path


def read_warmup_requests(version_dir: str | Path) -> list:
    """The PredictionLog records of ``version_dir``'s warmup file ([] if it has none)."""
    path = Path(version_dir) / WARMUP_FILE
    if not path.exists():
        return []
    from recsys_base.tf_compat import tensorflow

    tf = tensorflow()
    from tensorflow_serving.apis import prediction_log_pb2

    return [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in tf.data.TFRecordDataset(str(path))]
