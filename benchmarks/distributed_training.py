"""One process against a 2-worker ``MultiWorkerMirroredStrategy`` cluster: training speed and final quality.

Trains the Diginetica retrieval model (``benchmarks/configs/diginetica.json``) for the same
fixed number of epochs (no early stopping, so both do the same work) twice, each in fresh
processes: once in one process (``--distribute none``), once as ``--workers`` worker
processes on loopback that split every global batch (``multi-worker``, ``TF_CONFIG`` per
process, as ``deploy/README.md`` runs it on Kubernetes). Reports training positions per
second of the training epochs alone (validation and the fusion fit excluded), wall time
of the whole training, and HR@20 / MRR@20 of both models on the test set in the same run.

On one machine the workers share its cores, so the table measures what the strategy costs
(collective all-reduce over gRPC, half batches per worker), not what more machines gain:
with W machines of this size, expect at most W times the per-worker rate shown here.

    .venv/bin/python benchmarks/distributed_training.py [--epochs 2] [--workers 2]
        [--max-train-sessions N] [--test-cases N]

Writes ``benchmarks/results/distributed_training.{json,md}``; rerun with the same
``--work-dir`` to reuse finished trainings. ``--max-train-sessions`` and
``--test-cases`` shrink a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, diginetica_parser, diginetica_run_config, peak_rss_mb, provenance, run_main

import recsys_base  # noqa: F401

MODES = ("none", "multi-worker")


def parse_args(argv=None):
    parser = diginetica_parser(__doc__.split("\n\n")[0], default_epochs=2)
    parser.set_defaults(config=REPO / "benchmarks" / "configs" / "diginetica.json")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the multi-worker run")
    parser.add_argument("--max-train-sessions", type=int, help="smoke runs: keep only the latest N training sessions")
    parser.add_argument("--test-cases", type=int, help="smoke runs: score a fixed random subset of N test cases")
    parser.add_argument("--work-dir", type=Path, help="where the trained models go (default: a temporary directory)")
    # One training process, started by this script (not for command-line use).
    parser.add_argument("--train-into", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--distribute", choices=MODES, default="none", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def load(args):
    from recommenders.data.loaders import load_srgnn_splits
    from recommenders.data.split import latest_sessions

    prepared = load_srgnn_splits(args.data_dir, validation_fraction=args.validation_fraction)
    prepared.train = latest_sessions(prepared.train, args.max_train_sessions)
    return prepared


def training_process(args) -> None:
    """Trains the retrieval model under ``args.distribute`` and, on the chief, writes the
    model and ``timing.json`` into ``args.train_into``; every worker takes part in saving."""
    from recommenders.features.sequences import sessions_to_arrays
    from recommenders.features.vocabulary import FeatureVocabularies
    from recommenders.models.distribute import is_chief, leave_together, strategy_for, written_by_chief
    from recommenders.models.training import save_trained, train_retrieval
    from recsys_base.tf_compat import tensorflow

    tf = tensorflow()
    config = diginetica_run_config(args)
    config.train.distribute, config.train.early_stopping_patience = args.distribute, 0
    strategy = strategy_for(args.distribute)  # a multi-worker process joins its cluster before any other op
    prepared = load(args)
    vocab = FeatureVocabularies.build(prepared.train, prepared.catalog)

    class EpochTimer(tf.keras.callbacks.Callback):
        """Wall and CPU seconds of each epoch's training batches: from the epoch's start to its validation."""

        def __init__(self):
            super().__init__()
            self.seconds, self.cpu_seconds = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.cpu_started = time.perf_counter(), time.process_time()

        def on_test_begin(self, logs=None):
            self.seconds.append(time.perf_counter() - self.started)
            self.cpu_seconds.append(time.process_time() - self.cpu_started)

    timer = EpochTimer()
    started = time.perf_counter()
    model, history = train_retrieval(prepared.train, prepared.validation, prepared.catalog, config.retrieval,
                                     config.train, vocab=vocab, extra_callbacks=[timer])
    wall = time.perf_counter() - started
    # Every worker's CPU time of the training batches, summed (one replica per worker on CPUs):
    # the work the cluster spent, whatever else ran on the machine meanwhile.
    cpu = float(strategy.reduce(tf.distribute.ReduceOp.SUM,
                                strategy.run(lambda: tf.constant(sum(timer.cpu_seconds), tf.float64)), axis=None))
    with written_by_chief(args.train_into / "model", strategy) as directory:
        save_trained(model, directory)
    if is_chief(strategy):
        lengths = sessions_to_arrays(prepared.train, config.train.max_length).lengths
        (args.train_into / "timing.json").write_text(json.dumps({
            "replicas": strategy.num_replicas_in_sync,
            "positions_per_epoch": int(np.sum(lengths - 1)),
            "epoch_train_seconds": timer.seconds,
            "train_cpu_seconds": cpu,
            "wall_seconds": wall,
            "final_train_loss": float(history.history["loss"][-1]),
            "validation": {name: float(values[-1]) for name, values in history.history.items()
                           if name in ("val_HR@20", "val_MRR@20")},
        }, indent=1))
    leave_together(strategy)


def train_in_processes(args, mode: str, directory: Path) -> dict:
    """Runs one training (``workers`` processes for multi-worker) and returns its ``timing.json``;
    a training finished by an earlier run into the same ``--work-dir`` is reused."""
    if (directory / "timing.json").is_file():
        return json.loads((directory / "timing.json").read_text())
    command = [sys.executable, __file__, *args.argv, "--train-into", str(directory), "--distribute", mode]
    from recommenders.models.distribute import loopback_tf_configs

    environments = [dict(os.environ)]
    if mode == "multi-worker":
        environments = [{**os.environ, "TF_CONFIG": tf_config} for tf_config in loopback_tf_configs(args.workers)]
    directory.mkdir(parents=True, exist_ok=True)
    logs = [open(directory / f"worker{index}.log", "w") for index in range(len(environments))]
    print(f"training with --distribute {mode} ({len(environments)} process(es), logs in {directory})", flush=True)
    processes = [subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
                 for environment, log in zip(environments, logs)]
    codes = [process.wait() for process in processes]
    for log in logs:
        log.close()
    if any(codes):
        tail = (directory / "worker0.log").read_text()[-3000:]
        raise RuntimeError(f"--distribute {mode} training failed (exit codes {codes}):\n{tail}")
    return json.loads((directory / "timing.json").read_text())


def run(args) -> dict:
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.evaluation.harness import evaluate
    from recommenders.models.inference import SignatureRecommender
    from recommenders.models.serving_modules import RetrievalModule
    from recommenders.models.training import load_trained

    config = diginetica_run_config(args)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="distributed-training-"))
    timings = {mode: train_in_processes(args, mode, work_dir / mode) for mode in MODES}

    cases = make_next_item_cases(load(args).test).subset(args.test_cases or None)
    models = {mode: load_trained(work_dir / mode / "model") for mode in MODES}
    modules = {mode: RetrievalModule(model, config.train.max_length) for mode, model in models.items()}
    report = evaluate({mode: SignatureRecommender(module.retrieve, module.max_session_events)
                       for mode, module in modules.items()}, cases, (20,), catalog_size=models["none"].vocab.num_items)
    rows = {}
    for result in report.results:
        timing = timings[result.name]
        train_seconds = sum(timing["epoch_train_seconds"])
        rows[result.name] = {
            "processes": 1 if result.name == "none" else args.workers,
            "replicas": timing["replicas"],
            "positions_per_second": round(timing["positions_per_epoch"] * args.epochs / train_seconds),
            "positions_per_cpu_second": (round(timing["positions_per_epoch"] * args.epochs / timing["train_cpu_seconds"])
                                         if "train_cpu_seconds" in timing else None),
            "epoch_train_seconds": [round(s, 1) for s in timing["epoch_train_seconds"]],
            "wall_seconds": round(timing["wall_seconds"]),
            "final_train_loss": timing["final_train_loss"],
            "validation": timing["validation"],
            "test": {"HR@20": result.metrics["HR@20"], "MRR@20": result.metrics["MRR@20"]},
        }
    return {
        "dataset": "diginetica (SR-GNN preprocessing)",
        "positions_per_epoch": timings["none"]["positions_per_epoch"],
        "test_cases": len(cases),
        "peak_rss_mb": peak_rss_mb(),
        "rows": rows,
    }


def markdown(result: dict) -> str:
    rows = ["| training | processes | positions/s | positions/CPU-s | epoch training s | whole training s | val HR@20 "
            "| test HR@20 | test MRR@20 |", "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for mode, row in result["rows"].items():
        per_cpu = row.get("positions_per_cpu_second")
        rows.append(f"| {'one process' if mode == 'none' else mode} | {row['processes']} | "
                    f"{row['positions_per_second']:,} | {f'{per_cpu:,}' if per_cpu else 'not measured'} | "
                    f"{', '.join(map(str, row['epoch_train_seconds']))} | "
                    f"{row['wall_seconds']:,} | {100 * row['validation'].get('val_HR@20', float('nan')):.2f} | "
                    f"{100 * row['test']['HR@20']:.2f} | {100 * row['test']['MRR@20']:.2f} |")
    single, multi = result["rows"]["none"], result["rows"]["multi-worker"]
    return "\n".join([
        "# One process against a multi-worker cluster (Diginetica retrieval)",
        "",
        f"{provenance(result)} {result['positions_per_epoch']:,} training positions per epoch, same epochs for both, no early stopping; "
        f"{result['test_cases']:,} test cases, full ranking, percent.",
        "",
        *rows,
        "",
        f"Throughput ratio, cluster / one process: {multi['positions_per_second'] / single['positions_per_second']:.2f}. "
        "All worker processes ran on this one machine and shared its cores: the ratio is the strategy's cost "
        "(gradients all-reduced over gRPC every step), not the speed-up of more machines. Positions per CPU-second "
        "(all workers' CPU time summed) is the work each position costs, robust to other load on the machine.",
        "",
    ])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.train_into:  # one training process of a run
        training_process(args)
        return 0
    return run_main("distributed_training", args, run, markdown, hidden_arguments=("train_into", "distribute", "argv"))


if __name__ == "__main__":
    sys.exit(main())
