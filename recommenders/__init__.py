"""Session-based e-commerce recommendation and search on TensorFlow Recommenders.

Importing this package selects the legacy Keras 2 implementation (``tf-keras``) for
TensorFlow: TFRS 0.7.7 only works with it, and the switch only takes effect when it
happens before TensorFlow is first imported. Modules that need TensorFlow import it
through :func:`recommenders.tf_compat.tensorflow`, which checks that the switch held.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ INFO/WARNING chatter drowns the progress bars people actually read.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
