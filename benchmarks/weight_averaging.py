"""What ``TrainConfig.weight_averaging`` buys on Diginetica: the averaged weights beside the training ones.

One training run with the moving average on; after every epoch the same validation cases
(all of them) and, from ``--test-from-epoch`` on, every test prefix are scored twice through
``retrieve`` (full ranking): with the weights the optimizer steps (what a run without
averaging would have, step for step: the average never feeds back into training) and with
their moving average (what validation, early stopping and the fitted model use). So the
two columns are the same trajectory, and their difference is the averaging alone, free of
seed noise. Single member, fusion off (its gate is fitted after training and would mix a
second fit into the comparison).

    .venv/bin/python benchmarks/weight_averaging.py --config benchmarks/configs/diginetica_tuned.json --epochs 4

Writes ``benchmarks/results/weight_averaging.{json,md}``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import diginetica_parser, diginetica_run_config, run_main

import recsys_base  # noqa: F401

TRAINING, AVERAGED = "training weights", "averaged weights"


def parse_args(argv=None):
    parser = diginetica_parser(__doc__.split("\n\n")[0], default_epochs=4)
    parser.add_argument("--weight-averaging", type=float, default=0.99, help="the moving average's momentum per step")
    parser.add_argument("--test-from-epoch", type=int, default=3,
                        help="first epoch whose weights are also scored on the test prefixes (about 100 s each)")
    return parser.parse_args(argv)


def run(args) -> dict:
    from recommenders.data.loaders import load_srgnn_splits
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.features.vocabulary import FeatureVocabularies
    from recommenders.models.training import train_retrieval
    from recommenders.models.validation import retrieval_metrics
    from recsys_base.tf_compat import tensorflow

    tf = tensorflow()
    config = diginetica_run_config(args)
    config.retrieval = dataclasses.replace(config.retrieval, fusion=False, ensemble_size=1).validate()
    config.train = dataclasses.replace(config.train, weight_averaging=args.weight_averaging,
                                       early_stopping_patience=0).validate()
    prepared = load_srgnn_splits(args.data_dir, validation_fraction=args.validation_fraction)
    vocab = FeatureVocabularies.build(pd.concat([prepared.train, prepared.validation]), prepared.catalog)
    splits = {"validation": make_next_item_cases(prepared.validation), "test": make_next_item_cases(prepared.test)}
    rows = []

    def score(model, epoch: int, weights: str) -> None:
        started = time.perf_counter()
        row = {"epoch": epoch, "weights": weights}
        for split, cases in splits.items():
            if split == "validation" or epoch >= args.test_from_epoch:
                metrics = retrieval_metrics(model, cases, (20,), config.train.max_length)
                row.update({f"{split} {name[len('val_'):]}": value for name, value in metrics.items()})
        rows.append(row)
        print(f"epoch {epoch}, {weights}: " + ", ".join(f"{k} {100 * v:.2f}" for k, v in row.items() if "@" in k)
              + f" ({time.perf_counter() - started:.0f} s)", flush=True)

    class ScoreBoth(tf.keras.callbacks.Callback):
        """Keeps the training weights of each epoch's last step; at the epoch's end, when
        the model holds the average, scores both."""

        def on_train_batch_end(self, batch, logs=None):
            if batch + 1 == self.params["steps"]:
                self.training = [variable.numpy() for variable in self.model.trainable_variables]

        def on_epoch_end(self, epoch, logs=None):
            variables = self.model.trainable_variables
            averaged = [variable.numpy() for variable in variables]
            score(self.model, epoch + 1, AVERAGED)
            for variable, value in zip(variables, self.training):
                variable.assign(value)
            score(self.model, epoch + 1, TRAINING)
            for variable, value in zip(variables, averaged):
                variable.assign(value)

    started = time.perf_counter()
    _, history = train_retrieval(prepared.train, prepared.validation, prepared.catalog, config.retrieval, config.train,
                                 vocab=vocab, extra_callbacks=[ScoreBoth()])
    return {
        "dataset": "diginetica (SR-GNN preprocessing)",
        "run_config": config.to_dict(),
        "cases": {split: len(cases) for split, cases in splits.items()},
        "seconds": round(time.perf_counter() - started),
        "training_loss": [float(value) for value in history.history["loss"]],
        "rows": rows,
    }


def markdown(result: dict) -> str:
    from common import provenance

    momentum = result["run_config"]["train"]["weight_averaging"]
    lines = ["| epoch | validation HR@20 / MRR@20, training weights | averaged | difference "
             "| test HR@20 / MRR@20, training weights | averaged | difference |", "|---:|---|---|---|---|---|---|"]
    by_epoch = {}
    for row in result["rows"]:
        by_epoch.setdefault(row["epoch"], {})[row["weights"]] = row
    for epoch, pair in sorted(by_epoch.items()):
        cells = []
        for split in ("validation", "test"):
            if f"{split} HR@20" not in pair[TRAINING]:
                cells += ["", "", ""]
                continue
            values = {weights: (100 * pair[weights][f"{split} HR@20"], 100 * pair[weights][f"{split} MRR@20"])
                      for weights in (TRAINING, AVERAGED)}
            (hr, mrr), (hr_avg, mrr_avg) = values[TRAINING], values[AVERAGED]
            cells += [f"{hr:.2f} / {mrr:.2f}", f"{hr_avg:.2f} / {mrr_avg:.2f}", f"{hr_avg - hr:+.2f} / {mrr_avg - mrr:+.2f}"]
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return "\n".join([
        "# Weight averaging on Diginetica (SR-GNN split): one run, both sets of weights",
        "",
        f"{provenance(result)} Momentum {momentum} per step; single member, fusion off; "
        f"{result['cases']['validation']:,} validation and {result['cases']['test']:,} test cases, full ranking "
        f"over all items (percent); {result['seconds']} s in all.",
        "",
        *lines,
        "",
    ])


def main(argv=None) -> int:
    return run_main("weight_averaging", parse_args(argv), run, markdown)


if __name__ == "__main__":
    sys.exit(main())
