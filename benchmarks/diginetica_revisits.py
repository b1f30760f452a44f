"""One retrieval configuration on Diginetica, with HR/MRR@20 split by re-visit vs. new next items.

Trains the retrieval model with a run config (as ``diginetica_retrieval.py`` does, without
the throughput comparison), scores all 60,858 test prefixes with full ranking, and splits
the cases by whether the next item is already in the session (about a fifth are), beside
session-kNN on the same cases. This is how the steps in the README's Diginetica table were
measured (configs in ``benchmarks/configs/diginetica_steps/``).

    .venv/bin/python benchmarks/diginetica_revisits.py --config benchmarks/configs/diginetica_steps/normalized.json --epochs 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA

import recsys_base  # noqa: F401


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="JSON run config (retrieval/train sections)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)

    from recommenders.data.loaders import load_srgnn_splits
    from recommenders.evaluation.baselines import SessionKNN
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.features.vocabulary import FeatureVocabularies
    from recommenders.models.inference import SignatureRecommender
    from recommenders.models.serving_modules import RetrievalModule
    from recommenders.models.training import train_retrieval
    from recsys.workflow import RunConfig

    config = RunConfig.from_file(args.config)
    config.train.epochs, config.train.verbose = args.epochs, 2
    # Diginetica has only item ids and categories: no users, queries or meaningful clock times.
    config.retrieval.use_user = config.retrieval.use_query = config.retrieval.use_context = False
    config.validate()
    prepared = load_srgnn_splits(args.data_dir, validation_fraction=0.02)
    seen = pd.concat([prepared.train, prepared.validation])
    vocab = FeatureVocabularies.build(seen, prepared.catalog)
    cases = make_next_item_cases(prepared.test)
    started = time.perf_counter()
    model, _ = train_retrieval(prepared.train, prepared.validation, prepared.catalog, config.retrieval, config.train,
                               vocab=vocab)
    print(f"trained in {time.perf_counter() - started:.0f} s", flush=True)
    knn = SessionKNN().fit(seen, prepared.catalog)
    module = RetrievalModule(model, config.train.max_length)
    models = {"this config": SignatureRecommender(module.retrieve, config.train.max_length), "session-knn": knn}
    revisit = np.array([target in prefix for target, prefix in zip(cases.targets, cases.prefix_item_ids)])
    print(f"\n{len(cases):,} cases, {revisit.mean():.1%} re-visits; HR@20 / MRR@20 in percent\n")
    print("| model | all | re-visits | new items |\n|---|---:|---:|---:|")
    for name, recommender in models.items():
        ranked = np.concatenate([np.asarray(recommender.recommend(cases.take(range(start, min(start + 1024, len(cases)))), 20))
                                 for start in range(0, len(cases), 1024)])
        hit = ranked == cases.targets[:, None]
        reciprocal = (hit / np.arange(1, 21)).sum(axis=1)
        cells = [f"{100 * hit[rows].any(axis=1).mean():.2f} / {100 * reciprocal[rows].mean():.2f}"
                 for rows in (np.ones_like(revisit), revisit, ~revisit)]
        print(f"| {name} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
