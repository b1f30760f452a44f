"""Calling contract signatures on evaluation cases: the bridge from models to the harness."""

from __future__ import annotations

import numpy as np

from recommenders.evaluation.cases import NextItemCases
from recommenders.features.sequences import cases_to_arrays
from recommenders.models.config import TrainConfig
from recsys_base.tf_compat import tensorflow
from serving import contract

tf = tensorflow()


def session_inputs(cases: NextItemCases, max_length: int) -> dict[str, np.ndarray]:
    """The contract's session inputs for ``cases`` (their last ``max_length`` events)."""
    arrays = cases_to_arrays(cases, max_length)
    features = {**arrays.features(), contract.SESSION_LENGTH: arrays.lengths.astype(np.int32)}
    return {name: features[name] for name in contract.SESSION_INPUTS}


def as_tensors(inputs: dict[str, np.ndarray]) -> dict:
    """Contract inputs as TensorFlow tensors: object (string) arrays as ``tf.string``, others as they are."""
    return {name: tf.constant(values.astype(str) if values.dtype == object else values) for name, values in inputs.items()}


class SignatureRecommender:
    """Ranks evaluation cases with a ``retrieve`` or ``recommend`` signature.

    Works the same for the in-process ``tf.function`` and for a signature of a loaded
    SavedModel, which is how exported models are evaluated and compared. The model is
    already trained: evaluate it with ``evaluate(..., catalog_size=...)`` (no fitting).

    Example (an untrained model: the items are arbitrary, the shapes are not):

    >>> from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
    >>> from recommenders.evaluation.cases import make_next_item_cases
    >>> from recommenders.features.vocabulary import FeatureVocabularies
    >>> from recommenders.models.config import RetrievalConfig
    >>> from recommenders.models.retrieval import SessionRetrievalModel
    >>> from recommenders.models.serving_modules import RetrievalModule
    >>> shop = generate_shop(SyntheticShopConfig.small(n_sessions=100, clean=True))
    >>> model = SessionRetrievalModel(FeatureVocabularies.build(shop.events, shop.catalog), RetrievalConfig())
    >>> module = RetrievalModule(model)
    >>> cases = make_next_item_cases(shop.events).take(range(5))
    >>> recommendations = SignatureRecommender(module.retrieve).recommend(cases, k=20)
    >>> recommendations.shape, recommendations.dtype, set(recommendations.ravel()) <= set(model.vocab.item_ids)
    ((5, 20), dtype('O'), True)
    """

    def __init__(self, signature, max_length: int = TrainConfig.max_length):
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
            inputs[contract.EXCLUDE_LENGTH] = np.zeros(len(cases), dtype=np.int32)
        return inputs

    def recommend(self, cases: NextItemCases, k: int) -> np.ndarray:
        outputs = self.signature(**as_tensors(self.inputs(cases, k)))
        return outputs[contract.ITEM_IDS].numpy().astype(str).astype(object)
