"""Validation HR@K and MRR@K of the mixed retrieval score, after every epoch.

Keras's own validation metric for retrieval (TFRS ``FactorizedTopK``) ranks the catalog
softmax alone, but ``retrieve`` (what is exported, served and evaluated) mixes in the
repeat head's pointer over the session's own items, and about a fifth of Diginetica's
next clicks are re-visits. Early stopping, TensorBoard curves and the tuner must see the
score users get, so :class:`RetrievalValidation` scores a fixed, bounded subset of
validation next-item cases through ``RetrievalModule.retrieve`` at every epoch end and
adds ``val_HR@K`` / ``val_MRR@K`` to the epoch logs.

Example (an untrained model ranks the target somewhere in a 300-item catalog):

>>> from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
>>> from recommenders.features.vocabulary import FeatureVocabularies
>>> from recommenders.models.config import RetrievalConfig
>>> from recommenders.models.retrieval import SessionRetrievalModel
>>> shop = generate_shop(SyntheticShopConfig.small(n_sessions=100, clean=True))
>>> model = SessionRetrievalModel(FeatureVocabularies.build(shop.events, shop.catalog), RetrievalConfig())
>>> cases = validation_cases(shop.events, max_cases=50)
>>> metrics = retrieval_metrics(model, cases, ks=(10, 20), max_length=20)
>>> sorted(metrics), len(cases), 0 <= metrics["val_MRR@20"] <= metrics["val_HR@20"] <= 1
(['val_HR@10', 'val_HR@20', 'val_MRR@10', 'val_MRR@20'], 50, True)
"""

from __future__ import annotations

import pandas as pd

from recsys_base.tf_compat import tensorflow

tf = tensorflow()

# Cut-offs scored every epoch; the early-stopping monitor is MRR at the largest.
VALIDATION_KS = (10, 20)


def validation_cases(validation_events: pd.DataFrame, max_cases: int | None, seed: int = 0):
    """Next-item cases of the validation split, a fixed random subset of ``max_cases`` if larger."""
    from recommenders.evaluation.cases import make_next_item_cases

    return make_next_item_cases(validation_events).subset(max_cases, seed)


def retrieval_metrics(model, cases, ks, max_length: int, module=None) -> dict[str, float]:
    """``val_HR@k`` and ``val_MRR@k`` for each k in ``ks`` of a retrieval model through its ``retrieve`` signature.

    ``module``: a ``RetrievalModule`` of ``model`` whose catalog embeddings are current
    (default: a new one, which snapshots them).
    """
    from recommenders.evaluation.harness import evaluate
    from recommenders.models.inference import SignatureRecommender
    from recommenders.models.serving_modules import RetrievalModule

    # The tf.function holds its module weakly: keep the module alive while it is called.
    if module is None:
        module = RetrievalModule(model, max_length)
    report = evaluate({"model": SignatureRecommender(module.retrieve, max_length)}, cases, k_values=tuple(ks),
                      catalog_size=model.vocab.num_items, show_progress=False)
    values = report.result("model").metrics
    return {f"val_{name}@{k}": float(values[f"{name}@{k}"]) for k in sorted(ks) for name in ("HR", "MRR")}


class RetrievalValidation(tf.keras.callbacks.Callback):
    """Adds ``val_HR@K`` and ``val_MRR@K`` of ``retrieve`` on ``cases`` to every epoch's logs.

    List it before ``EarlyStopping`` and ``TensorBoard``: Keras hands the same logs dict to
    the callbacks in order, so those that follow (``History`` and the progress bar too)
    see the added metrics.
    Costs one ``retrieve`` pass over ``cases`` per epoch; keep them bounded
    (``TrainConfig.max_validation_cases``). One ``RetrievalModule`` serves every epoch,
    its catalog embeddings taken again each time: ``retrieve`` is traced once per fit.
    """

    def __init__(self, cases, max_length: int, ks=VALIDATION_KS):
        super().__init__()
        self.cases, self.max_length, self.ks = cases, max_length, tuple(ks)
        self.module = None

    def on_train_begin(self, logs=None):
        self.module = None  # this fit's model gets its own module, at the first epoch's end

    def on_epoch_end(self, epoch, logs=None):
        from recommenders.models.serving_modules import RetrievalModule

        if logs is None:
            return
        if self.module is None:
            self.module = RetrievalModule(self.model, self.max_length)
        else:
            self.module.snapshot_catalogs(self.model)
        logs.update(retrieval_metrics(self.model, self.cases, self.ks, self.max_length, self.module))
