"""The contract's inputs as ``tf.TensorSpec``s: the input signatures every exporter uses.

Derived from :data:`serving.contract.INPUTS` (name -> dtype, rank), so the trained models'
export and the toy models of :mod:`serving.testing` cannot drift from what the servers
and the thin client send. Shapes are ``[None]`` (rank 1, ``[B]``) or ``[None, None]``
(rank 2, ``[B, T]``); names are the contract's input names.

>>> [spec.name for spec in input_signature("retrieval")]
['session_item_ids', 'session_event_types', 'session_timestamps', 'session_length', 'user_id', 'query', 'k']
>>> input_signature("ranking")[-1]
TensorSpec(shape=(None, None), dtype=tf.string, name='candidate_item_ids')
"""

from __future__ import annotations

from recsys_base.tf_compat import tensorflow
from serving import contract

tf = tensorflow()


def tensor_spec(name: str, dtype: str, rank: int) -> tf.TensorSpec:
    """The spec of one contract input: ``dtype`` is a TF DataType enum name (``"DT_STRING"``)."""
    from tensorflow.core.framework import types_pb2

    return tf.TensorSpec([None] * rank, tf.as_dtype(types_pb2.DataType.Value(dtype)), name=name)


def input_signature(model: str) -> list[tf.TensorSpec]:
    """``model``'s inputs in contract order: the session inputs, then the model's own."""
    return [tensor_spec(name, dtype, rank) for name, (dtype, rank) in contract.INPUTS[model].items()]
