"""keras-tuner imports Keras 3; our models must still get tf-keras (Keras 2) from tf.keras."""

import subprocess
import sys

PROBE = """
import tuning.tuner  # imports recommenders, then keras_tuner (and with it Keras 3)
import keras  # the Keras keras_tuner imported
from recsys_base.tf_compat import tensorflow
tf = tensorflow()
print(keras.__version__.split(".")[0], tf.keras.Model.__module__.split(".")[0])
"""


def test_keras_tuner_runs_on_keras_3_while_tf_keras_stays_keras_2():
    # A fresh interpreter: which Keras tf.keras resolves to is fixed at first import.
    completed = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    # The Keras that keras-tuner imports (``keras``) is Keras 3; tf.keras (our models) is tf-keras.
    assert completed.stdout.split() == ["3", "tf_keras"]
