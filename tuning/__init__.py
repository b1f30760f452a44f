"""Hyperparameter tuning with Keras Tuner for the retrieval and ranking models.

Modules: :mod:`tuning.space` (search spaces and their config file), :mod:`tuning.objective`
(validation HR/MRR@K and AUC), :mod:`tuning.oracles` (search algorithms by name, budgets),
:mod:`tuning.tuner` (the keras-tuner ``Tuner`` for tf-keras models), :mod:`tuning.board`
(TensorBoard HParams), :mod:`tuning.leaderboard` and :mod:`tuning.search` (the whole run).
"""

import recsys_base  # noqa: F401  (the Keras-2 switch, before keras_tuner imports TensorFlow)
