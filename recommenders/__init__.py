"""The library: session data, features, TFRS models, evaluation and SavedModel export.

Subpackages: :mod:`recommenders.data` (loaders, cleaning, splits, the synthetic shop),
:mod:`recommenders.features` (vocabularies, padded session tensors, tf.data),
:mod:`recommenders.models` (towers, retrieval, ranking, serving modules, export) and
:mod:`recommenders.evaluation` (next-item cases, HR/MRR@K, baselines). It reads the serving
contract and never the server, the client, tuning or the CLI.
"""

import recsys_base  # noqa: F401  (the Keras-2 switch, before any module here imports TensorFlow)
