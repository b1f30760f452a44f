"""Where a retrieval training step's time goes, on Diginetica: the same model with one part changed at a time.

Issue 13's bar includes "within an hour on 2 CPUs", and a 3-member ensemble is close to
that hour on slower machines, so what a training step spends its time on decides what to
make cheaper. Every variant trains the same single-member model (the run config's
retrieval with fusion off: the tables cost nothing per step) on the same batches from the
same initial weights; steps per second are measured after a warm-up (tracing, the
dataset's cache), side by side in one process, and given as a ratio to the unchanged model.
The variants are timed in turn, ``--rounds`` times over, and each keeps its fastest round:
on a shared machine a slow phase of a few minutes (seen here: a third of the speed) would
otherwise land on whichever variant ran then.

    .venv/bin/python benchmarks/retrieval_step_cost.py --config benchmarks/configs/diginetica_tuned.json

Writes ``benchmarks/results/retrieval_step_cost.{json,md}``. Steps per second say nothing
about quality: a variant that is faster may learn less per step (see the README).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, RESULTS, diginetica_run_config, provenance, run_main

import recsys_base  # noqa: F401

UNCHANGED = "unchanged"


def variants(retrieval) -> dict:
    """Name -> (retrieval config changes, Keras precision policy) of every variant timed."""
    return {
        UNCHANGED: ({}, "float32"),
        "half the extra negatives": ({"extra_negatives": retrieval.extra_negatives // 2}, "float32"),
        "no extra negatives": ({"extra_negatives": 0}, "float32"),
        "no repeat head": ({"repeat_head": False}, "float32"),
        "half the LSTM units": ({"lstm_units": retrieval.lstm_units // 2}, "float32"),
        "mixed_bfloat16 policy (not a TrainConfig option)": ({}, "mixed_bfloat16"),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    parser.add_argument("--config", type=Path, help="JSON run config whose sections override defaults")
    parser.add_argument("--steps", type=int, default=200, help="timed training steps per variant")
    parser.add_argument("--warmup-steps", type=int, default=40, help="untimed steps before them")
    parser.add_argument("--rounds", type=int, default=3, help="times every variant is timed; its fastest is kept")
    # diginetica_run_config reads these; this benchmark trains by steps with the config's own batch settings.
    parser.set_defaults(epochs=1, batch_size=None, learning_rate=None)
    return parser.parse_args(argv)


def run(args) -> dict:
    from recommenders.data.loaders import load_srgnn_splits
    from recommenders.features.sequences import sessions_to_arrays, to_dataset
    from recommenders.features.vocabulary import FeatureVocabularies
    from recommenders.models.retrieval import SessionRetrievalModel
    from recommenders.models.training import make_optimizer
    from recsys_base.errors import ConfigError
    from recsys_base.tf_compat import tensorflow

    tf = tensorflow()
    for option in ("steps", "warmup_steps", "rounds"):
        if getattr(args, option) < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    config = diginetica_run_config(args)
    base = dataclasses.replace(config.retrieval, fusion=False, ensemble_size=1)
    prepared = load_srgnn_splits(args.data_dir, validation_fraction=0.02)
    vocab = FeatureVocabularies.build(prepared.train, prepared.catalog)
    batches = to_dataset(sessions_to_arrays(prepared.train, config.train.max_length), config.train.batch_size,
                         shuffle=True, seed=config.train.seed, bucket_by_length=True).repeat()
    models = {}
    for name, (changes, policy) in variants(base).items():
        print(f"building and warming up {name} ...", flush=True)
        tf.keras.utils.set_random_seed(config.train.seed)
        tf.keras.mixed_precision.set_global_policy(policy)
        try:
            models[name] = SessionRetrievalModel(vocab, dataclasses.replace(base, **changes).validate())
        finally:
            tf.keras.mixed_precision.set_global_policy("float32")
        models[name].compile(optimizer=make_optimizer(config.train))
        models[name].fit(batches, steps_per_epoch=args.warmup_steps, epochs=1, verbose=0)
    rounds = {name: [] for name in models}
    for number in range(args.rounds):
        for name, model in models.items():
            started = time.perf_counter()
            model.fit(batches, steps_per_epoch=args.steps, epochs=1, verbose=0)
            rounds[name].append(args.steps / (time.perf_counter() - started))
            print(f"round {number + 1}, {name}: {rounds[name][-1]:.2f} steps/s", flush=True)
    rows = [{"variant": name, "steps_per_second": max(speeds), "rounds": speeds} for name, speeds in rounds.items()]
    reference = rows[0]["steps_per_second"]
    for row in rows:
        row["ratio"] = row["steps_per_second"] / reference
    return {"run_config": config.to_dict(), "rows": rows}


def markdown(result: dict) -> str:
    lines = ["| variant | steps/s (fastest round) | ratio to unchanged | every round |", "|---|---:|---:|---|"]
    lines += [f"| {row['variant']} | {row['steps_per_second']:.2f} | {row['ratio']:.2f} | "
              f"{', '.join(f'{speed:.2f}' for speed in row['rounds'])} |" for row in result["rows"]]
    return "\n".join([
        "# Retrieval training step cost on Diginetica, one part changed at a time",
        "",
        f"{provenance(result)} Single member, fusion off, the run config's batch size; the same batches and "
        "initial weights for every variant.",
        "",
        *lines,
        "",
    ])


def main(argv=None) -> int:
    return run_main("retrieval_step_cost", parse_args(argv), run, markdown,
                    hidden_arguments=("epochs", "batch_size", "learning_rate"))


if __name__ == "__main__":
    sys.exit(main())
