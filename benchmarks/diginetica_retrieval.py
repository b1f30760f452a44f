"""The LSTM two-tower retrieval model on the SR-GNN Diginetica benchmark, against baselines.

Trains on the benchmark's training sessions (every position of every session in one
pass), ranks all 43,097 items for every one of the 60,858 test prefixes, and scores
popularity, Markov-1 and session-kNN in the same run on the same cases. Also measures
training throughput (next-item examples per second) against a straightforward
TFRS-tutorial-style version of the same towers: one padded example per prefix
(719,470 prefix/label pairs), fixed-length batches, loss on the last position only.

    .venv/bin/python benchmarks/diginetica_retrieval.py [--epochs N] [--data-dir DIR]

Writes ``benchmarks/results/diginetica_retrieval.{json,md}``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import diginetica_parser, diginetica_run_config, peak_rss_mb, provenance, run_main

import recsys_base  # noqa: F401


def parse_args(argv=None):
    parser = diginetica_parser(__doc__.split("\n\n")[0], default_epochs=12)
    parser.add_argument("--throughput-steps", type=int, default=120, help="steps timed per training style")
    return parser.parse_args(argv)


def tutorial_examples(events: pd.DataFrame, max_length: int):
    """Every prefix of every session as its own example: (last max_length items, label)."""
    ordered = events.sort_values(["session_id", "timestamp"], kind="stable")
    rows, labels = [], []
    for items in ordered.groupby("session_id", sort=False)["item_id"].agg(list):
        for end in range(1, len(items)):
            prefix = items[max(0, end - max_length):end]
            rows.append(prefix + [""] * (max_length - len(prefix)))
            labels.append(items[end])
    return np.array(rows, dtype=object), np.array(labels, dtype=object)


def throughput(model_config, train_config, vocab, train_events, steps: int) -> dict:
    """Examples/s of this project's training vs. a tutorial-style loop with the same towers."""
    from recommenders.features.sequences import sessions_to_arrays, to_dataset
    from recommenders.models.retrieval import SessionRetrievalModel
    from recommenders.models.towers import last_position
    from recommenders.models.training import make_optimizer
    from recsys_base.tf_compat import tensorflow, tfrs
    from serving import contract

    tf, tfrs = tensorflow(), tfrs()

    class TutorialRetrieval(tfrs.Model):
        def __init__(self):
            super().__init__()
            reference = SessionRetrievalModel(vocab, model_config)
            self.session_encoder, self.item_encoder = reference.session_encoder, reference.item_encoder
            self.task = tfrs.tasks.Retrieval()

        def compute_loss(self, features, training=False):
            embeddings, mask = self.session_encoder(features, training=training)
            return self.task(last_position(embeddings, mask), self.item_encoder(features["label"]), compute_metrics=False)

    results = {}
    ours = SessionRetrievalModel(vocab, model_config)
    ours.compile(make_optimizer(train_config))
    ours_data = to_dataset(sessions_to_arrays(train_events, train_config.max_length), train_config.batch_size,
                           shuffle=True, bucket_by_length=True).repeat()

    prefixes, labels = tutorial_examples(train_events, train_config.max_length)
    tutorial = TutorialRetrieval()
    tutorial.compile(make_optimizer(train_config))
    zeros = np.zeros(prefixes.shape, dtype=np.int64)
    tutorial_data = tf.data.Dataset.from_tensor_slices({
        contract.SESSION_ITEM_IDS: prefixes.astype(str),
        contract.SESSION_EVENT_TYPES: np.where(prefixes != "", "view", "").astype(str),
        contract.SESSION_TIMESTAMPS: zeros,
        contract.USER_ID: np.full(len(labels), ""),
        contract.QUERY: np.full(len(labels), ""),
        "label": labels.astype(str),
    }).shuffle(100_000).batch(train_config.batch_size).repeat()

    for name, model, data in (("this project (all positions, length buckets)", ours, ours_data),
                              ("TFRS tutorial style (one example per prefix)", tutorial, tutorial_data)):
        timed = data.take(steps).cache()
        examples = 0
        for batch in timed:  # fills the cache so input preparation is not timed
            items = batch[contract.SESSION_ITEM_IDS].numpy()
            examples += len(items) if "label" in batch else int((items[:, 1:] != b"").sum())
        model.fit(timed.take(5), verbose=0)  # trace and warm up
        started = time.perf_counter()
        model.fit(timed, verbose=0)
        seconds = time.perf_counter() - started
        results[name] = {"examples_per_second": examples / seconds, "steps": steps, "seconds": seconds}
        print(f"  {name}: {examples / seconds:,.0f} examples/s", flush=True)
    return results


