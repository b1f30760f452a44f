"""TensorBoard on a trained run, as its browser app gets it from TensorBoard's own server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.tensorboard_http import TensorBoardServer

RETRIEVAL_TRAIN_RUN = "retrieval/train"


@pytest.fixture(scope="module")
def board(trained_run_dir, tmp_path_factory):
    with TensorBoardServer(trained_run_dir / "logs", tmp_path_factory.mktemp("tensorboard")) as server:
        server.wait_for(lambda: {"retrieval/train", "retrieval/validation", "ranking/train", "ranking/validation"}
                        <= set(server.json("/data/runs")), "the four runs to load")
        yield server


def _projector_tensor(board, name: str) -> np.ndarray:
    info = {e["tensorName"]: e for e in board.json("/data/plugin/projector/info", run=RETRIEVAL_TRAIN_RUN)["embeddings"]}
    shape = [int(size) for size in info[name]["tensorShape"]]
    values = np.frombuffer(board.get("/data/plugin/projector/tensor", run=RETRIEVAL_TRAIN_RUN, name=name), np.float32)
    return values.reshape(shape)


def _projector_metadata(board, name: str) -> pd.DataFrame:
    text = board.get("/data/plugin/projector/metadata", run=RETRIEVAL_TRAIN_RUN, name=name).decode("utf-8")
    header, *rows = text.splitlines()
    return pd.DataFrame([row.split("\t") for row in rows], columns=header.split("\t"))


@pytest.mark.slow
def test_graph_scalars_and_projector_tabs_are_active(board):
    listing = board.wait_for(lambda: (plugins := board.json("/data/plugins_listing"))["projector"]["enabled"] and plugins,
                             "the projector to find its embeddings")
    assert listing["graphs"]["enabled"] and listing["scalars"]["enabled"]
    assert board.json("/data/plugin/graphs/info")[RETRIEVAL_TRAIN_RUN]["run_graph"]
    # The projector offers the labelled embeddings in the training run TensorBoard lists, under readable names.
    assert RETRIEVAL_TRAIN_RUN in board.json("/data/plugin/projector/runs")
    embeddings = board.json("/data/plugin/projector/info", run=RETRIEVAL_TRAIN_RUN)["embeddings"]
    assert {e["tensorName"] for e in embeddings} == {"item_embeddings", "item_id_embeddings"}


@pytest.mark.slow
def test_projector_labels_every_item_embedding_with_its_title_and_category(board, trained_run_dir, small_shop_dir):
    from recommenders.data.dataset import load_prepared
    from recommenders.models.training import load_trained

    catalog = load_prepared(small_shop_dir).catalog.set_index("item_id")
    model = load_trained(trained_run_dir / "retrieval")

    # One labelled row per item index: padding, unknown, then every catalog item.
    labels = _projector_metadata(board, "item_embeddings")
    assert list(labels.columns) == ["title", "category", "item_id"]
    assert labels["item_id"].tolist()[:2] == ["[padding]", "[unknown item]"]
    items = labels.iloc[2:]
    assert len(items) == len(catalog)
    assert items["title"].tolist() == catalog.loc[items["item_id"], "title"].tolist()
    assert items["category"].tolist() == catalog.loc[items["item_id"], "category"].tolist()
    # Row i of each tensor belongs to the item labelled on row i: what retrieval scores, and the id table.
    scored = model.item_encoder(np.array([items["item_id"].tolist()])).numpy()[0]
    np.testing.assert_allclose(_projector_tensor(board, "item_embeddings")[2:], scored, rtol=1e-5, atol=1e-6)
    assert _projector_metadata(board, "item_id_embeddings").equals(labels)
    np.testing.assert_array_equal(_projector_tensor(board, "item_id_embeddings"),
                                  model.item_encoder.id_embedding.embeddings.numpy())


@pytest.mark.slow
def test_no_scalar_series_only_holds_zeros_and_validation_metrics_stay_in_validation(board):
    tags = board.json("/data/plugin/scalars/tags")
    for run in ("retrieval/train", "retrieval/validation", "ranking/train", "ranking/validation"):
        for tag in tags[run]:
            values = [value for _, _, value in board.json("/data/plugin/scalars/scalars", run=run, tag=tag)]
            assert values and any(values), f"{run} {tag}: {values}"
    for part, metric in (("retrieval", "epoch_factorized_top_k/top_20_categorical_accuracy"), ("ranking", "epoch_click_auc")):
        assert metric in tags[f"{part}/validation"]
        assert metric not in tags[f"{part}/train"]
        assert "epoch_loss" in tags[f"{part}/train"]


@pytest.mark.slow
def test_retrieve_metrics_per_epoch_and_an_hparams_session_per_model(trained_run_dir):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(trained_run_dir / "logs"))
    multiplexer.Reload()
    # The mixed retrieve score of every epoch, next to Keras's own validation curves.
    validation_tags = multiplexer.Runs()["retrieval/validation"]["tensors"]
    assert {"epoch_HR@10", "epoch_MRR@10", "epoch_HR@20", "epoch_MRR@20"} <= set(validation_tags)
    assert len(multiplexer.Tensors("retrieval/validation", "epoch_MRR@20")) == 8  # TEST_RUN_CONFIG's epochs

    # One HParams session per model, in the tuner's format: config field names, kept-epoch metrics.
    sessions = multiplexer.PluginRunToTagToContent("hparams")
    assert {"retrieval", "ranking"} <= set(sessions)
    start = plugin_data_pb2.HParamsPluginData.FromString(sessions["retrieval"]["_hparams_/session_start_info"])
    values = {name: value.ListFields()[0][1] for name, value in start.session_start_info.hparams.items()}
    assert values["lstm_units"] == 64 and values["repeat_head"] is True and "xla" not in values
    assert {"val_HR@20", "val_MRR@20", "epochs"} <= set(multiplexer.Runs()["retrieval"]["tensors"])
