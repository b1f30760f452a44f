"""``recsys tune``: hyperparameter search with Keras Tuner, leaderboard, optional export.

Distributed: run the same command on every machine with ``KERASTUNER_TUNER_ID``
(``chief`` on one, ``tuner0``, ``tuner1``, ... on the others), ``KERASTUNER_ORACLE_IP``
and ``KERASTUNER_ORACLE_PORT`` (the chief's address); the chief prints the leaderboard
and exports once every worker is done.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from recommenders.models.config import TrainConfig
from recsys.cli.flags import optional_float, optional_int
from tuning.config import TUNERS, TuningConfig
from tuning.space import KINDS


def register(subparsers) -> None:
    """Adds the ``tune`` command to the ``recsys`` parser."""
    tune = subparsers.add_parser("tune", help="search hyperparameters with Keras Tuner; export the best")
    tune.add_argument("--data", required=True, type=Path, help="prepared data directory (recsys data generate/import)")
    tune.add_argument("--kind", choices=KINDS, default=TuningConfig.kind, help="which model to tune (default: %(default)s)")
    tune.add_argument("--tuner", choices=TUNERS, default=TuningConfig.tuner,
                      help="search algorithm (keras-tuner oracle; default: %(default)s)")
    tune.add_argument("--objective", help="HR@K, MRR@K or HR@K+MRR@K (retrieval, default HR@20); click_auc, cart_auc, "
                                          "purchase_auc or mean_auc (ranking, default click_auc)")
    tune.add_argument("--max-trials", type=int, default=TuningConfig.max_trials, help="trial budget (default: %(default)s)")
    tune.add_argument("--time-limit", type=optional_float, default=TuningConfig.time_limit_seconds, metavar="SECONDS",
                      help="start no new trial after this many seconds (running ones finish)")
    tune.add_argument("--config", type=Path, help="JSON run config (as for recsys train): its --kind and train sections "
                                                  "are the known-good configuration, run as the first trial")
    tune.add_argument("--epochs", type=int, help="epochs per trial (early stopping may end sooner; hyperband's "
                                                 f"maximum; default: the config's, else {TrainConfig.epochs})")
    tune.add_argument("--max-length", type=int, help="session events the models see (default: the config's, else "
                                                     f"{TrainConfig.max_length})")
    tune.add_argument("--space", type=Path, help="JSON or YAML file overriding search space entries")
    tune.add_argument("--validation-cases", type=optional_int, default=TuningConfig.max_validation_cases,
                      help="retrieval: score trials on at most this many validation cases ('none': all; "
                           "default: %(default)s)")
    tune.add_argument("--train-sessions", type=optional_int, default=TuningConfig.train_sessions,
                      help="trials train on the latest N training sessions (multi-fidelity; 'none': all; the "
                           "--export-dir retrain uses all; default: all)")
    tune.add_argument("--max-failures", type=int, default=TuningConfig.max_consecutive_failed_trials,
                      help="stop after this many consecutive failed trials (default: %(default)s)")
    tune.add_argument("--seed", type=int, help="search and training seed (default: the config's, else "
                                               f"{TrainConfig.seed})")
    tune.add_argument("--directory", type=Path, default=Path(TuningConfig.directory),
                      help="where trials, logs and TensorBoard files go (default: %(default)s)")
    tune.add_argument("--project", help="project name under --directory (default: the kind); rerun to resume")
    tune.add_argument("--overwrite", action="store_true", help="start the project afresh instead of resuming")
    tune.add_argument("--leaderboard", type=Path, help="CSV file for the leaderboard "
                                                       "(default: <directory>/<project>/leaderboard.csv)")
    tune.add_argument("--export-dir", type=Path, help="retrain the best trial on all training sessions and export "
                                                      "it as the next SavedModel version here")
    tune.set_defaults(func=_tune)


def _tune(args) -> int:
    from recsys.workflow import RunConfig
    from tuning.space import load_space

    # Every input is checked before TensorFlow loads, so mistakes answer at once.
    run_config = RunConfig.from_file(args.config) if args.config else RunConfig()
    given = {"epochs": args.epochs, "max_length": args.max_length, "seed": args.seed}
    train_config = dataclasses.replace(run_config.train, verbose=0,
                                       **{name: value for name, value in given.items() if value is not None}).validate()
    config = TuningConfig(kind=args.kind, tuner=args.tuner, objective=args.objective, max_trials=args.max_trials,
                          time_limit_seconds=args.time_limit, max_validation_cases=args.validation_cases,
                          train_sessions=args.train_sessions, max_consecutive_failed_trials=args.max_failures,
                          seed=train_config.seed,
                          directory=str(args.directory), project_name=args.project, overwrite=args.overwrite,
                          space_file=str(args.space) if args.space else None).validate()
    load_space(args.kind, args.space)

    from recommenders.data.dataset import load_prepared

    prepared = load_prepared(args.data)

    import pandas as pd

    from tuning.search import retrain_and_export, run_search

    other_kind = next(kind for kind in KINDS if kind != args.kind)
    result = run_search(prepared, config, model_config=getattr(run_config, args.kind), train_config=train_config)
    if result.role == "worker":
        print(f"worker {result.tuner.tuner_id} done; the chief holds the leaderboard")
        return 0
    csv = args.leaderboard or Path(result.tuner.project_dir) / "leaderboard.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    result.leaderboard.to_csv(csv, index=False)
    with pd.option_context("display.max_columns", None, "display.width", 200, "display.max_colwidth", 60):
        print(result.leaderboard.to_string(index=False))
    print(f"leaderboard: {csv}")
    if args.export_dir is not None:
        exported = retrain_and_export(result, prepared, args.export_dir, other_model_config=getattr(run_config, other_kind))
        print("exported: " + ", ".join(str(path) for path in exported.values()))
    return 0
