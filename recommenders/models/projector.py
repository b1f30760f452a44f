"""TensorBoard Embedding Projector view of the item embeddings, labelled with catalog metadata.

TensorBoard reads a ``projector_config.pbtxt`` only in a directory it lists as a run (one
holding event files) and resolves ``metadata_path`` against that directory, so the files
go into the training run that ``fit``'s TensorBoard callback writes (``<log_dir>/train``).
The embeddings are a name-based checkpoint there, so the projector shows readable tensor
names, not a checkpoint-internal ``.../.ATTRIBUTES/VARIABLE_VALUE`` path.
"""

from __future__ import annotations

from pathlib import Path

from recommenders.models.towers import FIRST_ITEM_INDEX, OOV_INDEX, PADDING_INDEX
from recsys_base.tf_compat import tensorflow

tf = tensorflow()

# The run directory the Keras TensorBoard callback gives the training curves of a log dir.
TRAIN_RUN = "train"
# What retrieval scores: the candidate tower's output per item index.
ITEM_EMBEDDINGS = "item_embeddings"
# The item id table the candidate and session towers share.
ITEM_ID_EMBEDDINGS = "item_id_embeddings"
METADATA_FILE = "item_metadata.tsv"
METADATA_COLUMNS = ("title", "category", "item_id")  # the first text column is the projector's default label
CHECKPOINT_PREFIX = "embeddings"
# Labels of the index rows that are not catalog items (never scored by retrieval).
_SPECIAL_ROWS = {PADDING_INDEX: "[padding]", OOV_INDEX: "[unknown item]"}


def _cell(text) -> str:
    return " ".join(str(text).split()) or "-"


def _write_metadata(path: Path, vocab) -> None:
    """A header row, then one row per item index: padding, unknown, the catalog in vocabulary order."""
    rows = [(_SPECIAL_ROWS[index],) * len(METADATA_COLUMNS) for index in range(FIRST_ITEM_INDEX)]
    rows += zip(vocab.item_titles, vocab.item_categories, vocab.item_ids)
    path.write_text("".join("\t".join(map(_cell, row)) + "\n" for row in [METADATA_COLUMNS, *rows]), encoding="utf-8")


def write_item_projector(log_dir: str | Path, model) -> Path:
    """Writes the item embeddings of a trained retrieval ``model`` for the Projector tab.

    Two tensors, one row per item index (the padding and unknown rows, then the catalog),
    labelled by one metadata TSV (title, category, item id): ``item_embeddings``, the
    candidate tower's output that retrieval scores sessions against, and
    ``item_id_embeddings``, the id table alone. With equal row counts the projector opens
    ``item_embeddings`` first. ``log_dir`` is the one given to ``fit``; returns the run
    directory written to. Open with ``tensorboard --logdir LOG_DIR`` -> Projector.
    """
    from tensorboard.plugins import projector

    run_dir = Path(log_dir) / TRAIN_RUN
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_metadata(run_dir / METADATA_FILE, model.vocab)
    encoder = model.item_encoder
    special = tf.cast(encoder.encode_indices(tf.range(FIRST_ITEM_INDEX, dtype=tf.int64)), tf.float32)
    tensors = {ITEM_EMBEDDINGS: tf.concat([special, model.catalog_embeddings()], axis=0),
               ITEM_ID_EMBEDDINGS: tf.cast(encoder.id_embedding.embeddings, tf.float32)}
    config = projector.ProjectorConfig()
    for name in tensors:
        entry = config.embeddings.add()
        entry.tensor_name, entry.metadata_path = name, METADATA_FILE
    # A name-based checkpoint keeps the names; relative paths keep the run directory movable.
    saver = tf.compat.v1.train.Saver({name: tf.Variable(values) for name, values in tensors.items()}, save_relative_paths=True)
    saver.save(None, str(run_dir / CHECKPOINT_PREFIX), write_meta_graph=False)
    projector.visualize_embeddings(str(run_dir), config)
    return run_dir
