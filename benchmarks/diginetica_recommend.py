"""What backend services call, on real data: the exported ``recommend`` beside ``retrieve`` on Diginetica.

Trains retrieval and ranking on the same training sessions, fits the recommend pool and
blend on the validation sessions (``recommenders/models/blend.py``), exports the three
SavedModels as ``recsys export`` does (the fit in their metadata), loads them back and
scores the exported ``retrieve`` and ``recommend`` signatures and the baselines on all
60,858 test prefixes, full ranking over all 43,097 items, in the same run; the served
retrieval model also without its popularity shift, to show what the shift adds. Latency per
case is measured twice: within evaluation batches of 2,048 cases, and one case per call.

Diginetica has only views. The ranker's click task learns "was this the next item
viewed": the next view of every position is the positive, the next views of 4 other
positions of the batch are negatives (so negatives follow view popularity); the cart and
purchase tasks have no positives and get weight 0.

    .venv/bin/python benchmarks/diginetica_recommend.py --config benchmarks/configs/diginetica.json --epochs 4

Writes ``benchmarks/results/diginetica_recommend.{json,md}``.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import diginetica_parser, diginetica_run_config, peak_rss_mb, provenance, run_main

import recsys_base  # noqa: F401

RETRIEVE, RECOMMEND = "retrieve (exported)", "recommend (exported, fitted blend)"
# The served retrieval model scored again with its popularity shift's weight at 0 (models/fusion.py).
RETRIEVE_UNSHIFTED = "retrieve without the popularity shift (same model)"
FUSION_CHOICES = ("half_life", "table_scale", "popularity_weight")
# The tables a --test-grid is scored with: those the blend fit saw, and those the exported models serve.
TRAINING_TABLES, SERVED_TABLES = "training-split", "served"


def parse_args(argv=None):
    parser = diginetica_parser(__doc__.split("\n\n")[0], default_epochs=4)
    parser.add_argument("--ranking-epochs", type=int, default=2, help="epochs of the ranker (--epochs: retrieval)")
    parser.add_argument("--latency-cases", type=int, default=300, help="test cases timed one per call")
    parser.add_argument("--seed", type=int, help="overrides the run config's training seed: a rerun from other "
                        "initial weights and batch orders, to see how far the scores move")
    parser.add_argument("--test-grid", action="store_true",
                        help="also scores the blend's whole grid on the test cases, with the tables the fit saw "
                        "(training split) and with the served ones (recounted on train + validation): where the "
                        "fitted point lands on test and why (on 2 CPUs, about 100 s per scoring of the 60,858 test cases)")
    return parser.parse_args(argv)


def single_case_latency(signature, cases, max_length: int, n: int) -> dict:
    """Milliseconds per call of ``signature`` with one case (k=20), over ``n`` spread-out test cases."""
    from recommenders.models.inference import SignatureRecommender

    recommender = SignatureRecommender(signature, max_length)
    picks = np.linspace(0, len(cases) - 1, n).astype(int)
    recommender.recommend(cases.take(picks[:5]), 20)  # warm up (tracing, first allocations)
    seconds = []
    for index in picks:
        one = cases.take([index])
        started = time.perf_counter()
        recommender.recommend(one, 20)
        seconds.append(time.perf_counter() - started)
    ms = 1000 * np.array(seconds)
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "calls": n}


def run(args) -> dict:
    from recommenders.data.loaders import load_srgnn_splits
    from recommenders.evaluation.baselines import MarkovChain, Popularity, SessionKNN
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.evaluation.harness import evaluate
    from recommenders.evaluation.report import EvaluationReport
    from recommenders.features.vocabulary import FeatureVocabularies
    from recommenders.models.blend import fit_recommend
    from recommenders.models.export import export_models
    from recommenders.models.inference import SignatureRecommender
    from recommenders.models.serving_modules import RankingModule, RecommendModule, RetrievalModule
    from recommenders.models.training import count_served_tables, train_ranking, train_retrieval
    from recsys_base.tf_compat import tensorflow
    from serving import contract

    tf = tensorflow()
    config = diginetica_run_config(args)
    if args.seed is not None:
        config.train.seed = args.seed
    ranking_train = dataclasses.replace(config.train, epochs=args.ranking_epochs).validate()

    started = time.perf_counter()
    prepared = load_srgnn_splits(args.data_dir, validation_fraction=args.validation_fraction)
    seen = pd.concat([prepared.train, prepared.validation])
    vocab = FeatureVocabularies.build(seen, prepared.catalog)
    cases = make_next_item_cases(prepared.test)
    validation_cases = make_next_item_cases(prepared.validation)
    print(f"loaded {len(cases):,} test cases, {len(validation_cases):,} validation cases, {vocab.num_items:,} items "
          f"in {time.perf_counter() - started:.0f}s", flush=True)

    seconds, histories = {}, {}
    for part, trainer, model_config, train_config in (
        ("retrieval", train_retrieval, config.retrieval, config.train),
        ("ranking", train_ranking, config.ranking, ranking_train),
    ):
        print(f"training {part} ...", flush=True)
        started = time.perf_counter()
        model, history = trainer(prepared.train, prepared.validation, prepared.catalog, model_config, train_config, vocab=vocab)
        seconds[part], histories[part] = time.perf_counter() - started, history.history
        if part == "retrieval":
            retrieval_model = model
        else:
            ranking_model = model

    max_length = config.train.max_length
    recommend_module = RecommendModule(RetrievalModule(retrieval_model, max_length), RankingModule(ranking_model, max_length))
    print("fitting the recommend blend on validation ...", flush=True)
    started = time.perf_counter()
    fit = fit_recommend(recommend_module, validation_cases, config.recommend)
    seconds["blend fit"] = time.perf_counter() - started
    print(f"  candidate_pool {fit.candidate_pool}, ranking_weight {fit.ranking_weight}: validation {fit.recommend} "
          f"against retrieve {fit.retrieve}", flush=True)

    test_grids = {}

    def score_test_grid(tables: str) -> None:
        started = time.perf_counter()
        print(f"scoring the blend grid on test, {tables} tables ...", flush=True)
        test_grids[tables] = fit_recommend(recommend_module, cases, config.recommend, max_cases=len(cases)).to_dict()
        seconds[f"test grid, {tables} tables"] = time.perf_counter() - started

    if args.test_grid:
        score_test_grid(TRAINING_TABLES)
    for model in (retrieval_model, ranking_model):  # as a trained run does, after every fit on validation
        count_served_tables(model, seen)
    if args.test_grid:
        score_test_grid(SERVED_TABLES)
    with tempfile.TemporaryDirectory() as base:
        exported = export_models(retrieval_model, ranking_model, base, recommend_config=config.recommend.resolved(fit.config()),
                                 metadata={"recommend_fit": fit.to_dict()}, max_session_events=max_length)
        signatures = {
            name: tf.saved_model.load(str(exported[model])).signatures[contract.SIGNATURES[model]]
            for name, model in ((RETRIEVE, contract.RETRIEVAL_MODEL), (RECOMMEND, contract.RECOMMEND_MODEL))
        }
        ours = evaluate({name: SignatureRecommender(signature, max_length) for name, signature in signatures.items()},
                        cases, (5, 10, 20), catalog_size=vocab.num_items)
        latency = {name: single_case_latency(signature, cases, max_length, args.latency_cases)
                   for name, signature in signatures.items()}
    unshifted = []
    if retrieval_model.fusion is not None:
        chosen_weight = retrieval_model.fusion.popularity_weight.numpy()
        retrieval_model.fusion.popularity_weight.assign(0.0)
        # Held in a name while it is scored: a tf.function method keeps only a weak reference to its module.
        unshifted_module = RetrievalModule(retrieval_model, max_length)
        unshifted = evaluate({RETRIEVE_UNSHIFTED: SignatureRecommender(unshifted_module.retrieve, max_length)},
                             cases, (5, 10, 20), catalog_size=vocab.num_items).results
        retrieval_model.fusion.popularity_weight.assign(chosen_weight)
    baselines = evaluate({"popularity": Popularity(), "markov-1": MarkovChain(), "session-knn": SessionKNN()},
                         cases, (5, 10, 20), train_events=seen, catalog=prepared.catalog)
    report = EvaluationReport(k_values=ours.k_values, n_cases=ours.n_cases, catalog_size=ours.catalog_size,
                              results=[*ours.results, *unshifted, *baselines.results])
    for name, result in zip(signatures, ours.results):
        latency[name]["batched_ms_per_case"] = 1000 * result.recommend_seconds / len(cases)
    return {
        "dataset": "diginetica (SR-GNN preprocessing)",
        "run_config": config.to_dict(),
        "ranking_epochs": args.ranking_epochs,
        "epochs_run": {part: len(history["loss"]) for part, history in histories.items()},
        "seconds": {part: round(value) for part, value in seconds.items()},
        "ranking_validation": {name: float(values[-1]) for name, values in histories["ranking"].items()
                               if name.startswith("val_click")},
        "recommend_fit": fit.to_dict(),
        # What fit_fusion chose on validation (the served half-life, table scale and shift weight).
        "fusion_fit": {key: histories["retrieval"]["fusion"][key] for key in FUSION_CHOICES}
        if "fusion" in histories["retrieval"] else None,
        "test_grids": test_grids,
        "latency": latency,
        "peak_rss_mb": peak_rss_mb(),
        "evaluation": report.to_dict(),
        "table": report.format_table(),
    }


def grid_rows(fit: dict) -> list[str]:
    """A blend fit's grid as a markdown table: HR@K / MRR@K (percent) by pool (rows) and weight (columns)."""
    k = fit["k"]
    rows = ["| candidate_pool | " + " | ".join(f"w={w:g}" for w in sorted({p["ranking_weight"] for p in fit["grid"]})) + " |"]
    rows.append("|---:|" + "---:|" * (len(rows[0].split("|")) - 3))
    for pool in sorted({p["candidate_pool"] for p in fit["grid"]}):
        cells = [f"{100 * p[f'HR@{k}']:.2f} / {100 * p[f'MRR@{k}']:.2f}" for p in fit["grid"] if p["candidate_pool"] == pool]
        rows.append(f"| {pool} | " + " | ".join(cells) + " |")
    return rows


