"""Cold start and warm-started retrains: new items' HR@20 by how their embeddings start.

A base run is trained on the old days; the new days (sessions after its cutoff, with
items that first appear then) are the new data. On the latest new sessions (the retrain's
holdout) it scores, in the same run:

* warm-started retrains (``recsys retrain``: recent window + replay, 2 epochs) whose new
  items start from their category's mean id embedding, from zeros, or randomly;
* a full retrain from scratch on all old and new training sessions (the base run's epochs);
* popularity over the same training sessions;

each on every holdout case and on the *cold-start* cases, whose target item first
appeared after the base run's cutoff. Wall time is each variant's training (and fitting).

    .venv/bin/python benchmarks/cold_start.py --source synthetic
    .venv/bin/python benchmarks/cold_start.py --source diginetica [--sample-sessions N]

Diginetica (SR-GNN files) keeps training sessions in time order: the latest
``--new-fraction`` of them stand in for the new days. Writes
``benchmarks/results/cold_start[_diginetica].{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, RESULTS, diginetica_run_config, provenance, run_main

K = 20
SYNTHETIC_RUN = {"train": {"epochs": 8, "batch_size": 128, "early_stopping_patience": 0, "verbose": 0},
                 "retrieval": {"embedding_dim": 32, "output_dim": 32, "lstm_units": 64},
                 "ranking": {"embedding_dim": 32, "output_dim": 32, "lstm_units": 64, "deep_units": [64, 32]}}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("synthetic", "diginetica"), default="synthetic")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="SR-GNN Diginetica files (--source diginetica)")
    parser.add_argument("--sample-sessions", type=int, help="Diginetica: only the latest N training sessions (a quick check)")
    parser.add_argument("--new-fraction", type=float, default=0.1, help="Diginetica: latest share of training sessions that are new")
    parser.add_argument("--new-days", type=int, default=3, help="synthetic: new days after 11 old ones")
    parser.add_argument("--epochs", type=int, default=8, help="base and full-retrain epochs")
    parser.add_argument("--retrain-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--config", type=Path, help="JSON run config (Diginetica) whose sections override defaults")
    parser.add_argument("--workdir", type=Path, help="where runs go (default: a temporary directory)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def synthetic_split(args):
    """(old ShopData, new ShopData, run config): the synthetic shop's last days release new items."""
    from recommenders.data.schema import ShopData
    from recommenders.data.synthetic import SyntheticShopConfig, generate_shop, release_days, session_days
    from recsys.workflow import RunConfig

    config = SyntheticShopConfig.small(days=11 + args.new_days, new_item_days=args.new_days, new_items_per_day=8,
                                       n_sessions=400 * (11 + args.new_days), clean=True)
    shop = generate_shop(config)
    release = shop.catalog["item_id"].map(release_days(config))
    day = shop.events["session_id"].map(session_days(shop.events, config))
    cutoff = config.days - args.new_days
    run_config = RunConfig.from_dict({**SYNTHETIC_RUN, "train": {**SYNTHETIC_RUN["train"], "epochs": args.epochs}})
    return ShopData(shop.events[day < cutoff], shop.catalog[release < cutoff]), ShopData(shop.events[day >= cutoff], shop.catalog), run_config


def diginetica_split(args):
    """(old ShopData, new ShopData, run config): the latest training sessions are the new data."""
    from recommenders.data.loaders import load_srgnn
    from recommenders.data.schema import ShopData

    data = load_srgnn(args.data_dir)
    sessions = list(data.train_session_ids)[-args.sample_sessions:] if args.sample_sessions else list(data.train_session_ids)
    n_new = round(args.new_fraction * len(sessions))
    old, new = set(sessions[:-n_new]), set(sessions[-n_new:])
    events = data.shop.events
    old_events = events[events["session_id"].isin(old)]
    catalog = data.shop.catalog
    # The catalog as of the cutoff: the items the old sessions show (the SR-GNN files list no release dates).
    old_catalog = catalog[catalog["item_id"].isin(set(old_events["item_id"]))]
    return ShopData(old_events, old_catalog), ShopData(events[events["session_id"].isin(new)], catalog), diginetica_run_config(args)


def _scores(run_dir, cases, cold, catalog_size: int) -> dict:
    from recommenders.evaluation.harness import evaluate
    from recommenders.models.inference import SignatureRecommender
    from recsys.workflow import TrainedModels

    models = TrainedModels(run_dir)
    recommender = SignatureRecommender(models.recommend.recommend, models.run_config.train.max_length)
    return _both(recommender, cases, cold, catalog_size, evaluate)


