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
# What retrieval scores: the candidate tower's output for every catalog item.
ITEM_EMBEDDINGS = "item_embeddings"
# The item id table the candidate and session towers share, padding and unknown rows included.
ITEM_ID_EMBEDDINGS = "item_id_embeddings"
METADATA_COLUMNS = ("title", "category", "item_id")  # the first text column is the projector's default label
CHECKPOINT_PREFIX = "embeddings"
# Labels of the id table's rows that are not catalog items.
_SPECIAL_ROWS = {PADDING_INDEX: "[padding]", OOV_INDEX: "[unknown item]"}


def _cell(text) -> str:
    return " ".join(str(text).split()) or "-"


def _write_metadata(path: Path, vocab, special_rows: int) -> None:
    """One header row, then one row per embedding row: the first ``special_rows`` id-table
    rows (padding, unknown), then the catalog in vocabulary order."""
    rows = [(_SPECIAL_ROWS[index],) * len(METADATA_COLUMNS) for index in range(special_rows)]
    rows += zip(vocab.item_titles, vocab.item_categories, vocab.item_ids)
    path.write_text("".join("\t".join(map(_cell, row)) + "\n" for row in [METADATA_COLUMNS, *rows]), encoding="utf-8")


def write_item_projector(log_dir: str | Path, model) -> Path:
    """Writes the item embeddings of a trained retrieval ``model`` for the Projector tab.

    Two tensors, each with a metadata TSV (title, category, item id): ``item_embeddings``
    (the candidate tower's output, the vectors retrieval scores sessions against) and
    ``item_id_embeddings`` (the id table alone, with its padding and unknown rows).
    ``log_dir`` is the one given to ``fit``; returns the run directory written to.
    Open with ``tensorboard --logdir LOG_DIR`` -> Projector.
    """
    from tensorboard.plugins import projector

    run_dir = Path(log_dir) / TRAIN_RUN
    run_dir.mkdir(parents=True, exist_ok=True)
    id_table = model.item_encoder.id_embedding.embeddings
    tensors = {ITEM_EMBEDDINGS: model.catalog_embeddings(), ITEM_ID_EMBEDDINGS: tf.cast(id_table, tf.float32)}
    special_rows = {ITEM_EMBEDDINGS: 0, ITEM_ID_EMBEDDINGS: FIRST_ITEM_INDEX}
    config = projector.ProjectorConfig()
    for name in tensors:
        _write_metadata(run_dir / f"{name}.tsv", model.vocab, special_rows[name])
        entry = config.embeddings.add()
        entry.tensor_name, entry.metadata_path = name, f"{name}.tsv"
    # A name-based checkpoint keeps the names; relative paths keep the run directory movable.
    saver = tf.compat.v1.train.Saver({name: tf.Variable(values) for name, values in tensors.items()}, save_relative_paths=True)
    saver.save(None, str(run_dir / CHECKPOINT_PREFIX), write_meta_graph=False)
    projector.visualize_embeddings(str(run_dir), config)
    return run_dir