def markdown(result: dict) -> str:
    fit, latency = result["recommend_fit"], result["latency"]
    metrics = {model["name"]: model["metrics"] for model in result["evaluation"]["results"]}
    rows = ["| model | HR@20 | MRR@20 | ms per case (batches of 2,048) | ms per call, 1 case (p50 / p99) |",
            "|---|---:|---:|---:|---:|"]
    for name, values in metrics.items():
        timing = " | |"
        if name in latency:
            timing = (f" {latency[name]['batched_ms_per_case']:.2f} | {latency[name]['p50_ms']:.1f} / "
                      f"{latency[name]['p99_ms']:.1f} |")
        rows.append(f"| {name} | {100 * values['HR@20']:.2f} | {100 * values['MRR@20']:.2f} |{timing}")
    k = fit["k"]
    test_grids = []
    for tables, test_fit in result.get("test_grids", {}).items():
        test_grids += [
            f"The same grid on the {test_fit['n_cases']:,} test cases with the {tables} tables (`retrieve` "
            f"{100 * test_fit['retrieve'][f'HR@{k}']:.2f} / {100 * test_fit['retrieve'][f'MRR@{k}']:.2f}):",
            "", *grid_rows(test_fit), ""]
    fusion_fit = result.get("fusion_fit")
    fusion_choice = [] if not fusion_fit else [
        f"Fusion fitted on validation: half-life {fusion_fit['half_life']:g} of the training span, table scale "
        f"{fusion_fit['table_scale']:g}, popularity shift weight {fusion_fit['popularity_weight']:g}.", ""]
    met = all(metrics[RECOMMEND][key] >= metrics[RETRIEVE][key] for key in ("HR@20", "MRR@20"))
    seconds = result["seconds"]
    spent_on_grids = sum(value for part, value in seconds.items() if part.startswith("test grid"))
    test_grid_seconds = f" test grids (diagnostic) {spent_on_grids} s;" if spent_on_grids else ""
    return "\n".join([
        "# `recommend` beside `retrieve` on Diginetica (SR-GNN split)",
        "",
        f"{provenance(result)} Training: retrieval {result['epochs_run']['retrieval']} "
        f"epochs in {seconds['retrieval']} s, ranking {result['epochs_run']['ranking']} epochs in {seconds['ranking']} s "
        f"(validation click AUC {result['ranking_validation'].get('val_click_auc', float('nan')):.3f}); blend fit "
        f"{seconds['blend fit']} s;{test_grid_seconds} peak RSS {result['peak_rss_mb']} MB.",
        "",
        "Diginetica has only views: the click task learns whether a candidate was the next item viewed "
        "(positive: the next view; negatives: the next views of 4 other positions in the batch), and the cart "
        "and purchase tasks, which have no positives, have weight 0.",
        "",
        "Exported signatures loaded back from SavedModels, full ranking over all items, every test prefix (percent):",
        "",
        *rows,
        "| SR-GNN (published) | 50.73 | 17.59 | | |",
        "| GCE-GNN (published) | 54.22 | 19.04 | | |",
        "",
        f"`recommend` at least `retrieve` on HR@20 and MRR@20 on test: {'yes' if met else 'no'}.",
        "",
        *fusion_choice,
        f"Blend fitted on {fit['n_cases']:,} validation cases: `candidate_pool` {fit['candidate_pool']}, "
        f"`ranking_weight` {fit['ranking_weight']:g} (validation HR@{k} / MRR@{k}: recommend "
        f"{100 * fit['recommend'][f'HR@{k}']:.2f} / {100 * fit['recommend'][f'MRR@{k}']:.2f}, retrieve "
        f"{100 * fit['retrieve'][f'HR@{k}']:.2f} / {100 * fit['retrieve'][f'MRR@{k}']:.2f}). "
        f"The grid (validation HR@{k} / MRR@{k}, percent; w = `ranking_weight`):",
        "",
        *grid_rows(fit),
        "",
        *test_grids,
        "All metrics:",
        "",
        result["table"],
        "",
    ])


def main(argv=None) -> int:
    return run_main("diginetica_recommend", parse_args(argv), run, markdown)


if __name__ == "__main__":
    sys.exit(main())
