"""Choosing the recommend path's pool size and blend weight on validation data.

``recommend`` reorders a retrieved pool by ``retrieval log-probability + ranking_weight *
log(ranking score)``. Which weight and pool help depends on the data (on the synthetic
shop a fixed blend raised HR@20 and cost MRR@20), so they are fitted after training, on
the validation split's next-item cases, over a small grid.

One pass of the models serves the whole grid: the largest pool is retrieved and ranked
once per case (:meth:`RecommendModule.pool`, the code ``recommend`` runs), and every smaller
pool and every weight is re-blended from those scores in NumPy, exactly as ``recommend``
would rank them (a candidate's ranking score does not depend on the rest of the pool).

The fit keeps the grid point with the best MRR@K among those whose HR@K and MRR@K are both
at least ``retrieve``'s on the same cases. Weight 0 is ``retrieve``'s own ranking (the
filters of purchased and excluded items aside), so such a point exists whenever those
filters do not remove a target, and ``recommend`` does not score below ``retrieve`` on
validation by construction. Ties go to the smaller weight, then the smaller pool (less work).
A weight above 0 must also beat weight 0's MRR@K by ``significance`` paired standard
errors over the cases: a gain within the noise of the validation sample would as likely be
a loss on test, and weight 0 skips the ranker (``retrieve``'s latency).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from recommenders.evaluation.cases import NextItemCases
from recommenders.models.config import RecommendConfig
from recommenders.models.inference import session_inputs
from recommenders.models.serving_modules import RecommendModule
from recsys_base.errors import DataError
from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.contract.specs import input_signature

tf = tensorflow()

POOLS = (20, 50, 100, 200)
RANKING_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
FIT_K = 20  # the cut-off of the README's tables and of the evaluation's largest k
MAX_FIT_CASES = 20_000  # a random sample of validation cases beyond this: enough to tell grid points apart


@dataclasses.dataclass
class PoolScores:
    """The recommend path's candidates of each case before blending, as arrays [N, C].

    ``retrieval`` is ``-inf`` where a column holds no candidate; ``pool_rank`` is a
    retrieved candidate's position in the pool (retrieval order) and ``C`` for the
    session's own items appended after it; ``pool_floor`` [N] is each row's smallest pool.
    """

    retrieval: np.ndarray
    ranking: np.ndarray
    pool_rank: np.ndarray
    in_session: np.ndarray
    blocked: np.ndarray
    is_target: np.ndarray
    pool_floor: np.ndarray


def target_ranks(scores: np.ndarray, is_target: np.ndarray) -> np.ndarray:
    """0-based rank of each row's target among its finite ``scores``; ``inf`` when it has none.

    >>> target_ranks(np.array([[0.5, 0.9, -np.inf], [0.1, 0.2, 0.3]]), np.array([[True, False, False], [False, False, False]]))
    array([ 1., inf])
    """
    target = np.where(is_target & np.isfinite(scores), scores, -np.inf).max(axis=1)
    ranks = (scores > target[:, np.newaxis]).sum(axis=1).astype(float)
    return np.where(np.isfinite(target), ranks, np.inf)


def reciprocal_ranks(ranks: np.ndarray, k: int) -> np.ndarray:
    """1 / (rank + 1) of 0-based target ranks within ``k``, else 0 (``inf``: not found)."""
    return np.where(ranks < k, 1.0 / (ranks + 1.0), 0.0)


def hit_and_mrr(ranks: np.ndarray, k: int) -> tuple[float, float]:
    """HR@k and MRR@k of 0-based target ranks (``inf``: not found)."""
    return float((ranks < k).mean()), float(reciprocal_ranks(ranks, k).mean())


def blended_scores(pool: PoolScores, candidate_pool: int, ranking_weight: float) -> np.ndarray:
    """What ``recommend`` ranks by with this pool and weight: ``-inf`` outside the row's pool or blocked."""
    row_pool = np.maximum(candidate_pool, pool.pool_floor)[:, np.newaxis]
    member = ((pool.pool_rank < row_pool) | pool.in_session) & np.isfinite(pool.retrieval) & ~pool.blocked
    with np.errstate(divide="ignore"):
        score = pool.retrieval + ranking_weight * np.log(pool.ranking + 1e-7)
    return np.where(member, score, -np.inf)


