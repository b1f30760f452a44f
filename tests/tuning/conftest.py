"""A tiny prepared shop and a tiny search space, so that a tuning trial takes seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import recommenders  # noqa: F401  (selects Keras 2 before anything imports TensorFlow)

# Everything fixed at tiny sizes; only the learning rate varies, from useless to good,
# so the search has a known worst trial.
TINY = {"embedding_dim": 8, "output_dim": 8, "feature_dim": 4, "lstm_units": 8, "lstm_layers": 1, "dropout": 0.0,
        "l2": 0.0, "l2_normalize": False, "optimizer": "adam", "batch_size": 128, "temperature": 0.1,
        "extra_negatives": 64, "max_title_tokens": 4}
LEARNING_RATES = [1e-6, 0.01, 0.003]


@pytest.fixture(scope="session")
def tiny_shop(tmp_path_factory):
    """``(PreparedData, its directory)`` of a 1,500-session synthetic shop."""
    from recommenders.data.dataset import prepare, save_prepared
    from recommenders.data.synthetic import SyntheticShopConfig, generate_shop

    prepared = prepare(generate_shop(SyntheticShopConfig.small(n_sessions=1_500)), source="tiny shop")
    return prepared, save_prepared(prepared, tmp_path_factory.mktemp("tuning") / "shop")


@pytest.fixture(scope="session")
def tiny_space_file(tmp_path_factory) -> Path:
    """A space file fixing the retrieval entries to tiny sizes; the learning rate is searched."""
    section = dict(TINY, learning_rate=LEARNING_RATES)
    path = tmp_path_factory.mktemp("space") / "tiny_space.json"
    path.write_text(json.dumps({"retrieval": section}))
    return path
