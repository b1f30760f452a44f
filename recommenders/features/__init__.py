"""Features: vocabularies built from the training split, session sequences, tf.data pipelines."""
