import math

import numpy as np
import pytest

from recommenders.evaluation import metrics

RANKED = np.array([["a", "b", "c"], ["d", "e", "f"], ["g", "h", "i"], ["j", "k", "l"]], dtype=object)
TARGETS = np.array(["a", "f", "x", "k"], dtype=object)


@pytest.fixture
def ranks():
    return metrics.target_ranks(RANKED, TARGETS)


def test_target_ranks_are_one_based_and_zero_when_missing(ranks):
    assert ranks.tolist() == [1, 3, 0, 2]


def test_repeated_id_counts_at_its_first_position():
    ranked = np.array([["a", "b", "b"]], dtype=object)
    assert metrics.target_ranks(ranked, np.array(["b"], dtype=object)).tolist() == [2]


def test_hit_rate_by_hand(ranks):
    assert [metrics.hit_rate(ranks, k) for k in (1, 2, 3)] == [0.25, 0.5, 0.75]


def test_mrr_by_hand(ranks):
    assert metrics.mrr(ranks, 2) == pytest.approx((1 + 0.5) / 4)
    assert metrics.mrr(ranks, 3) == pytest.approx((1 + 1 / 3 + 0.5) / 4)


def test_ndcg_by_hand(ranks):
    assert metrics.ndcg(ranks, 1) == pytest.approx(0.25)
    assert metrics.ndcg(ranks, 3) == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(3)) / 4)


def test_coverage_counts_distinct_items_in_the_top_k():
    assert metrics.coverage(RANKED, 1, catalog_size=10) == pytest.approx(0.4)
    assert metrics.coverage(RANKED, 3, catalog_size=20) == pytest.approx(0.6)
    padded = np.array([["a", ""], ["a", "b"]], dtype=object)
    assert metrics.coverage(padded, 2, catalog_size=4) == pytest.approx(0.5)


def test_no_cases_score_zero():
    empty = np.zeros(0, dtype=np.int64)
    assert (metrics.hit_rate(empty, 20), metrics.mrr(empty, 20), metrics.ndcg(empty, 20)) == (0.0, 0.0, 0.0)


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="do not match 3 targets"):
        metrics.target_ranks(RANKED, np.array(["a", "b", "c"], dtype=object))
