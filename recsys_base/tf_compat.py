"""The one place that imports TensorFlow and TFRS, after checking Keras 2 is in effect.

TensorFlow's native libraries log while they load, through absl, before anything calls
``absl::InitializeLog()``; absl writes those early lines to stderr whatever
``TF_CPP_MIN_LOG_LEVEL`` says (``I0000 ... cudart_stub.cc:31] Could not find cuda
drivers``). The first import here therefore applies that level itself: it captures what
the import writes to the stderr file descriptor and passes on every line except absl lines
below the level, so that an error reported after loading TensorFlow stays one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

from recsys_base.errors import ConfigError

_LEGACY_HINT = (
    "TensorFlow Recommenders 0.7.7 needs the Keras 2 API: install 'tf-keras' and set "
    "TF_USE_LEGACY_KERAS=1 before TensorFlow is first imported (importing `recommenders` "
    "before `tensorflow` does this)."
)


# An absl log line: severity letter, MMDD, time (early lines: 00:00:<epoch seconds>), thread id, file:line, "]".
_ABSL_LINE = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] ")
_ABSL_SEVERITIES = "IWEF"  # TF_CPP_MIN_LOG_LEVEL 1 hides I, 2 also W, 3 also E
_ABSL_EARLY_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def _shown(line: str, min_level: int) -> bool:
    """Whether a line written while TensorFlow loads passes ``TF_CPP_MIN_LOG_LEVEL=min_level``.

    >>> _shown("I0000 00:00:1796055844.473141   14220 cudart_stub.cc:31] Could not find cuda drivers", 2)
    False
    >>> _shown("E0000 00:00:1796055844.473141   14220 cuda_dnn.cc:8] Unable to register cuDNN factory", 2)
    True
    >>> _shown("/path/module.py:3: DeprecationWarning: something", 3)
    True
    """
    if min_level < 1:
        return True
    if line.startswith(_ABSL_EARLY_NOTICE):
        return False
    return not (_ABSL_LINE.match(line) and _ABSL_SEVERITIES.index(line[0]) < min_level)


@contextlib.contextmanager
def _native_log_level_applied():
    """Filters what is written to file descriptor 2 inside the block by ``TF_CPP_MIN_LOG_LEVEL``."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")
    min_level = int(level) if level.isdigit() else 0
    if min_level < 1:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if _shown(line, min_level)))
            sys.stderr.flush()


def tensorflow():
    """Returns the ``tensorflow`` module, failing clearly if ``tf.keras`` is Keras 3."""
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise ConfigError(f"TF_USE_LEGACY_KERAS={os.environ.get('TF_USE_LEGACY_KERAS')!r}. {_LEGACY_HINT}")
    with _native_log_level_applied() if "tensorflow" not in sys.modules else contextlib.nullcontext():
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


def traced_for_any_shape(function, *example):
    """``function`` as a graph traced once, for arguments shaped as ``example``'s (a nest of
    tensors) with every dimension unknown.

    For loops over batches that differ in length and size (the last batch is smaller):
    ``tf.function(reduce_retracing=True)`` still traces two or three times before it
    generalizes, and tracing a model takes seconds.

    >>> tf = tensorflow()
    >>> row_sums = traced_for_any_shape(lambda x: tf.reduce_sum(x, axis=1), tf.zeros([2, 3]))
    >>> row_sums(tf.ones([4, 5])).numpy().tolist()
    [5.0, 5.0, 5.0, 5.0]
    """
    tf = tensorflow()
    signature = tf.nest.map_structure(lambda tensor: tf.TensorSpec([None] * tensor.shape.rank, tensor.dtype), example)
    return tf.function(function).get_concrete_function(*signature)
