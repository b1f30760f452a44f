"""Calling contract signatures on evaluation cases: the bridge from models to the harness."""

from __future__ import annotations

import numpy as np

from recommenders.evaluation.cases import NextItemCases
from recommenders.features.sequences import cases_to_arrays
from recsys_base.tf_compat import tensorflow
from serving import contract

tf = tensorflow()


def session_inputs(cases: NextItemCases, max_length: int) -> dict[str, np.ndarray]:
    """The contract's session inputs for ``cases`` (their last ``max_length`` events)."""
    arrays = cases_to_arrays(cases, max_length)
    features = arrays.features()
    return {name: features[name] for name in contract.SESSION_INPUTS}


class SignatureRecommender:
    """Ranks evaluation cases with a ``retrieve`` or ``recommend`` signature.

    Works the same for the in-process ``tf.function`` and for a signature of a loaded
    SavedModel, which is how exported models are evaluated and compared. The model is
    already trained: evaluate it with ``evaluate(..., catalog_size=...)`` (no fitting).

    Example:

    >>> module = RetrievalModule(model)                                   # doctest: +SKIP
    >>> SignatureRecommender(module.retrieve).recommend(cases, k=20)       # doctest: +SKIP
    array([['item_0042', ...], ...], dtype=object)
    """

    def __init__(self, signature, max_length: int = 20):
        self.signature = signature
        self.max_length = max_length
        # A tf.function lists its TensorSpecs; a loaded SavedModel signature names its keyword inputs.
        specs = getattr(signature, "input_signature", None)
        self.input_names = {spec.name for spec in specs} if specs is not None else set(signature.structured_input_signature[1])

    def inputs(self, cases: NextItemCases, k: int) -> dict[str, np.ndarray]:
        inputs = session_inputs(cases, self.max_length)
        inputs[contract.K] = np.full(len(cases), k, dtype=np.int32)
        if contract.EXCLUDE_ITEM_IDS in self.input_names:
            inputs[contract.EXCLUDE_ITEM_IDS] = np.full((len(cases), 1), "", dtype=object)
        return inputs

    def recommend(self, cases: NextItemCases, k: int) -> np.ndarray:
        tensors = {name: tf.constant(values.astype(str) if values.dtype == object else values)
                   for name, values in self.inputs(cases, k).items()}
        outputs = self.signature(**tensors)
        return outputs[contract.ITEM_IDS].numpy().astype(str).astype(object)
