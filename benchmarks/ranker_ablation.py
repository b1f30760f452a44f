"""What the ranker adds to ``recommend``: neighbour features and session negatives, on and off, in one run.

Trains retrieval once, then one ranker per variant: with and without the candidates'
neighbour scores (``neighbour_features``, out-of-fold in training) and with and without
the session's own latest items as training negatives (``session_negatives``). Each
ranker gets its recommend pool and blend fitted on the validation split, as training
does (``recommenders/models/blend.py``; weight 0 means the fit turned the ranker off),
then ``recommend`` scores every test prefix with full ranking beside ``retrieve``, split
into re-visits and new items.

    .venv/bin/python benchmarks/ranker_ablation.py                       # synthetic shop, ~25 min on 2 CPUs
    .venv/bin/python benchmarks/ranker_ablation.py --dataset diginetica --config benchmarks/configs/diginetica_tuned.json \
        --variants before default                                        # a subset, by key

Writes ``benchmarks/results/ranker_ablation_<dataset>.{json,md}``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dataset_and_config, diginetica_parser, ignored_options, parse_dataset_args, peak_rss_mb, provenance, run_main, split_metrics

import recsys_base  # noqa: F401

K = 20
# key -> (table row, RankingConfig fields over the run config's); "default" changes nothing.
VARIANTS = {
    "before": ("ranker before (no neighbour features, batch negatives only)",
               dict(neighbour_features=False, session_negatives=0)),
    "neighbour-features": ("+ neighbour features", dict(neighbour_features=True, session_negatives=0)),
    "session-negatives": ("+ session negatives", dict(neighbour_features=False, session_negatives=2)),
    "default": ("the run config's ranker (by default both)", {}),
}


def parse_args(argv=None):
    parser = diginetica_parser(__doc__.split("\n\n")[0], default_epochs=8)
    parser.add_argument("--dataset", choices=("synthetic", "diginetica"), default="synthetic")
    parser.add_argument("--ranking-epochs", type=int, help="epochs of each ranker (default: --epochs)")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=tuple(VARIANTS),
                        help="rankers to train, by key (default: all)")
    return parse_dataset_args(parser, argv)


def run(args) -> dict:
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.evaluation.harness import _recommend
    from recommenders.features.vocabulary import FeatureVocabularies
    from recommenders.models.blend import fit_recommend
    from recommenders.models.inference import SignatureRecommender
    from recommenders.models.serving_modules import RankingModule, RecommendModule, RetrievalModule
    from recommenders.models.training import RANKING_MONITOR, count_served_tables, train_ranking, train_retrieval

    prepared, config = dataset_and_config(args)
    ranking_train = dataclasses.replace(config.train, epochs=args.ranking_epochs or config.train.epochs).validate()
    max_length = config.train.max_length
    seen = pd.concat([prepared.train, prepared.validation])
    vocab = FeatureVocabularies.build(seen, prepared.catalog)
    cases, validation_cases = make_next_item_cases(prepared.test), make_next_item_cases(prepared.validation)
    revisit = np.array([target in prefix for target, prefix in zip(cases.targets, cases.prefix_item_ids)])
    print(f"{len(cases):,} test cases ({revisit.mean():.1%} re-visits), {vocab.num_items:,} items", flush=True)

    started = time.perf_counter()
    retrieval_model, _ = train_retrieval(prepared.train, prepared.validation, prepared.catalog, config.retrieval,
                                         config.train, vocab=vocab)
    seconds = {"retrieval": time.perf_counter() - started}
    retrieval = RetrievalModule(retrieval_model, max_length)
    # As a trained run does: every blend is fitted while the tables count the training
    # sessions (as training left them); the models then serve tables that also count the
    # validation sessions.
    fitted = {}
    for name, fields in (VARIANTS[key] for key in args.variants):
        ranking_config = dataclasses.replace(config.ranking, **fields).validate()
        started = time.perf_counter()
        ranker, history = train_ranking(prepared.train, prepared.validation, prepared.catalog, ranking_config,
                                        ranking_train, vocab=vocab)
        seconds[name] = time.perf_counter() - started
        ranking = RankingModule(ranker, max_length)
        fit = fit_recommend(RecommendModule(retrieval, ranking), validation_cases, config.recommend)
        fitted[name] = (ranking, history, fit)
    count_served_tables(retrieval_model, seen)
    ranked = _recommend("retrieve", SignatureRecommender(retrieval.retrieve, max_length), cases, K, 512, True)
    rows = {"retrieve": split_metrics(ranked, cases, revisit, K)}
    for name, (ranking, history, fit) in fitted.items():
        count_served_tables(ranking.ranker, seen)
        recommend = RecommendModule(retrieval, ranking, config.recommend.resolved(fit.config()))
        ranked = _recommend(name, SignatureRecommender(recommend.recommend, max_length), cases, K, 512, True)
        rows[name] = {**split_metrics(ranked, cases, revisit, K), "candidate_pool": fit.candidate_pool,
                      "ranking_weight": fit.ranking_weight, "validation": {"recommend": fit.recommend, "retrieve": fit.retrieve},
                      "best_val_click_auc": float(np.nanmax(history.history[RANKING_MONITOR]))}
        print(f"{name}: {rows[name]}", flush=True)
    return {"dataset": args.dataset, "run_config": config.to_dict(), "seconds": seconds, "peak_rss_mb": peak_rss_mb(),
            "cases": len(cases), "validation_cases": fit.to_dict()["n_cases"], "revisit_share": float(revisit.mean()),
            "items": vocab.num_items, "rows": rows}


def markdown(result: dict) -> str:
    lines = [
        f"# What the ranker adds to `recommend` on {result['dataset']}",
        "",
        f"{provenance(result)} Retrieval trained once ({result['seconds']['retrieval']:.0f} s), then each ranker; "
        f"peak RSS {result['peak_rss_mb']} MB. Each ranker's pool and blend weight are fitted on "
        f"{result['validation_cases']:,} validation cases (weight 0: the fit turned the ranker off); every row scores "
        f"all {result['cases']:,} test prefixes with full ranking over {result['items']:,} items "
        f"({100 * result['revisit_share']:.1f}% re-visits). HR@{K} / MRR@{K} in percent.",
        "",
        f"| path | test: all | re-visits | new items | fitted pool, weight | validation MRR@{K}: recommend / retrieve "
        "| best val click AUC | ranker s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in result["rows"].items():
        cells = [f"{row[part]['HR']:.2f} / {row[part]['MRR']:.2f}" for part in ("all", "revisit", "new")]
        if "validation" in row:
            validation = row["validation"]
            cells += [f"{row['candidate_pool']}, {row['ranking_weight']}",
                      f"{100 * validation['recommend'][f'MRR@{K}']:.2f} / {100 * validation['retrieve'][f'MRR@{K}']:.2f}",
                      f"{row['best_val_click_auc']:.3f}", f"{result['seconds'][name]:.0f}"]
        else:
            cells += [""] * 4
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines + [""])


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_main(f"ranker_ablation_{args.dataset}", args, run, markdown, hidden_arguments=ignored_options(args))


if __name__ == "__main__":
    sys.exit(main())
