"""The top layer: the ``recsys`` command (:mod:`recsys.cli`) and the end-to-end jobs it runs
(:mod:`recsys.workflow`: train, evaluate, export, demo over data and run directories)."""

import recsys_base  # noqa: F401  (the Keras-2 switch, before any command imports TensorFlow)