@dataclasses.dataclass
class BlendFit:
    """The chosen pool and weight, ``retrieve``'s and every grid point's validation HR@K / MRR@K."""

    candidate_pool: int
    ranking_weight: float
    k: int
    n_cases: int
    retrieve: dict
    recommend: dict
    grid: list

    def config(self) -> RecommendConfig:
        return RecommendConfig(candidate_pool=self.candidate_pool, ranking_weight=self.ranking_weight).validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> BlendFit:
        return cls(**values)


def fit_blend(pool: PoolScores, pools=POOLS, weights=RANKING_WEIGHTS, k: int = FIT_K, significance: float = 2.0) -> BlendFit:
    """The grid point with the best MRR@k whose HR@k and MRR@k are at least ``retrieve``'s.

    A point with a weight above 0 must beat the best weight-0 point's MRR@k by
    ``significance`` paired standard errors of the per-case reciprocal ranks, else that
    weight-0 point is kept.

    ``retrieve`` ranks by retrieval log-probability alone with no filter; its top ``k``
    lies inside any pool of at least ``k`` items, so it is scored from the same arrays.
    When no grid point qualifies (only when filters remove targets), weight 0 with the
    smallest pool is kept: ``retrieve``'s ranking.

    A hand-checkable case: the target (column 1) is second by retrieval, first once the
    ranker counts; weight 1 lifts it to rank 0 and the pool of 1 leaves it out.

    >>> pool = PoolScores(retrieval=np.log([[0.6, 0.4]]), ranking=np.array([[0.1, 0.9]]),
    ...     pool_rank=np.array([[0, 1]]), in_session=np.zeros((1, 2), bool), blocked=np.zeros((1, 2), bool),
    ...     is_target=np.array([[False, True]]), pool_floor=np.array([0]))
    >>> fit = fit_blend(pool, pools=(1, 2), weights=(0.0, 1.0), k=1, significance=0.0)
    >>> fit.candidate_pool, fit.ranking_weight, fit.retrieve, fit.recommend
    (2, 1.0, {'HR@1': 0.0, 'MRR@1': 0.0}, {'HR@1': 1.0, 'MRR@1': 1.0})
    """
    if not len(pool.retrieval):
        raise DataError("no validation cases to fit the recommend blend on")
    hr_key, mrr_key = f"HR@{k}", f"MRR@{k}"
    unfiltered = np.where(np.isfinite(pool.retrieval), pool.retrieval, -np.inf)
    retrieve = dict(zip((hr_key, mrr_key), hit_and_mrr(target_ranks(unfiltered, pool.is_target), k)))
    grid, per_case = [], {}
    for candidate_pool in sorted(pools):
        for weight in sorted(weights):
            ranks = target_ranks(blended_scores(pool, candidate_pool, weight), pool.is_target)
            per_case[candidate_pool, weight] = reciprocal_ranks(ranks, k)
            hit, mrr = hit_and_mrr(ranks, k)
            grid.append({"candidate_pool": candidate_pool, "ranking_weight": weight, hr_key: hit, mrr_key: mrr})
    qualifying = [point for point in grid if point[hr_key] >= retrieve[hr_key] and point[mrr_key] >= retrieve[mrr_key]]

    def best_of(points):  # strictly better MRR wins; of equals the smaller weight, then the smaller pool
        return max(points, key=lambda point: (point[mrr_key], -point["ranking_weight"], -point["candidate_pool"]),
                   default=None)

    best = best_of(qualifying)
    unranked = best_of([point for point in qualifying if point["ranking_weight"] == 0])
    if best is not None and unranked is not None and best is not unranked:
        gain = per_case[best["candidate_pool"], best["ranking_weight"]] - per_case[
            unranked["candidate_pool"], unranked["ranking_weight"]]
        if gain.mean() <= significance * gain.std() / np.sqrt(len(gain)):
            best = unranked
    if best is None:
        best = min(grid, key=lambda point: (point["ranking_weight"], point["candidate_pool"]))
    return BlendFit(candidate_pool=best["candidate_pool"], ranking_weight=best["ranking_weight"], k=k,
                    n_cases=len(pool.retrieval), retrieve=retrieve,
                    recommend={hr_key: best[hr_key], mrr_key: best[mrr_key]}, grid=grid)


