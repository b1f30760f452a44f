"""Collaborative fusion, component by component, against Markov-1 and session-kNN in the same run.

Trains the retrieval model once (the dataset's run config, fusion on), then scores every
test prefix with full ranking for each combination of the score's components: the
catalog softmax, the repeat head's pointer, each neighbour table and the
session-conditioned fusion gate (each table subset gets its own gate fit on validation,
as training fits the full one), the tables' recency decay, the popularity shift counted
with them, and serving tables that also count the validation sessions (what a trained run
serves) or not. Every row is split into test cases whose next item is a
re-visit (already in the session) and new items.

    .venv/bin/python benchmarks/fusion_ablation.py --dataset diginetica   # ~40 min on 2 CPUs
    .venv/bin/python benchmarks/fusion_ablation.py --dataset synthetic    # the demo's shop and config, ~5 min

Writes ``benchmarks/results/fusion_ablation_<dataset>.{json,md}``.
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


def parse_args(argv=None):
    parser = diginetica_parser(__doc__.split("\n\n")[0], default_epochs=12)
    parser.add_argument("--dataset", choices=("diginetica", "synthetic"), default="diginetica")
    parser.set_defaults(config=Path(__file__).resolve().parent / "configs" / "diginetica.json")
    return parse_dataset_args(parser, argv)


def run(args) -> dict:
    from recommenders.evaluation.baselines import MarkovChain, SessionKNN
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.evaluation.harness import _recommend
    from recommenders.features.neighbours import ItemNeighbours
    from recommenders.features.vocabulary import FeatureVocabularies
    from recommenders.models.fusion import NeighbourFusion
    from recommenders.models.inference import SignatureRecommender
    from recommenders.models.serving_modules import RetrievalModule
    from recommenders.models.training import fit_fusion, train_retrieval
    from recsys_base.tf_compat import tensorflow

    tf = tensorflow()

    class StatelessGateFusion(NeighbourFusion):
        """The gate without the session state: weights from the tables' evidence alone."""

        def gate_log_weights(self, state, evidence, table_log_scale=None):
            return super().gate_log_weights(tf.zeros_like(state), evidence, table_log_scale)

    prepared, config = dataset_and_config(args)
    seen = pd.concat([prepared.train, prepared.validation])
    vocab = FeatureVocabularies.build(seen, prepared.catalog)
    cases = make_next_item_cases(prepared.test)
    revisit = np.array([target in prefix for target, prefix in zip(cases.targets, cases.prefix_item_ids)])
    print(f"{len(cases):,} test cases ({revisit.mean():.1%} re-visits), {vocab.num_items:,} items", flush=True)

    started = time.perf_counter()
    model, history = train_retrieval(prepared.train, prepared.validation, prepared.catalog, config.retrieval,
                                     config.train, vocab=vocab)
    train_seconds = time.perf_counter() - started
    print(f"trained (fusion fitted) in {train_seconds:.0f} s: {history.history['fusion']}", flush=True)
    full_fusion = model.fusion
    specs = config.retrieval.neighbour_specs()
    (half_life,) = model.config.neighbour_half_lives  # the recency fit_fusion chose on validation
    # As training does: the gates are fitted with tables of the training sessions, and the
    # model then serves tables of the training and validation sessions (count_served_tables).
    fit_tables = ItemNeighbours.build(prepared.train, vocab.item_ids, specs, half_life)
    served_tables = ItemNeighbours.build(seen, vocab.item_ids, specs, half_life)
    names = list(fit_tables.tables)

    def fusion_of(tables, layer=NeighbourFusion, half_lives=(half_life,)):
        """A gate over ``tables`` fitted as training fits the default one, then serving the served tables."""
        fusion = layer(tables, model.item_encoder.num_indices, config.retrieval.neighbours_per_item,
                       state_dim=full_fusion.state_dim, name="fusion")
        model.fusion = fusion
        model.config = dataclasses.replace(model.config, fusion=True, neighbour_half_lives=half_lives)
        fit = fit_fusion(model, prepared.train, prepared.validation, config.train)
        print(f"  gate fitted for {tables}: {fit}", flush=True)
        (chosen,) = model.config.neighbour_half_lives
        served = ItemNeighbours.build(seen, vocab.item_ids, specs, chosen)
        fusion.set_neighbours(ItemNeighbours({name: served.tables[name] for name in tables}, served.popularity_shift))
        return fusion

    def default_with(tables, popularity_shift=True):
        """The trained default gate serving ``tables`` (with their popularity shift, or none)."""
        fusion = NeighbourFusion.from_config(full_fusion.get_config())
        fusion.set_weights(full_fusion.get_weights())
        fusion.set_neighbours(tables)
        if not popularity_shift:
            fusion.popularity_weight.assign(0.0)
        return fusion

    variants = {
        "catalog softmax only": (False, None),
        "+ repeat pointer (previous model)": (True, None),
        **{f"+ repeat + {name}": (True, lambda name=name: fusion_of([name])) for name in names},
        "+ repeat + all tables, gate without session state": (True, lambda: fusion_of(names, StatelessGateFusion)),
        "+ repeat + all tables, no recency decay": (True, lambda: fusion_of(names, half_lives=(0.0,))),
        "+ repeat + all tables, served without the validation sessions": (True, lambda: default_with(fit_tables)),
        "+ repeat + all tables, no popularity shift": (True, lambda: default_with(served_tables, popularity_shift=False)),
        "+ repeat + all tables, session-conditioned gate (default)": (True, lambda: default_with(served_tables)),
    }
    rows = {}
    for name, (with_repeat, fusion) in variants.items():
        module = RetrievalModule(model, config.train.max_length)
        if not with_repeat:
            module.repeat_heads = [None] * len(module.repeat_heads)
        module.fusion = fusion() if fusion else None
        started = time.perf_counter()
        ranked = _recommend(name, SignatureRecommender(module.retrieve, config.train.max_length), cases, K, 512, True)
        rows[name] = {**split_metrics(ranked, cases, revisit), "seconds": time.perf_counter() - started}
        print(f"{name}: {rows[name]}", flush=True)
    for name, baseline in (("markov-1", MarkovChain()), ("session-knn", SessionKNN())):
        baseline.fit(seen, prepared.catalog)
        started = time.perf_counter()
        rows[name] = {**split_metrics(_recommend(name, baseline, cases, K, 512, True), cases, revisit),
                      "seconds": time.perf_counter() - started}
        print(f"{name}: {rows[name]}", flush=True)
    return {
        "dataset": args.dataset,
        "run_config": config.to_dict(),
        "epochs_run": len(history.history["loss"]),
        "train_seconds": round(train_seconds),
        "fusion_fit": history.history["fusion"],
        "peak_rss_mb": peak_rss_mb(),
        "cases": len(cases),
        "revisit_share": float(revisit.mean()),
        "items": vocab.num_items,
        "rows": rows,
    }


