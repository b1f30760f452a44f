"""The one place that imports TensorFlow and TFRS, after checking Keras 2 is in effect."""

from __future__ import annotations

import os

from recsys_base.errors import ConfigError

_LEGACY_HINT = (
    "TensorFlow Recommenders 0.7.7 needs the Keras 2 API: install 'tf-keras' and set "
    "TF_USE_LEGACY_KERAS=1 before TensorFlow is first imported (importing `recommenders` "
    "before `tensorflow` does this)."
)


def tensorflow():
    """Returns the ``tensorflow`` module, failing clearly if ``tf.keras`` is Keras 3."""
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise ConfigError(f"TF_USE_LEGACY_KERAS={os.environ.get('TF_USE_LEGACY_KERAS')!r}. {_LEGACY_HINT}")
    import tensorflow as tf

    # tf.keras is a lazy loader; the module behind its layers says which Keras answered.
    implementation = tf.keras.layers.Dense.__module__.split(".")[0]
    if implementation != "tf_keras":
        raise ConfigError(f"tf.keras resolves to the '{implementation}' package (Keras 3). {_LEGACY_HINT}")
    return tf


def tfrs():
    """Returns the ``tensorflow_recommenders`` module (after :func:`tensorflow`)."""
    tensorflow()
    import tensorflow_recommenders

    return tensorflow_recommenders
