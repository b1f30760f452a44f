"""Do cheap trials rank configurations as full trainings would? The multi-fidelity check.

Trials that train on the latest N training sessions and score a subsample of validation
cases (``TuningConfig.train_sessions``, ``max_validation_cases``) cost a fraction of a
full training, but only pay off if they order configurations the way full-data training
does. :func:`fidelity_study` trains a handful of configurations at each subsample size
and on every training session, scores them all on the same validation cases, and reports
Spearman's rank correlation between each size's scores and the full-data scores;
:func:`smallest_faithful_size` picks the subsample size from it.

Usage (trains ``len(configs) * (len(sizes) + 1)`` models; benchmarks/tuning_fidelity.py)::

    configs = [(hand_model, hand_train), *sample_configs("retrieval", load_space("retrieval"), 4, hand_model, hand_train)]
    study = fidelity_study(prepared, configs, sizes=(20_000, 50_000), max_cases=5_000)
    study["correlations"], smallest_faithful_size(study, 0.8)
"""

from __future__ import annotations

import time

import numpy as np
from scipy.stats import spearmanr

from recommenders.data.split import latest_sessions
from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.training import train_retrieval
from recommenders.models.validation import retrieval_metrics, validation_cases
from tuning.space import configs_from_values

# Scored at every fidelity; the correlations are reported for each.
FIDELITY_METRICS = ("val_HR@20", "val_MRR@20")


def rank_correlation(scores, reference_scores) -> float:
    """Spearman's rank correlation of two score lists (ties get their average rank).

    Hand-computed: ranks (1, 3, 2, 4) against (2, 3, 1, 4) differ by (-1, 0, 1, 0), so
    rho = 1 - 6 * 2 / (4 * (16 - 1)) = 0.8.

    >>> rank_correlation([0.1, 0.3, 0.2, 0.4], [0.2, 0.5, 0.1, 0.6])
    0.8
    """
    # Rounded: scipy computes that 0.8 as 0.7999999999999999, which a 0.8 threshold would refuse.
    return round(float(spearmanr(scores, reference_scores).statistic), 12)


def sample_configs(kind: str, space: dict, n: int, model_config, train_config, seed: int = 0) -> list:
    """``n`` configurations drawn at random from ``space`` over the base configs: ``[(model, train)]``."""
    from tuning.search import to_hyperparameters

    hyperparameters = to_hyperparameters(kind, space)
    rng = np.random.default_rng(seed)
    configs = []
    for _ in range(n):
        values = {hp.name: hp.random_sample(int(rng.integers(2**31))) for hp in hyperparameters.space}
        configs.append(configs_from_values(kind, values, model_config, train_config))
    return configs


def fidelity_study(prepared, configs: list, sizes, max_cases: int | None, seed: int = 0) -> dict:
    """Each ``(model config, train config)`` trained on the ``sizes`` latest training sessions and on all.

    Every model is scored by ``retrieve`` on the same ``max_cases`` validation cases.
    Returns ``{"rows": [{config, train_sessions, seconds, val_HR@20, val_MRR@20}],
    "correlations": {size: {metric: rho against all sessions}}, "seconds": {size: total}}``.
    """
    vocab = FeatureVocabularies.build(prepared.train, prepared.catalog)
    cases = validation_cases(prepared.validation, max_cases, seed)
    fidelities = [*sorted(sizes), None]  # None: every training session
    rows = []
    for index, (model_config, train_config) in enumerate(configs):
        for size in fidelities:
            started = time.perf_counter()
            model, _ = train_retrieval(latest_sessions(prepared.train, size), prepared.validation, prepared.catalog,
                                       model_config, train_config, vocab=vocab)
            metrics = retrieval_metrics(model, cases, (20,), train_config.max_length)
            rows.append({"config": index, "train_sessions": size, "seconds": round(time.perf_counter() - started, 1),
                         **{name: metrics[name] for name in FIDELITY_METRICS}})
            print(f"config {index}, {size or 'all'} sessions: " +
                  ", ".join(f"{name} {100 * metrics[name]:.2f}" for name in FIDELITY_METRICS), flush=True)

    def scores(size, metric):
        return [row[metric] for row in rows if row["train_sessions"] == size]

    return {
        "rows": rows,
        "correlations": {size: {metric: rank_correlation(scores(size, metric), scores(None, metric))
                                for metric in FIDELITY_METRICS} for size in sizes},
        "seconds": {size: round(sum(row["seconds"] for row in rows if row["train_sessions"] == size), 1)
                    for size in fidelities},
    }


def smallest_faithful_size(study: dict, min_correlation: float):
    """The smallest subsample size whose scores rank the configurations with at least
    ``min_correlation`` on every metric; ``None`` (use all sessions) when none does."""
    for size, correlations in sorted(study["correlations"].items()):
        if all(rho >= min_correlation for rho in correlations.values()):
            return size
    return None
