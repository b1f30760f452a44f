"""The recommend pool/blend fit: hand-computed grid values, and its promise on the shared trained run."""

from __future__ import annotations

import json

import numpy as np
import pytest

import recsys_base  # noqa: F401
from recommenders.data.dataset import load_prepared
from recommenders.evaluation.cases import make_next_item_cases
from recommenders.evaluation.harness import evaluate
from recommenders.models.blend import PoolScores, blended_scores, fit_blend
from recommenders.models.config import RecommendConfig
from recommenders.models.inference import SignatureRecommender
from recommenders.models.training import count_served_tables
from recsys.workflow import BLEND_FILE, TrainedModels

NEG = -np.inf


def _tiny_pool() -> PoolScores:
    """Three cases, k=1, columns: retrieved pool (best first) then one own-item column.

    A: target c is third by retrieval (.5 .3 .1), first by retrieval x ranking (.05 .06 .09).
    B: target a is first either way.
    C: the purchased item x outranks target t by retrieval; the filter removes x.
    """
    return PoolScores(
        retrieval=np.log([[0.5, 0.3, 0.1, 0.05], [0.6, 0.2, 0.1, 1.0], [0.5, 0.4, 1.0, 1.0]]) + [[0, 0, 0, 0], [0, 0, 0, NEG],
                                                                                             [0, 0, NEG, NEG]],
        ranking=np.array([[0.1, 0.2, 0.9, 0.8], [0.5, 0.5, 0.5, 0.5], [0.5, 0.1, 0.5, 0.5]]),
        pool_rank=np.array([[0, 1, 2, 4]] * 3),
        in_session=np.array([[False, False, False, True], [False] * 4, [True, False, False, False]]),
        blocked=np.array([[False] * 4, [False] * 4, [True, False, False, False]]),
        is_target=np.array([[False, False, True, False], [True, False, False, False], [False, True, False, False]]),
        pool_floor=np.array([0, 0, 0]),
    )


def test_fit_on_hand_computed_grid():
    fit = fit_blend(_tiny_pool(), pools=(2, 3), weights=(0.0, 1.0), k=1, significance=0.0)
    # retrieve: A misses (rank 2), B hits, C misses (x first): 1/3.
    assert fit.retrieve == pytest.approx({"HR@1": 1 / 3, "MRR@1": 1 / 3})
    hits = {(point["candidate_pool"], point["ranking_weight"]): point["HR@1"] for point in fit.grid}
    # Pool 2 leaves c out of A; weight 0 keeps c third; only pool 3 with weight 1 hits A. C hits
    # everywhere once x is filtered; B everywhere.
    assert hits == pytest.approx({(2, 0.0): 2 / 3, (2, 1.0): 2 / 3, (3, 0.0): 2 / 3, (3, 1.0): 1.0})
    assert (fit.candidate_pool, fit.ranking_weight) == (3, 1.0)
    assert fit.recommend == pytest.approx({"HR@1": 1.0, "MRR@1": 1.0})
    assert fit.config() == RecommendConfig(candidate_pool=3, ranking_weight=1.0)


def test_a_gain_within_the_noise_keeps_weight_zero():
    # Pool 3, weight 1 gains reciprocal ranks (1, 0, 0) over weight 0: mean 1/3, standard
    # error sqrt(2/9) / sqrt(3) = 0.27; one standard error passes it, two do not.
    assert fit_blend(_tiny_pool(), pools=(2, 3), weights=(0.0, 1.0), k=1, significance=1.0).ranking_weight == 1.0
    fit = fit_blend(_tiny_pool(), pools=(2, 3), weights=(0.0, 1.0), k=1, significance=2.0)
    assert (fit.candidate_pool, fit.ranking_weight) == (2, 0.0)
    assert fit.recommend == pytest.approx({"HR@1": 2 / 3, "MRR@1": 2 / 3})


def test_session_items_and_the_pool_floor_stay_in_any_pool():
    pool = _tiny_pool()
    scores = blended_scores(pool, candidate_pool=1, ranking_weight=0.0)
    # A: pool 1 keeps a and the own item d; C: x is in the session but blocked.
    assert np.isfinite(scores[0]).tolist() == [True, False, False, True]
    assert np.isfinite(scores[2]).tolist() == [False, False, False, False]
    pool.pool_floor = np.array([2, 0, 0])
    assert np.isfinite(blended_scores(pool, 1, 0.0)[0]).tolist() == [True, True, False, True]


def test_equal_grid_points_keep_weight_zero_and_the_smallest_pool():
    pool = _tiny_pool()
    pool.ranking = np.ones_like(pool.ranking)  # a ranker that tells nothing apart
    fit = fit_blend(pool, pools=(3, 2), weights=(1.0, 0.0), k=1)
    assert (fit.candidate_pool, fit.ranking_weight) == (2, 0.0)


def test_explicit_values_override_the_fit():
    fitted = RecommendConfig(candidate_pool=200, ranking_weight=0.3)
    assert RecommendConfig(ranking_weight=0.0).resolved(fitted) == RecommendConfig(candidate_pool=200, ranking_weight=0.0)
    assert RecommendConfig().resolved(None) == RecommendConfig(**RecommendConfig.UNFITTED)


@pytest.fixture(scope="module")
def validation_cases(small_shop_dir):
    return make_next_item_cases(load_prepared(small_shop_dir).validation)


def test_recommend_scores_at_least_retrieve_on_validation(trained_run_dir, small_shop_dir, validation_cases):
    """The fitted blend, run through the real signatures on every validation case."""
    models = TrainedModels(trained_run_dir)
    # The run serves tables recounted on train + validation after the fit; the fit saw the
    # training split's. Its bookkeeping is matched only if that is the order.
    train = load_prepared(small_shop_dir).train
    for model in (models.retrieval_model, models.ranking_model):
        count_served_tables(model, train)
    fit = json.loads((trained_run_dir / BLEND_FILE).read_text())
    assert fit["n_cases"] == len(validation_cases)
    assert (models.recommend.config.candidate_pool, models.recommend.config.ranking_weight) == (
        fit["candidate_pool"], fit["ranking_weight"])
    max_length = models.run_config.train.max_length
    report = evaluate({"retrieve": SignatureRecommender(models.retrieval.retrieve, max_length),
                       "recommend": SignatureRecommender(models.recommend.recommend, max_length)},
                      validation_cases, (20,), catalog_size=models.num_items)
    retrieve, recommend = (result.metrics for result in report.results)
    assert recommend["HR@20"] >= retrieve["HR@20"] and recommend["MRR@20"] >= retrieve["MRR@20"]
    # The fit's own bookkeeping agrees with the signatures (up to ties between equal scores).
    assert recommend["HR@20"] == pytest.approx(fit["recommend"]["HR@20"], abs=2e-3)
    assert retrieve["MRR@20"] == pytest.approx(fit["retrieve"]["MRR@20"], abs=2e-3)


def test_weight_zero_recommends_what_retrieve_does(trained_run_dir, validation_cases):
    models = TrainedModels(trained_run_dir, RecommendConfig(ranking_weight=0.0))
    # Purchases are filtered by recommend only: compare cases whose prefix has none.
    plain = validation_cases.take([i for i, types in enumerate(validation_cases.prefix_event_types)
                                   if "purchase" not in types][:500])
    max_length = models.run_config.train.max_length
    retrieved = SignatureRecommender(models.retrieval.retrieve, max_length).recommend(plain, 20)
    recommended = SignatureRecommender(models.recommend.recommend, max_length).recommend(plain, 20)
    assert (retrieved == recommended).mean() > 0.999  # equal scores may swap places
