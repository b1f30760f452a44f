"""The base every other package stands on: the Keras-2 switch, errors, TensorFlow access.

Layers, bottom to top (``tests/test_layers.py`` fails when an import runs upward):

1. ``recsys_base`` — this package: :mod:`recsys_base.errors`, :mod:`recsys_base.tf_compat`.
2. ``serving.contract`` — what a SavedModel, a server and a client agree on.
3. side by side, never importing each other: ``recommenders`` (the library: data,
   features, models, evaluation, export), ``serving.server`` (the embedded
   TF-Serving-compatible server and the TF Serving config files) and ``serving.client``
   (the thin client, never TensorFlow).
4. ``tuning`` (Keras Tuner) and ``drills`` (disaster-recovery drills).
5. ``recsys`` — the ``recsys`` command and the end-to-end workflow.

Importing this package selects the legacy Keras 2 implementation (``tf-keras``) for
TensorFlow: TFRS 0.7.7 only works with it, and the switch only takes effect when it
happens before TensorFlow is first imported. Every package whose modules import
TensorFlow imports ``recsys_base`` in its ``__init__``; modules get TensorFlow through
:func:`recsys_base.tf_compat.tensorflow`, which checks that the switch held. The thin
client's packages (``serving``, ``serving.contract``, ``serving.client``) do not, so a
backend service that imports the client keeps its own Keras.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ INFO/WARNING chatter drowns the progress bars people actually read.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
