"""Learning floors, export round trips and recommend-path behaviour of a trained small-shop run."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import recsys_base  # noqa: F401
from recommenders.data.dataset import load_prepared
from recommenders.evaluation.cases import make_next_item_cases
from recommenders.models.export import export_models
from recommenders.models.inference import session_inputs
from recsys.workflow import TrainedModels, evaluate_run, export_run
from recsys_base.errors import ModelError
from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.client.sessions import exclude_inputs

tf = tensorflow()


@pytest.fixture(scope="module")
def models(trained_run_dir):
    return TrainedModels(trained_run_dir)


@pytest.fixture(scope="module")
def evaluation(small_shop_dir, trained_run_dir):
    return evaluate_run(small_shop_dir, trained_run_dir, k_values=(10, 20))


@pytest.fixture(scope="module")
def test_cases(small_shop_dir):
    return make_next_item_cases(load_prepared(small_shop_dir).test)


def _metrics(report):
    return {result.name: result.metrics for result in report.results}


def test_retrieval_beats_popularity_by_far_and_markov_on_hit_rate(evaluation):
    metrics = _metrics(evaluation.overall)
    retrieval = metrics["retrieval (LSTM two-tower)"]
    assert retrieval["HR@20"] > 2.5 * metrics["popularity"]["HR@20"]
    assert retrieval["HR@20"] > metrics["markov-1"]["HR@20"] + 0.015


def test_recommend_path_improves_on_retrieval_and_markov(evaluation):
    metrics = _metrics(evaluation.overall)
    recommend = metrics["recommend (retrieve+rank)"]
    assert recommend["HR@20"] >= metrics["retrieval (LSTM two-tower)"]["HR@20"]
    assert recommend["HR@20"] > metrics["markov-1"]["HR@20"] + 0.03


def test_ranking_auc_is_well_above_chance_for_every_task(trained_run_dir):
    ranking = json.loads((trained_run_dir / "validation_metrics.json").read_text())["ranking"]
    for task in ("click", "cart", "purchase"):
        assert ranking[f"val_{task}_auc"] > 0.7, task


def _searched_right_before_target(events, cases):
    """Indices of cases whose target is the first item event after a search."""
    ordered = events.sort_values(["session_id", "timestamp"], kind="stable")
    after_search = ordered["event_type"].shift().eq("search") & ordered["session_id"].shift().eq(ordered["session_id"])
    items = ordered[ordered["event_type"] != "search"].assign(after_search=after_search)
    items["position"] = items.groupby("session_id").cumcount()
    wanted = set(zip(items.loc[items["after_search"], "session_id"], items.loc[items["after_search"], "position"]))
    return np.array([i for i, (session, prefix) in enumerate(zip(cases.session_ids, cases.prefix_item_ids))
                     if (session, len(prefix)) in wanted])


def test_personalized_search_uses_the_query(models, small_shop_dir, test_cases):
    """Right after a search, the query (words of the wanted item's title) must sharpen the results."""
    searched = test_cases.take(_searched_right_before_target(load_prepared(small_shop_dir).test, test_cases))
    assert len(searched) > 50

    def hit_rate(cases):
        found = models.recommend.recommend(**_request(cases, 10))[contract.ITEM_IDS].numpy().astype(str)
        return np.mean([t in row for t, row in zip(cases.targets, found)])

    without_query = dataclasses.replace(searched, queries=np.full(len(searched), "", dtype=object))
    assert hit_rate(searched) > hit_rate(without_query) + 0.05


def _request(cases, k, exclude=None):
    inputs = session_inputs(cases, 20)
    inputs[contract.K] = np.full(len(cases), k, np.int32)
    inputs.update(exclude_inputs(exclude or [[]] * len(cases)))
    return {name: tf.constant(values.astype(str) if values.dtype == object else values) for name, values in inputs.items()}


def test_excluded_and_purchased_items_are_never_recommended(models, test_cases):
    cases = test_cases.take(np.arange(40))
    first = models.recommend.recommend(**_request(cases, 10))[contract.ITEM_IDS].numpy().astype(str)
    exclude = [list(row[:3]) for row in first]
    again = models.recommend.recommend(**_request(cases, 10, exclude))[contract.ITEM_IDS].numpy().astype(str)
    for row, banned in enumerate(exclude):
        assert not set(banned) & set(again[row])
        assert list(again[row][:7]) != list(first[row][:7]) or not banned
        purchased = {i for i, t in zip(cases.prefix_item_ids[row], cases.prefix_event_types[row]) if t == "purchase"}
        assert not purchased & set(again[row])


def test_a_long_session_is_answered_as_its_last_max_length_events(models, test_cases):
    """The signatures keep the last TrainConfig.max_length events in the graph, so a huge session costs what a normal one does."""
    from serving.client.sessions import session_inputs as request_inputs

    max_length = models.run_config.train.max_length
    row = int(np.argmax([len(prefix) for prefix in test_cases.prefix_item_ids]))
    prefix = list(zip(test_cases.prefix_item_ids[row], test_cases.prefix_event_types[row], (int(t) for t in test_cases.prefix_timestamps[row])))
    filler = [(models.retrieval_model.vocab.item_ids[0], "view", 1_600_000_000)] * 3000
    answers = []
    for session in (filler + prefix, (filler + prefix)[-max_length:]):
        inputs = {**request_inputs([session], [None], [None]), contract.K: np.array([10], np.int32), **exclude_inputs([None])}
        tensors = {name: tf.constant(values.astype(str) if values.dtype == object else values) for name, values in inputs.items()}
        answers.append(models.recommend.recommend(**tensors))
    assert answers[0][contract.ITEM_IDS].numpy().tolist() == answers[1][contract.ITEM_IDS].numpy().tolist()
    np.testing.assert_allclose(answers[0][contract.SCORES].numpy(), answers[1][contract.SCORES].numpy(), rtol=1e-5)


def test_per_row_k_blanks_the_tail(models, test_cases):
    request = _request(test_cases.take([0, 1]), 5)
    request[contract.K] = tf.constant([2, 5], tf.int32)
    out = models.retrieval.retrieve(**{k: v for k, v in request.items() if k in contract.INPUTS[contract.RETRIEVAL_MODEL]})
    ids, scores = out[contract.ITEM_IDS].numpy().astype(str), out[contract.SCORES].numpy()
    assert (ids[0, 2:] == "").all() and np.isneginf(scores[0, 2:]).all()
    assert (ids[1] != "").all()


@pytest.mark.parametrize("k, message", [(0, "k must be at least 1"), (10**6, "k must be at most")])
def test_k_out_of_range_is_an_invalid_argument_naming_k(models, test_cases, k, message):
    request = _request(test_cases.take([0]), 1)
    request[contract.K] = tf.constant([k], tf.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        models.recommend.recommend(**request)


@pytest.fixture(scope="module")
def exported(trained_run_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models")
    return base, export_run(trained_run_dir, base)


def test_export_is_atomic_and_versions_are_immutable(exported, models):
    base, paths = exported
    assert {name: path.name for name, path in paths.items()} == dict.fromkeys(contract.MODELS, "1")
    assert not list(base.rglob(".tmp-*"))
    with pytest.raises(ModelError, match="already exist"):
        export_models(models.retrieval_model, models.ranking_model, base, version=1)
    assert not list(base.rglob(".tmp-*"))


def test_export_writes_all_three_versions_or_none(exported, models):
    base, _ = exported
    (base / contract.RANKING_MODEL / "2").mkdir()
    with pytest.raises(ModelError, match=r"ranking/2 already exist\(s\): .*the next free version is 3"):
        export_models(models.retrieval_model, models.ranking_model, base, version=2)
    assert [m for m in contract.MODELS if (base / m / "2").exists()] == [contract.RANKING_MODEL]
    assert not list(base.rglob(".tmp-*"))


def test_saved_model_cli_shows_named_signatures(exported):
    _, paths = exported
    cli = Path(sys.executable).parent / "saved_model_cli"
    shown = subprocess.run([str(cli), "show", "--dir", str(paths["recommend"]), "--all"],
                           capture_output=True, text=True, check=True).stdout
    assert "signature_def['recommend']" in shown and "signature_def['serving_default']" in shown
    for name in contract.INPUTS[contract.RECOMMEND_MODEL]:
        assert f"inputs['{name}']" in shown
    for name in contract.OUTPUTS[contract.RECOMMEND_MODEL]:
        assert f"outputs['{name}']" in shown
    assert "output_1" not in shown


@pytest.mark.parametrize("model_name", contract.MODELS)
def test_tf1_savedmodelbundle_path_gives_identical_scores(exported, models, test_cases, model_name):
    """Load as TF Serving does (v1 loader, tag 'serve', signature by name) and compare."""
    _, paths = exported
    cases = test_cases.take(np.arange(16))
    request = _request(cases, 10)
    if model_name == contract.RANKING_MODEL:
        request.pop(contract.K), request.pop(contract.EXCLUDE_ITEM_IDS), request.pop(contract.EXCLUDE_LENGTH)
        request[contract.CANDIDATE_ITEM_IDS] = tf.constant(np.array([models.retrieval_model.vocab.item_ids[:7]] * 16))
        in_process = models.ranking.rank(**request)
    elif model_name == contract.RETRIEVAL_MODEL:
        request.pop(contract.EXCLUDE_ITEM_IDS), request.pop(contract.EXCLUDE_LENGTH)
        in_process = models.retrieval.retrieve(**request)
    else:
        in_process = models.recommend.recommend(**request)

    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(paths[model_name]))
        signature = meta_graph.signature_def[contract.SIGNATURES[model_name]]
        feed = {graph.get_tensor_by_name(signature.inputs[name].name): value.numpy() for name, value in request.items()}
        fetch = {name: graph.get_tensor_by_name(info.name) for name, info in signature.outputs.items()}
        served = session.run(fetch, feed_dict=feed)
    assert set(served) == set(contract.OUTPUTS[model_name])
    for name, value in served.items():
        expected = in_process[name].numpy()
        if value.dtype == object:
            np.testing.assert_array_equal(value, expected)
        else:
            np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)


def test_warmup_requests_and_metadata_travel_with_each_version(exported):
    from serving.contract.warmup import read_warmup_requests

    _, paths = exported
    for name, path in paths.items():
        records = read_warmup_requests(path)
        assert len(records) == 1 and records[0].predict_log.request.model_spec.name == name
        assert json.loads((path / "assets.extra" / "recsys_model.json").read_text())["model"] == name


def test_exported_models_hold_the_neighbour_tables_and_only_stock_ops(exported, models):
    """Fusion travels inside the SavedModel as variables, and every op is a core TensorFlow op,
    so a stock ``tensorflow_model_server`` (which has no custom ops) loads it."""
    from tensorflow.core.protobuf import saved_model_pb2

    _, paths = exported
    assert models.retrieval_model.fusion is not None, "fusion is on by default"
    assert models.ranking_model.neighbour_scores is not None, "neighbour features are on by default"
    for name, path in paths.items():
        saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
        graph = saved.meta_graphs[0].graph_def
        ops = {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}
        functions = {f.signature.name for f in graph.library.function}
        not_stock = {op for op in ops - functions if not hasattr(tf.raw_ops, op)}
        assert not not_stock, f"{name} uses ops outside TensorFlow core: {sorted(not_stock)}"
        variables = " ".join(node.attr["shared_name"].s.decode() for node in graph.node if node.op == "VarHandleOp")
        # Retrieval's fusion and the ranker's neighbour features (recommend holds both).
        assert "neighbour_columns" in variables and "neighbour_weights" in variables, variables


def test_served_neighbour_tables_count_train_and_validation_with_the_chosen_recency(models, small_shop_dir,
                                                                                     trained_run_dir):
    """The fusion gate and the recommend blend are fitted on validation with tables of the
    training split; after that the run's tables are recounted on train + validation, the
    retrieval's with the half-life validation chose (the ranker's without decay)."""
    import pandas as pd

    from recommenders.features.neighbours import ItemNeighbours
    from recommenders.models.config import RetrievalConfig
    from recommenders.models.towers import FIRST_ITEM_INDEX

    data = load_prepared(small_shop_dir)
    (half_life,) = models.retrieval_model.config.neighbour_half_lives
    fusion_fit = json.loads((trained_run_dir / "validation_metrics.json").read_text())["fusion"]
    assert fusion_fit["half_life"] == half_life
    assert set(map(float, fusion_fit["validation HR@20 + MRR@20 by half-life, table scale and popularity weight"])) == set(
        RetrievalConfig().neighbour_half_lives)
    specs = models.retrieval_model.config.neighbour_specs()
    assert models.ranking_model.config.neighbour_specs() == specs
    # Retrieval's rows are in neighbour order, the ranker's sorted by column: compare sorted rows.
    served = {"retrieval": (models.retrieval_model.fusion.weights_table.numpy(), half_life),
              "ranking": (models.ranking_model.neighbour_scores.weights_table.numpy().transpose(1, 0, 2), 0.0)}
    for model, (table, recency) in served.items():
        table = np.sort(table[:, FIRST_ITEM_INDEX:], axis=-1)
        for events, should_match in ((pd.concat([data.train, data.validation]), True), (data.train, False)):
            tables = ItemNeighbours.build(events, models.retrieval_model.vocab.item_ids, specs, recency).tables
            counted = np.sort(np.stack([tables[spec.name].weights for spec in specs]), axis=-1)
            assert np.allclose(table, counted) is should_match, model
    # The popularity shift is counted with the retrieval tables: recounted with them, or 0 without recency.
    assert fusion_fit["popularity_weight"] == pytest.approx(float(models.retrieval_model.fusion.popularity_weight.numpy()))
    seen = pd.concat([data.train, data.validation])
    shift = ItemNeighbours.build(seen, models.retrieval_model.vocab.item_ids, specs, half_life).popularity_shift
    expected = np.zeros(models.retrieval_model.vocab.num_items) if shift is None else shift
    assert models.retrieval_model.fusion.popularity_shift.numpy() == pytest.approx(expected)
