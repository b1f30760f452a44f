"""TensorBoard Embedding Projector view of the item embeddings, labelled with catalog metadata."""

from __future__ import annotations

from pathlib import Path

from recsys_base.tf_compat import tensorflow

tf = tensorflow()

METADATA_FILE = "item_metadata.tsv"


def _cell(text: str) -> str:
    return " ".join(str(text).split()) or "-"


def write_item_projector(log_dir: str | Path, model) -> Path:
    """Writes the model's catalog embeddings + ``item_metadata.tsv`` (id, title, category).

    Open with ``tensorboard --logdir LOG_DIR`` -> Projector tab.
    """
    from tensorboard.plugins import projector

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    vocab = model.vocab
    with open(log_dir / METADATA_FILE, "w", encoding="utf-8") as out:
        out.write("item_id\ttitle\tcategory\n")
        for item, title, category in zip(vocab.item_ids, vocab.item_titles, vocab.item_categories):
            out.write(f"{_cell(item)}\t{_cell(title)}\t{_cell(category)}\n")
    embedding = tf.Variable(model.catalog_embeddings(), name="item_embedding")
    checkpoint = tf.train.Checkpoint(item_embedding=embedding)
    checkpoint.save(str(log_dir / "item_embedding.ckpt"))
    config = projector.ProjectorConfig()
    entry = config.embeddings.add()
    entry.tensor_name = "item_embedding/.ATTRIBUTES/VARIABLE_VALUE"
    entry.metadata_path = METADATA_FILE
    projector.visualize_embeddings(str(log_dir), config)
    return log_dir