def pool_scores(module: RecommendModule, cases: NextItemCases, candidate_pool: int, k: int = FIT_K,
                batch_size: int = 512) -> PoolScores:
    """Runs ``module``'s recommend path up to the blend on every case, with a pool of ``candidate_pool``."""

    @tf.function(input_signature=input_signature(contract.RECOMMEND_MODEL))
    def scored(*inputs):
        pool, _ = module.checked_pool(candidate_pool, *inputs)
        return pool

    parts = []
    for start in range(0, len(cases), batch_size):
        batch = cases.take(np.arange(start, min(start + batch_size, len(cases))))
        inputs = session_inputs(batch, module.retrieval.max_session_events)
        inputs[contract.K] = np.full(len(batch), k, np.int32)
        inputs[contract.EXCLUDE_ITEM_IDS] = np.full((len(batch), 1), "")
        inputs[contract.EXCLUDE_LENGTH] = np.zeros(len(batch), np.int32)
        ordered = [inputs[spec.name] for spec in input_signature(contract.RECOMMEND_MODEL)]
        out = {name: value.numpy() for name, value in scored(*[
            tf.constant(value.astype(str) if value.dtype == object else value) for value in ordered]).items()}
        width = out["candidates"].shape[1]
        retrieved = width - inputs[contract.SESSION_ITEM_IDS].shape[1]
        targets = np.array([target.encode() for target in batch.targets], dtype=object)
        parts.append({
            "retrieval": out["retrieval"], "ranking": out["ranking"], "in_session": out["in_session"],
            "blocked": out["blocked"], "pool_floor": out["pool_floor"],
            "pool_rank": np.broadcast_to(np.r_[np.arange(retrieved), np.full(width - retrieved, width)], (len(batch), width)),
            "is_target": out["candidates"] == targets[:, np.newaxis],
        })
    fields = {}
    for field in dataclasses.fields(PoolScores):
        arrays = [part[field.name] for part in parts]
        if arrays[0].ndim == 2:  # batches differ in width (their longest session): pad with empty columns
            width = max(array.shape[1] for array in arrays)
            fill = {"retrieval": -np.inf, "pool_rank": width}.get(field.name, 0)
            arrays = [np.pad(array, ((0, 0), (0, width - array.shape[1])), constant_values=fill) for array in arrays]
        fields[field.name] = np.concatenate(arrays)
    return PoolScores(**fields)


def fit_recommend(module: RecommendModule, cases: NextItemCases, explicit: RecommendConfig | None = None,
                  max_cases: int = MAX_FIT_CASES, seed: int = 0) -> BlendFit:
    """Fits the pool and weight on ``cases`` (validation); a value set in ``explicit`` is kept, not fitted."""
    explicit = explicit or RecommendConfig()
    cases = cases.subset(max_cases, seed)
    pools = (explicit.candidate_pool,) if explicit.candidate_pool is not None else POOLS
    weights = (explicit.ranking_weight,) if explicit.ranking_weight is not None else RANKING_WEIGHTS
    return fit_blend(pool_scores(module, cases, max(pools)), pools, weights)