def markdown(result: dict) -> str:
    lines = [
        f"# Fusion ablation on {result['dataset']}",
        "",
        f"{provenance(result)} One training run ({result['epochs_run']} epochs, "
        f"{result['train_seconds']} s including the fusion fit; peak RSS {result['peak_rss_mb']} MB); every row scores "
        f"all {result['cases']:,} test prefixes with full ranking over {result['items']:,} items. "
        f"{100 * result['revisit_share']:.1f}% of next items are re-visits. HR@{K} / MRR@{K} in percent.",
        "",
        "| score | all | re-visits | new items | scoring s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in result["rows"].items():
        cells = [f"{row[part]['HR']:.2f} / {row[part]['MRR']:.2f}" for part in ("all", "revisit", "new")]
        lines.append(f"| {name} | {' | '.join(cells)} | {row['seconds']:.0f} |")
    fit = result["fusion_fit"]
    lines += ["", f"Default gate: fitted in {fit['epochs']} epochs on {fit['examples']:,} validation next items "
              f"(held-out log-likelihood {fit['model']:.3f} model alone, {fit['fitted']:.3f} fused); table half-life "
              f"{fit.get('half_life', 0.0)} of the training span, table scale {fit['table_scale']} and popularity shift "
              f"weight {fit.get('popularity_weight', 0.0)} chosen on "
              f"validation HR@{K} + MRR@{K}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_main(f"fusion_ablation_{args.dataset}", args, run, markdown, hidden_arguments=ignored_options(args))


if __name__ == "__main__":
    sys.exit(main())
