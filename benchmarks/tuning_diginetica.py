"""Hand-tuned vs searched retrieval on the SR-GNN Diginetica benchmark, and what the search cost.

The search starts from the hand configuration (``benchmarks/configs/diginetica.json``,
trial 0) and runs Hyperband with warm start on a multi-fidelity budget: trials train on
the latest ``--train-sessions`` training sessions and are scored on ``--validation-cases``
validation cases by ``retrieve``'s HR@20 + MRR@20 (``--objective``: the bar is both). The best configuration is then retrained on all
training sessions exactly as the hand configuration is (up to ``--epochs`` epochs, early
stopping on validation MRR@20), and both are scored in the same run on the full test set:
all 60,858 prefixes, full ranking over 43,097 items.

    .venv/bin/python benchmarks/tuning_diginetica.py [--time-limit S] [--max-trials N]
        [--train-sessions N] [--validation-cases N] [--trial-epochs E] [--epochs E] [--space FILE]

Writes ``benchmarks/results/tuning_diginetica.{json,md,png}`` (the png: best validation
score over trials) and the tuned configuration to ``--tuned-config``
(``benchmarks/configs/diginetica_tuned.json``). Everything lives under ``--work-dir``:
rerun the same command after an interruption and it resumes (finished trials are not
rerun, a promoted trial restarts from its parent's saved model, and the two full
trainings resume from their backups or are reused once saved). ``--test-cases`` and
``--max-train-sessions`` shrink a smoke run.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, diginetica_parser, diginetica_run_config, peak_rss_mb, provenance, run_main

import recsys_base  # noqa: F401


def parse_args(argv=None):
    parser = diginetica_parser(__doc__.split("\n\n")[0], default_epochs=8)
    parser.set_defaults(config=REPO / "benchmarks" / "configs" / "diginetica.json")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/tuning_diginetica"),
                        help="tuning project and full trainings (rerun to resume)")
    parser.add_argument("--tuned-config", type=Path, default=REPO / "benchmarks" / "configs" / "diginetica_tuned.json")
    parser.add_argument("--tuner", default="hyperband", choices=("random", "bayesian", "hyperband", "grid"))
    parser.add_argument("--max-trials", type=int, default=60)
    parser.add_argument("--time-limit", type=float, default=4_200, help="seconds after which no new trial starts")
    parser.add_argument("--trial-epochs", type=int, default=4, help="epochs per trial (hyperband: the most it allots)")
    parser.add_argument("--space", type=Path, help="search space override file")
    parser.add_argument("--objective", default="HR@20+MRR@20", help="what trials are judged by (tuning/objective.py)")
    parser.add_argument("--validation-cases", type=int, default=5_000, help="validation cases scoring each trial")
    parser.add_argument("--train-sessions", type=int, default=40_000,
                        help="trials train on the latest N training sessions (see benchmarks/tuning_fidelity.py)")
    parser.add_argument("--max-train-sessions", type=int, help="smoke runs: keep only the latest N training sessions")
    parser.add_argument("--test-cases", type=int, help="smoke runs: score a fixed random subset of N test cases")
    return parser.parse_args(argv)


def load(args):
    """The SR-GNN splits (shrunk for a smoke run when asked) and the test cases."""
    from recommenders.data.loaders import load_srgnn_splits
    from recommenders.data.split import latest_sessions
    from recommenders.evaluation.cases import make_next_item_cases

    prepared = load_srgnn_splits(args.data_dir, validation_fraction=args.validation_fraction)
    prepared.train = latest_sessions(prepared.train, args.max_train_sessions)
    return prepared, make_next_item_cases(prepared.test).subset(args.test_cases or None)


def trained_once(directory: Path, train, model_config, train_config):
    """The model trained with these configs, from ``directory`` if a previous run finished it;
    else trained (resumable from ``directory/backup``) and saved there. ``(model, seconds)``."""
    from recommenders.models.training import load_trained, save_trained

    marker = directory / "configs.json"
    configs = json.dumps({"model": dataclasses.asdict(model_config), "train": dataclasses.asdict(train_config)})
    if marker.is_file() and marker.read_text() == configs:
        return load_trained(directory / "model"), None
    started = time.perf_counter()
    model, _ = train(model_config, train_config, backup_dir=directory / "backup")
    save_trained(model, directory / "model")
    marker.write_text(configs)
    return model, time.perf_counter() - started


def best_score_plot(table, metric: str, path: Path) -> None:
    """The best validation score so far after each trial (in trial order), as a step plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = table.sort_values("trial_id", key=lambda ids: ids.astype(int))
    scores = np.where(ordered["status"] == "COMPLETED", ordered[metric].astype(float), np.nan)
    best = np.fmax.accumulate(np.nan_to_num(scores, nan=-np.inf))
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot(np.arange(1, len(scores) + 1), 100 * scores, "o", alpha=0.4, label="trial")
    axes.step(np.arange(1, len(best) + 1), 100 * np.where(np.isfinite(best), best, np.nan), where="post",
              label="best so far")
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.set_xlabel("trials run")
    axes.set_ylabel(f"validation {metric.removeprefix('val_')} (%)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run(args) -> dict:
    from recommenders.evaluation.harness import evaluate
    from recommenders.models.hparams import hparam_values, tunable_fields
    from recommenders.models.inference import SignatureRecommender
    from recommenders.models.serving_modules import RetrievalModule
    from recommenders.models.training import train_retrieval
    from tuning.search import TuningConfig, best_configs, run_search

    started_run = time.perf_counter()
    hand = diginetica_run_config(args)
    prepared, cases = load(args)

    def train(model_config, train_config, **fit_kwargs):
        return train_retrieval(prepared.train, prepared.validation, prepared.catalog, model_config, train_config,
                               **fit_kwargs)

    config = TuningConfig(kind="retrieval", tuner=args.tuner, objective=args.objective, max_trials=args.max_trials,
                          time_limit_seconds=args.time_limit, max_validation_cases=args.validation_cases,
                          train_sessions=args.train_sessions, directory=str(args.work_dir), project_name="retrieval",
                          space_file=str(args.space) if args.space else None)
    started = time.perf_counter()
    result = run_search(prepared, config, model_config=hand.retrieval,
                        train_config=dataclasses.replace(hand.train, epochs=args.trial_epochs))
    search_seconds = time.perf_counter() - started
    best = result.best_trial()
    tuned_model_config, tuned_train_config = best_configs(result, epochs=hand.train.epochs)
    # Run settings (validation cases, verbosity, ...) as the hand training's: only hyperparameters differ.
    tuned_train_config = dataclasses.replace(
        tuned_train_config, **{name: getattr(hand.train, name) for name in type(hand.train).NOT_TUNABLE})

    hand_model, hand_seconds = trained_once(args.work_dir / "hand", train, hand.retrieval, hand.train)
    if (tuned_model_config, tuned_train_config) == (hand.retrieval, hand.train):  # the search kept trial 0
        tuned_model, tuned_seconds = hand_model, None
    else:
        tuned_model, tuned_seconds = trained_once(args.work_dir / "tuned", train, tuned_model_config, tuned_train_config)

    max_length = hand.train.max_length
    modules = {"hand config": RetrievalModule(hand_model, max_length),
               "tuned config": RetrievalModule(tuned_model, tuned_train_config.max_length)}
    report = evaluate({name: SignatureRecommender(module.retrieve, module.max_session_events)
                       for name, module in modules.items()}, cases, (20,), catalog_size=hand_model.vocab.num_items)
    test = {r.name: {"HR@20": r.metrics["HR@20"], "MRR@20": r.metrics["MRR@20"]} for r in report.results}

    tuned_values = hparam_values(tuned_model_config, tuned_train_config)
    train_fields = tunable_fields(type(tuned_train_config))
    args.tuned_config.parent.mkdir(parents=True, exist_ok=True)
    args.tuned_config.write_text(json.dumps({
        "retrieval": {name: value for name, value in tuned_values.items() if name not in train_fields},
        "train": {name: value for name, value in tuned_values.items() if name in train_fields},
    }, indent=1) + "\n")

    table = result.leaderboard
    args.output_dir.mkdir(parents=True, exist_ok=True)
    best_score_plot(table, result.objective.metric, args.output_dir / "tuning_diginetica.png")
    return {
        "dataset": "diginetica (SR-GNN preprocessing)",
        "train_sessions": int(prepared.train["session_id"].nunique()),
        "test_cases": len(cases),
        "search": {"trials": len(table), "completed": int((table["status"] == "COMPLETED").sum()),
                   "wall_seconds": round(search_seconds), "best_trial": best.trial_id,
                   "best_is_hand_config": (tuned_model_config, tuned_train_config) == (hand.retrieval, hand.train),
                   "objective": result.objective.metric, "best_validation_score": float(best.score),
                   "best_values": {k: v for k, v in best.hyperparameters.values.items() if not k.startswith("tuner/")}},
        "full_training_seconds": {"hand": round(hand_seconds) if hand_seconds else "reused",
                                  "tuned": round(tuned_seconds) if tuned_seconds else "reused"},
        "total_wall_seconds": round(time.perf_counter() - started_run),
        "peak_rss_mb": peak_rss_mb(),
        "hand_config": hparam_values(hand.retrieval, hand.train),
        "tuned_config": tuned_values,
        "test": test,
        "tuned_beats_hand": all(test["tuned config"][m] > test["hand config"][m] for m in ("HR@20", "MRR@20")),
        "leaderboard": table.to_dict(orient="records"),
    }


def markdown(result: dict) -> str:
    search, test = result["search"], result["test"]
    rows = ["| configuration | HR@20 | MRR@20 |", "|---|---:|---:|"]
    for name, values in test.items():
        rows.append(f"| {name} | {100 * values['HR@20']:.2f} | {100 * values['MRR@20']:.2f} |")
    changed = {name: value for name, value in result["tuned_config"].items() if result["hand_config"].get(name) != value}
    return "\n".join([
        "# Hand-tuned vs searched retrieval on Diginetica (SR-GNN split)",
        "",
        provenance(result),
        f"Training sessions: {result['train_sessions']:,}; test cases scored: {result['test_cases']:,} "
        "(full ranking over all items, percent). Both configurations trained on all training sessions the same way.",
        "",
        *rows,
        "",
        f"Tuned beats hand on both metrics: **{'yes' if result['tuned_beats_hand'] else 'no'}**.",
        "",
        f"Search: {search['trials']} trials ({search['completed']} completed) in {search['wall_seconds']} s wall time; "
        f"full trainings (s): {json.dumps(result['full_training_seconds'])}; whole run {result['total_wall_seconds']} s, "
        f"peak RSS {result['peak_rss_mb']} MB. Best trial {search['best_trial']} ({search['objective']} on the "
        f"validation subsample: {100 * search['best_validation_score']:.2f}).",
        "",
        f"Changed from the hand configuration: `{json.dumps(changed)}`"
        + (" (the search kept the hand configuration)." if search["best_is_hand_config"] else "."),
        "",
        "![best validation score over trials](tuning_diginetica.png)",
        "",
    ])


def main(argv=None) -> int:
    return run_main("tuning_diginetica", parse_args(argv), run, markdown)


if __name__ == "__main__":
    sys.exit(main())