def _both(recommender, cases, cold, catalog_size, evaluate, **fit) -> dict:
    values = {}
    for subset, chosen in (("all", cases), ("cold", cases.take(cold))):
        metrics = evaluate({"model": recommender}, chosen, (K,), catalog_size=catalog_size, **fit).results[0].metrics
        values.update({f"{name}_{subset}": metrics[f"{name}@{K}"] for name in ("HR", "MRR")})
    return values


def run(args) -> dict:
    import numpy as np
    import pandas as pd

    from recommenders.data.dataset import prepare, save_prepared
    from recommenders.data.split import SplitConfig
    from recommenders.evaluation.baselines import Popularity
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.evaluation.harness import evaluate
    from recommenders.features.vocabulary import FeatureVocabularies
    from recsys.retrain import RetrainConfig, retrain_run
    from recsys.workflow import train_models, train_run

    old, new, run_config = (synthetic_split if args.source == "synthetic" else diginetica_split)(args)
    scratch = tempfile.TemporaryDirectory(prefix="cold-start-")
    work = args.workdir or Path(scratch.name)
    save_prepared(prepare(old, split=SplitConfig(test_fraction=0.0), source="old days"), work / "data", overwrite=True)
    started = time.perf_counter()
    train_run(work / "data", work / "base", run_config, overwrite=True)
    base_seconds = time.perf_counter() - started
    base_items = set(FeatureVocabularies.load(work / "base" / "retrieval" / "vocabularies.json").item_ids)

    rows, holdout = {}, None
    for init in ("category_mean", "zeros", "random"):
        started = time.perf_counter()
        result = retrain_run(work / "base", new, work / f"retrain-{init}",
                             RetrainConfig(epochs=args.retrain_epochs, new_item_init=init), overwrite=True)
        rows[f"warm start, new items from {init.replace('_', ' ')}"] = {"seconds": time.perf_counter() - started}
        holdout = result.holdout
    recent_and_old = pd.concat([pd.read_parquet(work / "data" / "train.parquet"),
                                pd.read_parquet(work / "retrain-zeros" / "window.parquet")], ignore_index=True)
    full_train = recent_and_old[~recent_and_old["session_id"].isin(set(holdout["session_id"]))]
    validation = pd.read_parquet(work / "data" / "validation.parquet")
    started = time.perf_counter()
    train_models(full_train, validation, new.catalog, FeatureVocabularies.build(full_train, new.catalog), work / "full",
                 run_config)
    rows["full retrain from scratch"] = {"seconds": time.perf_counter() - started}

    cases = make_next_item_cases(holdout)
    cold = np.flatnonzero([target not in base_items for target in cases.targets])
    catalog_size = len(new.catalog)
    for name, run_dir in zip(rows, [work / f"retrain-{i}" for i in ("category_mean", "zeros", "random")] + [work / "full"]):
        rows[name].update(_scores(run_dir, cases, cold, catalog_size))
    started = time.perf_counter()
    rows["popularity"] = _both(Popularity(), cases, cold, catalog_size, evaluate, train_events=full_train, catalog=new.catalog)
    rows["popularity"]["seconds"] = time.perf_counter() - started
    scratch.cleanup()
    return {"source": args.source, "k": K,
            "base_seconds": base_seconds, "holdout_cases": len(cases), "cold_cases": len(cold),
            "new_items": len(set(new.catalog["item_id"]) - base_items), "sample_sessions": args.sample_sessions,
            "epochs": args.epochs, "retrain_epochs": args.retrain_epochs, "rows": rows}


def markdown(result: dict) -> str:
    k = result["k"]
    lines = [f"# Cold start and warm-started retrains ({result['source']})", "",
             f"{provenance(result)} Holdout: the latest new sessions, {result['holdout_cases']:,} cases, {result['cold_cases']:,} of them "
             f"cold-start (target first seen after the base run's cutoff; {result['new_items']:,} new items). "
             f"Base run {result['epochs']} epochs ({result['base_seconds']:.0f} s); retrains {result['retrain_epochs']} "
             "epochs from the base run.", "",
             f"| variant | wall s | HR@{k} | MRR@{k} | cold HR@{k} | cold MRR@{k} |", "|---|---:|---:|---:|---:|---:|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | {row['seconds']:.0f} | {100 * row['HR_all']:.2f} | {100 * row['MRR_all']:.2f} "
                     f"| {100 * row['HR_cold']:.2f} | {100 * row['MRR_cold']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    name = "cold_start" if args.source == "synthetic" else "cold_start_diginetica"
    return run_main(name, args, run, markdown)


if __name__ == "__main__":
    sys.exit(main())
