"""Warmup requests: ``assets.extra/tf_serving_warmup_requests`` in a SavedModel version dir.

TF Serving (and the embedded server) replay these PredictionLog records when a version
loads, so the first real request does not pay for graph tracing and memory allocation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from serving import contract

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
# TF Serving refuses files with more records than this.
MAX_WARMUP_RECORDS = 1000


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
    from recommenders.tf_compat import tensorflow

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
    from recommenders.tf_compat import tensorflow

    tf = tensorflow()
    from tensorflow_serving.apis import prediction_log_pb2

    return [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in tf.data.TFRecordDataset(str(path))]
