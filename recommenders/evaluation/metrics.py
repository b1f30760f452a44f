"""Top-K metrics for next-item prediction with one target per case.

Everything starts from :func:`target_ranks`: the 1-based position of each case's target
in its ranked list (0 when absent), so each metric is one line over that array and a
table at K = 5, 10, 20 ranks the lists once.

Example:

>>> import numpy as np
>>> ranked = np.array([["a", "b"], ["c", "d"]], dtype=object)
>>> ranks = target_ranks(ranked, np.array(["b", "x"], dtype=object))
>>> ranks.tolist(), hit_rate(ranks, 2), mrr(ranks, 2)
([2, 0], 0.5, 0.25)
"""

from __future__ import annotations

import numpy as np


def target_ranks(recommendations: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Returns the 1-based rank of each target in its row of ``recommendations``, 0 if absent.

    ``recommendations`` is ``[n_cases, k]``; an id repeated in a row counts at its first position.
    """
    recommendations = np.asarray(recommendations)
    targets = np.asarray(targets)
    if recommendations.ndim != 2 or recommendations.shape[0] != targets.shape[0]:
        raise ValueError(f"recommendations of shape {recommendations.shape} do not match {targets.shape[0]} targets")
    hits = recommendations == targets[:, None]
    return np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)


def _within(ranks: np.ndarray, k: int) -> np.ndarray:
    return (ranks > 0) & (ranks <= k)


def hit_rate(ranks: np.ndarray, k: int) -> float:
    """HR@K: share of cases whose target is in the top ``k`` (= Recall@K with one target)."""
    return float(np.mean(_within(ranks, k))) if len(ranks) else 0.0


def mrr(ranks: np.ndarray, k: int) -> float:
    """MRR@K: mean of 1/rank of the target when it is in the top ``k``, else 0."""
    if not len(ranks):
        return 0.0
    return float(np.mean(np.where(_within(ranks, k), 1.0 / np.maximum(ranks, 1), 0.0)))


def ndcg(ranks: np.ndarray, k: int) -> float:
    """NDCG@K with one relevant item: mean of 1/log2(rank + 1) within the top ``k``, else 0."""
    if not len(ranks):
        return 0.0
    return float(np.mean(np.where(_within(ranks, k), 1.0 / np.log2(np.maximum(ranks, 1) + 1.0), 0.0)))


def coverage(recommendations: np.ndarray, k: int, catalog_size: int) -> float:
    """Catalog coverage@K: share of the catalog appearing in at least one top-``k`` list.

    Padding ids (``""``) are not items and are not counted.
    """
    if catalog_size <= 0:
        raise ValueError(f"catalog_size must be positive, got {catalog_size}")
    shown = np.unique(np.asarray(recommendations)[:, :k])
    return float(np.count_nonzero(shown != "")) / catalog_size
