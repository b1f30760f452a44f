"""``recsys train | evaluate | export | retrain | demo``: model commands over data and run directories."""

from __future__ import annotations

import argparse
from pathlib import Path

from recommenders.models.config import TrainConfig
from recsys.cli.flags import field_flag, field_values
from recsys.retrain import RetrainConfig
from recsys.workflow import RUN_SECTIONS
from recsys_base.errors import ConfigError

# Flags that override single settings of the run config: field -> the section(s) it sets.
OVERRIDES = {
    "epochs": ("train",),
    "batch_size": ("train",),
    "learning_rate": ("train",),
    "max_length": ("train",),
    "seed": ("train",),
    "embedding_dim": ("retrieval", "ranking"),
    "lstm_units": ("retrieval", "ranking"),
}


def _add_run_config_flags(parser) -> None:
    parser.add_argument("--config", type=Path, help=f"JSON run config (sections {', '.join(RUN_SECTIONS)})")
    for field, sections in OVERRIDES.items():
        # No argparse default: None means "not given", so the config file's value (or the
        # dataclass default) stays. The type is the field's.
        default = getattr(RUN_SECTIONS[sections[0]], field)
        parser.add_argument(f"--{field.replace('_', '-')}", dest=field, type=type(default),
                            help=f"override {field} (default without --config: {default})")
    parser.add_argument("--mixed-precision", action="store_true", help="train in mixed_float16 (for GPUs)")
    parser.add_argument("--distribute", choices=TrainConfig.DISTRIBUTE,
                        help="tf.distribute strategy: mirrored over this machine's GPUs, or multi-worker over the "
                             "cluster in the TF_CONFIG environment variable (default without --config: none)")


def run_config(args):
    """The run config from ``--config`` (or defaults) with flag overrides, validated."""
    from recsys.workflow import RunConfig

    values = (RunConfig.from_file(args.config) if args.config else RunConfig()).to_dict()
    for field, sections in OVERRIDES.items():
        value = getattr(args, field)
        if value is not None:
            for section in sections:
                values[section][field] = value
    if args.mixed_precision:
        values["train"]["mixed_precision"] = True
    if args.distribute is not None:
        values["train"]["distribute"] = args.distribute
    return RunConfig.from_dict(values, source="--config and flags")


def _positive_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"every K must be at least 1, got {text!r}")
    return ks