def run(args) -> dict:
    from recommenders.data.loaders import load_srgnn_splits
    from recommenders.evaluation.baselines import MarkovChain, Popularity, SessionKNN
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.evaluation.harness import evaluate
    from recommenders.evaluation.report import EvaluationReport
    from recommenders.features.vocabulary import FeatureVocabularies
    from recommenders.models.inference import SignatureRecommender
    from recommenders.models.serving_modules import RetrievalModule
    from recommenders.models.training import train_retrieval
    config = diginetica_run_config(args)

    started = time.perf_counter()
    prepared = load_srgnn_splits(args.data_dir, validation_fraction=args.validation_fraction)
    seen = pd.concat([prepared.train, prepared.validation])
    vocab = FeatureVocabularies.build(seen, prepared.catalog)
    cases = make_next_item_cases(prepared.test)
    print(f"loaded {len(cases):,} test cases, {vocab.num_items:,} items in {time.perf_counter() - started:.0f}s", flush=True)

    print("training throughput, side by side:", flush=True)
    speed = throughput(config.retrieval, config.train, vocab, prepared.train, args.throughput_steps)

    started = time.perf_counter()
    model, history = train_retrieval(prepared.train, prepared.validation, prepared.catalog, config.retrieval,
                                     config.train, vocab=vocab)
    train_seconds = time.perf_counter() - started
    module = RetrievalModule(model, config.train.max_length)
    ours = evaluate({"LSTM two-tower retrieval (this project)": SignatureRecommender(module.retrieve, config.train.max_length)},
                    cases, (5, 10, 20), catalog_size=vocab.num_items)
    baselines = evaluate({"popularity": Popularity(), "markov-1": MarkovChain(), "session-knn": SessionKNN()},
                         cases, (5, 10, 20), train_events=seen, catalog=prepared.catalog)
    report = EvaluationReport(k_values=ours.k_values, n_cases=ours.n_cases, catalog_size=ours.catalog_size,
                              results=[dataclasses.replace(ours.results[0], fit_seconds=train_seconds), *baselines.results])
    return {
        "dataset": "diginetica (SR-GNN preprocessing)",
        "run_config": config.to_dict(),
        "epochs_run": len(history.history["loss"]),
        "train_seconds": round(train_seconds),
        "peak_rss_mb": peak_rss_mb(),
        "throughput": speed,
        "evaluation": report.to_dict(),
        "table": report.format_table(),
    }


def markdown(result: dict) -> str:
    speed = result["throughput"]
    (ours_name, ours), (tutorial_name, tutorial) = speed.items()
    rows = ["| model | HR@20 | MRR@20 |", "|---|---:|---:|"]
    for model in result["evaluation"]["results"]:
        rows.append(f"| {model['name']} | {100 * model['metrics']['HR@20']:.2f} | {100 * model['metrics']['MRR@20']:.2f} |")
    rows += ["| SR-GNN (published) | 50.73 | 17.59 |", "| GCE-GNN (published) | 54.22 | 19.04 |"]
    return "\n".join([
        "# LSTM two-tower retrieval on Diginetica (SR-GNN split)",
        "",
        f"{provenance(result)} Training: {result['epochs_run']} epochs in "
        f"{result['train_seconds']} s; peak RSS {result['peak_rss_mb']} MB.",
        "Full ranking over all items, every test prefix (percent):",
        "",
        *rows,
        "",
        "All metrics:",
        "",
        result["table"],
        "",
        "Training throughput (next-item examples per second, same towers, same data, same run):",
        "",
        "| training style | examples/s |",
        "|---|---:|",
        f"| {ours_name} | {ours['examples_per_second']:,.0f} |",
        f"| {tutorial_name} | {tutorial['examples_per_second']:,.0f} |",
        f"| ratio | {ours['examples_per_second'] / tutorial['examples_per_second']:.1f}x |",
        "",
    ])


def main(argv=None) -> int:
    return run_main("diginetica_retrieval", parse_args(argv), run, markdown)


if __name__ == "__main__":
    sys.exit(main())
