"""Default vs tuned retrieval on the SR-GNN Diginetica benchmark, and what the search cost.

Both models are trained the same way (training sessions, early stopping on the latest
validation sessions): the default is ``RetrievalConfig()`` / ``TrainConfig()``; the tuned
one is the search's best trial as it finished (validation HR@20 objective). Both are
scored on the same test prefixes (full ranking over all items).

    .venv/bin/python benchmarks/tuning_diginetica.py [--max-trials N] [--time-limit S] [--epochs E]
        [--train-sessions N] [--test-cases N] [--space FILE]

``--train-sessions`` (the most recent N) and ``--test-cases`` (a fixed random subset)
shrink the run for small machines; the results page states what was used. Writes
``benchmarks/results/tuning_diginetica.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, RESULTS, machine, run_main

import recsys_base  # noqa: F401


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    parser.add_argument("--work-dir", type=Path, default=Path("runs/tuning_diginetica"),
                        help="tuning project directory (rerun to resume)")
    parser.add_argument("--tuner", default="bayesian", choices=("random", "bayesian", "hyperband", "grid"))
    parser.add_argument("--max-trials", type=int, default=20)
    parser.add_argument("--time-limit", type=float, help="seconds after which no new trial starts")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per model (early stopping may end sooner)")
    parser.add_argument("--space", type=Path, help="search space override file")
    parser.add_argument("--validation-fraction", type=float, default=0.02)
    parser.add_argument("--validation-cases", type=int, default=20_000, help="cases scoring each trial")
    parser.add_argument("--train-sessions", type=int, help="use only the most recent N training sessions")
    parser.add_argument("--test-cases", type=int, help="score on a fixed random subset of N test cases")
    return parser.parse_args(argv)


def load(args):
    """The SR-GNN splits, shrunk as asked; Diginetica has no users, queries or meaningful clock."""
    from recommenders.data.loaders import load_srgnn_splits

    prepared = load_srgnn_splits(args.data_dir, validation_fraction=args.validation_fraction)
    if args.train_sessions:
        latest = prepared.train["session_id"].unique()[-args.train_sessions:]  # the file is in date order
        prepared.train = prepared.train[prepared.train["session_id"].isin(set(latest))]
    return prepared


def run(args) -> dict:
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.evaluation.harness import evaluate
    from recommenders.models.config import RetrievalConfig, TrainConfig
    from recommenders.models.inference import SignatureRecommender
    from recommenders.models.serving_modules import RetrievalModule
    from recommenders.models.training import train_retrieval
    from tuning.search import TuningConfig, run_search

    prepared = load(args)
    base = RetrievalConfig(use_user=False, use_query=False, use_context=False)
    train_config = TrainConfig(epochs=args.epochs, verbose=2)
    cases = make_next_item_cases(prepared.test)
    if args.test_cases and len(cases) > args.test_cases:
        cases = cases.take(np.sort(np.random.default_rng(0).choice(len(cases), args.test_cases, replace=False)))

    started = time.perf_counter()
    default, _ = train_retrieval(prepared.train, prepared.validation, prepared.catalog, base, train_config)
    default_seconds = time.perf_counter() - started

    config = TuningConfig(kind="retrieval", tuner=args.tuner, objective="HR@20", max_trials=args.max_trials,
                          time_limit_seconds=args.time_limit, max_validation_cases=args.validation_cases,
                          directory=str(args.work_dir), project_name="retrieval",
                          space_file=str(args.space) if args.space else None)
    started = time.perf_counter()
    result = run_search(prepared, config, model_config=base, train_config=train_config)
    search_seconds = time.perf_counter() - started
    best = result.best_trial()
    tuned = result.tuner.load_model(best)

    modules = {"default config": RetrievalModule(default, train_config.max_length), "tuned config": RetrievalModule(tuned, train_config.max_length)}
    report = evaluate({name: SignatureRecommender(module.retrieve, train_config.max_length)
                       for name, module in modules.items()}, cases, (20,), catalog_size=default.vocab.num_items)
    table = result.leaderboard
    return {
        "dataset": "diginetica (SR-GNN preprocessing)",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "train_sessions": int(prepared.train["session_id"].nunique()),
        "test_cases": len(cases),
        "default_train_seconds": round(default_seconds),
        "search": {"trials": len(table), "completed": int((table["status"] == "COMPLETED").sum()),
                   "wall_seconds": round(search_seconds), "best_trial": best.trial_id,
                   "best_validation_HR@20": float(best.score), "best_values": dict(best.hyperparameters.values)},
        "test": {r.name: {"HR@20": r.metrics["HR@20"], "MRR@20": r.metrics["MRR@20"]} for r in report.results},
        "leaderboard": table.to_dict(orient="records"),
    }


def markdown(result: dict) -> str:
    m, search = result["machine"], result["search"]
    rows = ["| configuration | HR@20 | MRR@20 |", "|---|---:|---:|"]
    for name, values in result["test"].items():
        rows.append(f"| {name} | {100 * values['HR@20']:.2f} | {100 * values['MRR@20']:.2f} |")
    return "\n".join([
        "# Tuned vs default retrieval on Diginetica (SR-GNN split)",
        "",
        f"Run {result['date']} on {m['nproc']} CPU(s), {m['memory_gb']} GB RAM, {m['platform']}. "
        f"Produced by `benchmarks/tuning_diginetica.py` with {json.dumps(result['arguments'])}.",
        f"Training sessions used: {result['train_sessions']:,}; test cases scored: {result['test_cases']:,} "
        "(full ranking over all items, percent).",
        "",
        *rows,
        "",
        f"Search cost: {search['trials']} trials ({search['completed']} completed) in {search['wall_seconds']} s wall "
        f"time; default model trained in {result['default_train_seconds']} s. Best trial {search['best_trial']} "
        f"(validation HR@20 {100 * search['best_validation_HR@20']:.2f}): `{json.dumps(search['best_values'])}`.",
        "",
        f"The tuned configuration is the best of {search['trials']} sampled trials by validation HR@20: with few "
        "trials and epochs, and a subsample of the sessions, it can score below the hand-picked defaults.",
        "",
    ])


def main(argv=None) -> int:
    return run_main("tuning_diginetica", parse_args(argv), run, markdown)


if __name__ == "__main__":
    sys.exit(main())
