"""Runs several recommenders on the same next-item cases and collects comparable metrics.

Example (``test_cases`` from :func:`~.cases.make_next_item_cases` on held-out sessions)::

    from recommenders.evaluation.baselines import MarkovChain, Popularity
    report = evaluate({"popularity": Popularity(), "markov": MarkovChain()}, test_cases,
                      train_events=train_events, catalog=catalog)
    print(report.format_table())
    report.to_json("runs/evaluation.json")
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recommenders.evaluation import metrics
from recommenders.evaluation.cases import NextItemCases
from recommenders.evaluation.protocol import Recommender
from recommenders.evaluation.report import EvaluationReport, ModelResult, metric_key
from recsys_base.errors import ConfigError, DataError, ModelError


def _check_k_values(k_values: Sequence[int], catalog_size: int) -> tuple[int, ...]:
    k_values = tuple(sorted(set(k_values)))
    if not k_values:
        raise ConfigError("k_values is empty; give at least one cut-off such as 20")
    if any(not isinstance(k, (int, np.integer)) or not 1 <= k <= catalog_size for k in k_values):
        raise ConfigError(f"every k must be an integer from 1 to the catalog size {catalog_size}, got {list(k_values)}")
    return tuple(int(k) for k in k_values)


def _recommend(name: str, model: Recommender, cases: NextItemCases, k: int, batch_size: int,
               show_progress: bool) -> np.ndarray:
    batches = []
    with tqdm(total=len(cases), desc=f"{name}: recommend", unit="case", leave=False, disable=not show_progress) as progress:
        for start in range(0, len(cases), batch_size):
            batch = cases.take(np.arange(start, min(start + batch_size, len(cases))))
            ranked = np.asarray(model.recommend(batch, k))
            if ranked.shape != (len(batch), k):
                raise ModelError(f"{name}.recommend returned shape {ranked.shape} for {len(batch)} cases at k={k}")
            batches.append(ranked)
            progress.update(len(batch))
    return np.concatenate(batches)


def score(recommendations: np.ndarray, targets: np.ndarray, k_values: Sequence[int], catalog_size: int) -> dict:
    """HR, MRR, NDCG and coverage at every ``k`` from one ``[n, max(k_values)]`` ranking."""
    ranks = metrics.target_ranks(recommendations, targets)
    values = {}
    for k in k_values:
        values[metric_key("HR", k)] = metrics.hit_rate(ranks, k)
        values[metric_key("MRR", k)] = metrics.mrr(ranks, k)
        values[metric_key("NDCG", k)] = metrics.ndcg(ranks, k)
        values[metric_key("Coverage", k)] = metrics.coverage(recommendations, k, catalog_size)
    return values


def evaluate(
    recommenders: Mapping[str, Recommender],
    cases: NextItemCases,
    k_values: Sequence[int] = (5, 10, 20),
    catalog_size: int | None = None,
    *,
    train_events: pd.DataFrame | None = None,
    catalog: pd.DataFrame | None = None,
    batch_size: int = 2048,
    show_progress: bool = True,
) -> EvaluationReport:
    """Fits (when training data is given) and scores every recommender on ``cases``.

    With ``train_events`` and ``catalog`` each model is fitted first and its fit time
    recorded; without them the models must already be trained (fit time is ``None``)
    and ``catalog_size`` must be given. Each model ranks ``max(k_values)`` items per case,
    ``batch_size`` cases per call; ``show_progress`` False silences the progress bars (for
    scoring inside a training loop).
    """
    if (train_events is None) != (catalog is None):
        raise ConfigError("give both train_events and catalog to fit the models, or neither to use them as trained")
    if catalog_size is None:
        if catalog is None:
            raise ConfigError("catalog_size is required when no catalog is given")
        catalog_size = int(catalog["item_id"].nunique())
    if not recommenders:
        raise ConfigError("no recommenders to evaluate")
    if not len(cases):
        raise DataError("there are no test cases to evaluate on")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    k_values = _check_k_values(k_values, catalog_size)

    results = []
    for name, model in tqdm(recommenders.items(), desc="models", unit="model", disable=not show_progress):
        fit_seconds = None
        if train_events is not None:
            started = time.perf_counter()
            model.fit(train_events, catalog)
            fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        ranked = _recommend(name, model, cases, max(k_values), batch_size, show_progress)
        recommend_seconds = time.perf_counter() - started
        values = score(ranked, cases.targets, k_values, catalog_size)
        results.append(ModelResult(name, values, fit_seconds, recommend_seconds))
    return EvaluationReport(k_values=k_values, n_cases=len(cases), catalog_size=catalog_size, results=results)
