"""Warm start: a model over grown vocabularies that begins where a trained one stopped.

A shop adds items every day, and a retrain from scratch both costs a full training and
forgets nothing it could not relearn only at that cost. Growing the vocabularies keeps
every old index (:meth:`FeatureVocabularies.grown`), so each old variable still means what
it meant: it is copied row for row into the new model, and only the rows of new entries
need a start. A new item's id-embedding row starts from its content, as the item tower
already reads category, brand, price and title:

* ``category_mean``: the mean id embedding of the old items of its category (zeros for a
  category no old item has), so it starts among its peers;
* ``zeros``: no id signal at all, the tower's output comes from the content features;
* ``random``: the layer's own initializer, as a model trained from scratch starts (the
  baseline ``benchmarks/cold_start.py`` measures the other two against).

New rows of the other tables (categories, brands, users, tokens) keep their initializer.
Right after the copy, before any training, an old item scores exactly as before for a
session of old items whose content did not change.

Usage (a retrain; ``features`` a batch of the new training sessions)::

    vocab = old_model.vocab.grown(new_events, new_catalog)
    model, history = train_retrieval(new_events, validation, new_catalog, config, train_config, vocab=vocab,
                                     initial_weights=lambda model: copy_weights(old_model, model, features))
"""

from __future__ import annotations

import dataclasses

import numpy as np

from recommenders.models.towers import FIRST_ITEM_INDEX
from recsys_base.errors import ConfigError, ModelError

NEW_ITEM_INITS = ("category_mean", "zeros", "random")


def build_variables(model, features) -> None:
    """Creates every variable of a retrieval or ranking model (and restores deferred
    checkpoint values into them) by running its serving call and its loss on ``features``."""
    model(features)
    model.compute_loss(features, training=False)


def new_item_rows(old_rows: np.ndarray, initial_rows: np.ndarray, item_categories: list[str], new_item_init: str) -> np.ndarray:
    """The id-embedding rows of new items, ``[new items, dim]``.

    ``old_rows`` are the old items' rows ``[old items, dim]``, ``initial_rows`` the new
    items' initializer rows, ``item_categories`` the category of every item of the grown
    vocabulary (old items first).

    >>> old = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> new_item_rows(old, np.full((2, 2), 9.0), ["a", "b", "a", "a", "c"], "category_mean")
    array([[3., 4.],
           [0., 0.]])
    """
    if new_item_init not in NEW_ITEM_INITS:
        raise ConfigError(f"new_item_init must be one of {', '.join(NEW_ITEM_INITS)}, got {new_item_init!r}")
    if new_item_init == "random":
        return initial_rows
    rows = np.zeros_like(initial_rows)
    if new_item_init == "zeros":
        return rows
    n_old = len(old_rows)
    old_categories = np.asarray(item_categories[:n_old], dtype=object)
    for row, category in enumerate(item_categories[n_old:]):
        peers = old_categories == category
        if peers.any():
            rows[row] = old_rows[peers].mean(axis=0)
    return rows


def _architecture(config) -> dict:
    """``config``'s fields but those training fits on validation (``FITTED_FIELDS``)."""
    return {name: value for name, value in dataclasses.asdict(config).items() if name not in config.FITTED_FIELDS}


def copy_weights(source, target, features, new_item_init: str = "category_mean") -> None:
    """Copies ``source``'s weights into ``target``, a model of the same kind and config
    over grown vocabularies (see the module docstring); both are built on ``features``.

    Variables are paired in the order the model lists them (the same code builds both);
    one whose shape grew along its first axis gets the old rows first. ModelError when
    the two models do not pair up (a different config or kind).
    """
    if type(source) is not type(target) or _architecture(source.config) != _architecture(target.config):
        raise ModelError(f"cannot warm-start a {type(target).__name__} from a {type(source).__name__} with another config")
    build_variables(source, features)
    build_variables(target, features)
    if len(source.weights) != len(target.weights):
        raise ModelError(f"cannot warm-start: the old model has {len(source.weights)} variables, the new one {len(target.weights)}")
    item_tables = {id(member.item_encoder.id_embedding.embeddings) for member in target.members}
    # Neighbour tables (retrieval's fusion, the ranker's neighbour scores) are counted again
    # on the new training events (training.py), not grown.
    tables = [getattr(target, name, None) for name in ("fusion", "neighbour_scores")]
    recounted = {id(variable) for layer in tables if layer is not None for variable in (layer.columns, layer.weights_table)}
    for old, new in zip(source.weights, target.weights):
        if id(new) in recounted:
            continue
        value = old.numpy()
        if old.shape != new.shape:
            if old.shape[1:] != new.shape[1:] or old.shape[0] > new.shape[0]:
                raise ModelError(f"cannot warm-start {new.name}: shape {new.shape} does not grow {old.name} {old.shape}")
            grown = new.numpy()
            grown[: len(value)] = value
            if id(new) in item_tables:
                old_items = value[FIRST_ITEM_INDEX:]
                grown[len(value):] = new_item_rows(old_items, grown[len(value):], target.vocab.item_categories, new_item_init)
            value = grown
        new.assign(value)