def register(subparsers) -> None:
    """Adds ``train``, ``evaluate``, ``export`` and ``demo`` to the ``recsys`` parser."""
    train = subparsers.add_parser("train", help="train retrieval and ranking on a prepared data directory")
    train.add_argument("--data", required=True, type=Path, help="prepared data directory (recsys data generate/import)")
    train.add_argument("--run", required=True, type=Path, help="run directory for weights, TensorBoard logs and resume state")
    train.add_argument("--overwrite", action="store_true", help="replace a finished run in --run")
    _add_run_config_flags(train)
    train.set_defaults(func=_train)

    evaluate = subparsers.add_parser("evaluate", help="HR/MRR/NDCG@K and coverage of a run against baselines")
    evaluate.add_argument("--data", required=True, type=Path, help="prepared data directory")
    evaluate.add_argument("--run", required=True, type=Path, help="trained run directory")
    evaluate.add_argument("--split", default="test", choices=("validation", "test"),
                          help="test (default); on validation the trained neighbour tables already count those sessions")
    evaluate.add_argument("--k", type=_positive_ks, default=(5, 10, 20), help="cut-offs, e.g. 5,10,20")
    evaluate.add_argument("--no-baselines", action="store_true", help="skip popularity, Markov-1 and session-kNN")
    evaluate.add_argument("--json", type=Path, help="also write the results here as JSON")
    evaluate.set_defaults(func=_evaluate)

    export = subparsers.add_parser("export", help="export a run as SavedModels for TensorFlow Serving")
    export.add_argument("--run", required=True, type=Path, help="trained run directory")
    export.add_argument("--base", type=Path, default=Path("saved_models"), help="model base directory")
    export.add_argument("--version", type=int, help="version number (default: next free)")
    export.set_defaults(func=_export)

    retrain = subparsers.add_parser(
        "retrain", help="warm-start the last run on new data, export the next version, gate it against stable",
        description="Grows the last run's vocabularies by the new items, copies its weights, trains on the new sessions "
        "plus a replay of older ones, exports the next version and promotes it (moves stable in the models config) "
        "only if it scores at least as well as the serving version on the latest new sessions.")
    retrain.add_argument("--from", dest="previous_run", required=True, type=Path, help="the last run directory (the serving version's)")
    retrain.add_argument("--events", required=True, type=Path, help="new events since that run (csv or parquet, canonical columns)")
    retrain.add_argument("--catalog", required=True, type=Path, help="the current catalog (csv or parquet); must keep every served item")
    retrain.add_argument("--run", required=True, type=Path, help="run directory for the retrained models")
    retrain.add_argument("--base", type=Path, default=Path("saved_models"), help="model base directory to export to")
    retrain.add_argument("--models-config", required=True, type=Path, help="models.config whose stable label names the serving version")
    retrain.add_argument("--server", action="append", default=[], metavar="HOST:PORT",
                         help="running server to reload with the new labels, repeatable (TF Serving's two-step label move)")
    retrain.add_argument("--overwrite", action="store_true", help="replace a finished run in --run")
    for field, text in (("epochs", "epochs from the warm start"), ("replay_ratio", "older sessions replayed per new session"),
                        ("validation_fraction", "share of new sessions (before the holdout) for validation"),
                        ("holdout_fraction", "share of the latest new sessions the gate scores on"),
                        ("new_item_init", "new items' id embeddings: category_mean, zeros or random"),
                        ("gate_k", "the gate's cut-off K"), ("max_drop", "largest HR@K drop vs stable that still promotes"),
                        ("seed", "seed of the replay sample")):
        field_flag(retrain, RetrainConfig, field, text)
    retrain.set_defaults(func=_retrain)

    demo = subparsers.add_parser("demo", help="generate the synthetic shop, train, evaluate, export, recommend")
    demo.add_argument("--workdir", type=Path, default=Path("artifacts/demo"), help="where data and the run go")
    demo.add_argument("--base", type=Path, default=Path("saved_models"), help="model base directory for the export")
    demo.add_argument("--small", action="store_true", help="the small test-size shop (faster)")
    _add_run_config_flags(demo)
    demo.set_defaults(func=_demo)


def _train(args) -> int:
    from recsys.workflow import train_run

    metrics = train_run(args.data, args.run, run_config(args), overwrite=args.overwrite)
    for part, values in metrics.items():
        shown = ", ".join(f"{name.removeprefix('val_')}={value:.4g}" for name, value in sorted(values.items())
                          if "loss" not in name and isinstance(value, (int, float)))
        print(f"{part}: {shown}")
    print(f"trained models in {args.run}; TensorBoard: tensorboard --logdir {args.run / 'logs'}")
    return 0


def _print_evaluation(result) -> None:
    print(result.overall.format_table())
    if result.search is not None:
        print("\nPersonalized search (cases where the shopper searched before the target):")
        print(result.search.format_table())


def _evaluate(args) -> int:
    from recsys.workflow import evaluate_run

    _print_evaluation(evaluate_run(args.data, args.run, args.split, args.k, not args.no_baselines, args.json))
    return 0


def _export(args) -> int:
    from recsys.workflow import export_run

    if args.version is not None and args.version < 1:
        raise ConfigError(f"--version must be a positive whole number, got {args.version}")
    if args.base.exists() and not args.base.is_dir():
        raise ConfigError(f"--base {args.base} is a file, not a directory")
    for name, path in export_run(args.run, args.base, args.version).items():
        print(f"exported {name}: {path}")
    return 0


def _retrain(args) -> int:
    from recsys.retrain import load_new_data, release, retrain_run, stable_version

    config = RetrainConfig(**field_values(args, RetrainConfig)).validate()
    serving = stable_version(args.models_config)  # before any work: no serving version, nothing to gate against
    result = retrain_run(args.previous_run, load_new_data(args.events, args.catalog), args.run, config, args.overwrite)
    print(f"retrained {args.run} from {args.previous_run} (serving version {serving}): {len(result.new_items)} new items")
    decision = release(result, args.base, args.models_config, args.server)
    print(decision.reason)
    return 0


def _demo(args) -> int:
    from recsys.workflow import demo

    config = run_config(args)
    if config.train.distribute == "multi-worker":
        raise ConfigError("--distribute multi-worker: demo runs on one machine; run `recsys train` on every worker instead")
    demo(args.workdir, args.base, config, small=args.small)
    return 0
