"""``recsys retrain``: warm-start the last run on new data, export the next version, gate it.

A trained model's catalog is frozen: an item added tomorrow is unknown to every export
until the next training. A retrain closes that gap at a fraction of a full training:

1. the new data (events since the last run and the current catalog) is cleaned; its
   latest sessions are held out for the gate, the ones before them validate, the rest
   are the *recent window*;
2. training covers the window plus a seeded *replay* sample of older sessions (from the
   runs before), so the model keeps what it knew;
3. vocabularies grow (old indices kept) and every old weight is copied into the new
   models; new items start from their content (:mod:`recommenders.models.warm_start`);
   both models are fitted for ``RetrainConfig.epochs`` epochs (2 by default, a quarter of a
   full training's 8) through the same ``train_retrieval`` / ``train_ranking`` as a full run;
4. the next version is exported atomically, then the *canary gate* scores it against the
   serving (``stable``) version on the holdout, HR@K and MRR@K through the evaluation
   harness, and promotes it (moves ``stable`` in models.config, on running servers in
   TF Serving's two steps, :func:`drills.canary.set_labels`) or rolls it back (``stable``
   stays; the new version is left on disk unlabelled, so a ``specific`` policy never
   serves it).

Bad new data (unknown columns, a catalog that drops served items, an empty window) is
refused before anything is trained or exported: the serving version stays untouched.

A retrain run directory holds what ``recsys train`` writes (models, blend, metrics) plus
``retrain.json`` (previous run, replay sources, sizes, new items, settings),
``window.parquet`` (the cleaned new events: the next retrain replays from them) and
``holdout.parquet`` (the gate's sessions).

Usage::

    result = retrain_run("runs/day3", load_new_data("day4.csv", "catalog.csv"), "runs/day4")
    decision = release(result, "saved_models", "deploy/models.config")
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.workflow import DATA_SOURCE_FILE, RunConfig, train_models
from recsys_base.errors import ConfigError, DataError
from recsys_base.fields import check_fields
from serving import contract

RETRAIN_FILE = "retrain.json"
WINDOW_FILE = "window.parquet"
HOLDOUT_FILE = "holdout.parquet"
DECISION_LOG = "retrain_decisions.jsonl"


@dataclasses.dataclass
class RetrainConfig:
    """How a retrain samples, trains and gates; ``validate()`` names a bad field.

    >>> RetrainConfig(replay_ratio=0.5).validate().epochs
    2
    """

    epochs: int = 2
    replay_ratio: float = 1.0  # older sessions replayed per session of the recent window
    validation_fraction: float = 0.1  # of the new sessions, before the holdout
    holdout_fraction: float = 0.1  # the latest new sessions: the canary gate's cases
    new_item_init: str = "category_mean"  # see recommenders.models.warm_start.NEW_ITEM_INITS
    gate_k: int = 20
    max_drop: float = 0.0  # promoted when the new HR@K >= the serving HR@K - max_drop
    seed: int = 0

    def validate(self) -> RetrainConfig:
        from recommenders.models.warm_start import NEW_ITEM_INITS

        check_fields(self)
        checks = {
            "epochs": (self.epochs >= 1, "must be at least 1"),
            "replay_ratio": (self.replay_ratio >= 0, "must be >= 0"),
            "validation_fraction": (0 < self.validation_fraction < 1, "must be in (0, 1)"),
            "holdout_fraction": (0 < self.holdout_fraction < 1, "must be in (0, 1)"),
            "new_item_init": (self.new_item_init in NEW_ITEM_INITS, f"must be one of {', '.join(NEW_ITEM_INITS)}"),
            "gate_k": (self.gate_k >= 1, "must be at least 1"),
            "max_drop": (0 <= self.max_drop <= 1, "must be in [0, 1]"),
        }
        for name, (ok, rule) in checks.items():
            if not ok:
                raise ConfigError(f"{name} {rule}, got {getattr(self, name)!r}")
        if self.validation_fraction + self.holdout_fraction >= 1:
            raise ConfigError(f"validation_fraction + holdout_fraction must be < 1 to leave a recent window, got "
                              f"{self.validation_fraction} + {self.holdout_fraction}")
        return self


@dataclasses.dataclass
class RetrainResult:
    """A finished retrain: its run directory, the gate's holdout events and its new items."""

    run_dir: Path
    holdout: pd.DataFrame
    new_items: list[str]
    metrics: dict
    config: RetrainConfig


def load_new_data(events_path, catalog_path):
    """New events and the current catalog from CSV/Parquet files in the canonical columns
    (:mod:`recommenders.data.schema`); a column outside them is refused by name."""
    from recommenders.data import loaders, schema

    for path, known in ((events_path, schema.EVENT_COLUMNS), (catalog_path, schema.CATALOG_COLUMNS)):
        unknown = [str(column) for column in loaders.read_table(path).columns if column not in known]
        if unknown:
            raise DataError(f"{path}: unknown column(s) {', '.join(unknown)}; new data uses the canonical columns "
                            f"{', '.join(known)}")
    return loaders.load_csv(events_path, catalog_path)


def run_history(run_dir) -> list[Path]:
    """The event files (Parquet) behind a run and the runs it was retrained from, oldest first."""
    run_dir = Path(run_dir)
    if (run_dir / RETRAIN_FILE).is_file():
        record = json.loads((run_dir / RETRAIN_FILE).read_text())
        return [Path(path) for path in record["history"]] + [run_dir / WINDOW_FILE]
    if (run_dir / DATA_SOURCE_FILE).is_file():
        data_dir = Path(json.loads((run_dir / DATA_SOURCE_FILE).read_text())["data_dir"])
        return [data_dir / f"{split}.parquet" for split in ("train", "validation", "test")]
    return []


def _session_ends(events: pd.DataFrame) -> pd.Series:
    return events.groupby("session_id")["timestamp"].max()


def split_window(events: pd.DataFrame, config: RetrainConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(recent window, validation, holdout) of the new events by session end time: the
    holdout is the latest ``holdout_fraction`` of sessions, validation the ones before."""
    from recommenders.data.split import time_split

    if events.empty:
        raise DataError("the new data has no events after cleaning: nothing to retrain on (an empty window)")
    cutoffs = time_split(events, config.validation_fraction, config.holdout_fraction).cutoffs
    end = events["session_id"].map(_session_ends(events))
    parts = (events[end < cutoffs.validation_start], events[(end >= cutoffs.validation_start) & (end < cutoffs.test_start)],
             events[end >= cutoffs.test_start])
    return tuple(part.reset_index(drop=True) for part in parts)


def replay_sample(history: pd.DataFrame, n_sessions: int, seed: int) -> pd.DataFrame:
    """A seeded sample of ``n_sessions`` whole sessions of ``history`` (all of them if fewer).

    >>> history = pd.DataFrame({"session_id": ["a", "a", "b", "c"], "item_id": ["x", "y", "x", "z"]})
    >>> sorted(replay_sample(history, 2, seed=0)["session_id"].unique())
    ['a', 'c']
    """
    sessions = history["session_id"].drop_duplicates().to_numpy()
    chosen = np.random.default_rng(seed).permutation(sessions)[:n_sessions]
    return history[history["session_id"].isin(chosen)].reset_index(drop=True)


def _previous_models(previous_run: Path):
    from recommenders.models.training import load_trained

    if not (previous_run / "retrieval" / "config.json").is_file():
        raise DataError(f"no trained run in {previous_run} (train one with `recsys train` first)")
    saved = previous_run / "run_config.json"
    run_config = RunConfig.from_file(saved) if saved.exists() else RunConfig()
    return run_config, {part: load_trained(previous_run / part) for part in ("retrieval", "ranking")}


def retrain_run(previous_run, new_data, run_dir, config: RetrainConfig | None = None, overwrite: bool = False,
                warm_start: bool = True) -> RetrainResult:
    """Trains the next run from ``previous_run`` on ``new_data`` (a ShopData: new events and
    the current catalog) into ``run_dir``; see the module docstring. ``warm_start`` False
    trains the same data from scratch (the benchmarks' comparison)."""
    from recommenders.data.cleaning import CleaningConfig, clean
    from recommenders.features.sequences import sessions_to_arrays
    from recommenders.models.warm_start import copy_weights

    config = (config or RetrainConfig()).validate()
    started = time.perf_counter()
    previous_run, run_dir = Path(previous_run), Path(run_dir)
    if (run_dir / "retrieval" / "config.json").exists() and not overwrite:
        raise ConfigError(f"{run_dir} already holds a trained model; pass --overwrite or choose another run directory")
    run_config, previous = _previous_models(previous_run)
    if new_data.events.empty:
        raise DataError("the new data has no events: nothing to retrain on (an empty window)")
    previous["retrieval"].vocab.check_catalog_keeps_items(new_data.catalog)  # as given, before cleaning touches it
    # A new item has few events on its first day: none is dropped for support.
    window = clean(new_data, CleaningConfig(min_item_support=1)).shop
    recent, validation, holdout = split_window(window.events, config)
    history_files = run_history(previous_run)
    missing = [str(path) for path in history_files if not path.exists()]
    if missing:
        print(f"warning: replay skips {len(missing)} missing event file(s): {', '.join(missing[:3])}", flush=True)
    history = pd.concat([pd.read_parquet(path) for path in history_files if path.exists()] or [recent.iloc[:0]],
                        ignore_index=True)
    n_replay = round(config.replay_ratio * recent["session_id"].nunique())
    train_events = pd.concat([replay_sample(history, n_replay, config.seed), recent], ignore_index=True)
    old_vocab = previous["retrieval"].vocab
    vocab = old_vocab.grown(train_events, window.catalog)
    new_items = vocab.item_ids[old_vocab.num_items:]
    run_config = dataclasses.replace(run_config, train=dataclasses.replace(run_config.train, epochs=config.epochs))
    sample = {name: values[:32] for name, values in sessions_to_arrays(recent, run_config.train.max_length).features().items()}

    def initial_weights(part):
        return lambda model: copy_weights(previous[part], model, sample, config.new_item_init)

    metrics = train_models(train_events, validation, window.catalog, vocab, run_dir, run_config,
                           initial_weights if warm_start else None)
    window.events.to_parquet(run_dir / WINDOW_FILE, index=False)
    holdout.to_parquet(run_dir / HOLDOUT_FILE, index=False)
    (run_dir / RETRAIN_FILE).write_text(json.dumps({
        "previous_run": str(previous_run.resolve()),
        "history": [str(path.resolve()) for path in history_files],
        "warm_start": warm_start,
        "config": dataclasses.asdict(config),
        "sessions": {"recent": int(recent["session_id"].nunique()), "replay": int(train_events["session_id"].nunique()
                     - recent["session_id"].nunique()), "validation": int(validation["session_id"].nunique()),
                     "holdout": int(holdout["session_id"].nunique())},
        "new_items": new_items,
        "seconds": time.perf_counter() - started,
    }, indent=1))
    return RetrainResult(run_dir, holdout, new_items, metrics, config)


def stable_version(models_config, model: str = contract.RECOMMEND_MODEL) -> int:
    """The version ``model``'s ``stable`` label points at in ``models_config``; ConfigError if none."""
    from drills.canary import read_labels

    if not Path(models_config).is_file():
        raise ConfigError(f"models config not found: {models_config}")
    labels = read_labels(Path(models_config), model)
    if contract.STABLE_LABEL not in labels:
        raise ConfigError(f"{models_config}: model {model!r} has no {contract.STABLE_LABEL!r} label, so no serving version "
                          "to gate the retrain against")
    return labels[contract.STABLE_LABEL]


def gate_scores(base_dir, versions: dict[str, int], holdout: pd.DataFrame, k: int, max_length: int,
                catalog_size: int) -> dict[str, dict]:
    """HR@k and MRR@k of each exported ``recommend`` version (by name) on the holdout's next-item cases."""
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.evaluation.harness import evaluate
    from recommenders.models.inference import SignatureRecommender
    from recsys_base.tf_compat import tensorflow

    tf = tensorflow()
    cases = make_next_item_cases(holdout)
    if not len(cases):
        raise DataError("the holdout (latest new sessions) has no next-item case to gate the new version on")
    recommenders = {}
    for name, version in versions.items():
        loaded = tf.saved_model.load(str(Path(base_dir) / contract.RECOMMEND_MODEL / str(version)))
        recommenders[name] = SignatureRecommender(loaded.signatures[contract.SIGNATURES[contract.RECOMMEND_MODEL]], max_length)
    report = evaluate(recommenders, cases, (k,), catalog_size=catalog_size)
    return {result.name: {**result.metrics, "cases": len(cases)} for result in report.results}


def release(result: RetrainResult, base_dir, models_config, targets=()):
    """Exports ``result``'s run as the next version and gates it against ``stable`` (module
    docstring, step 4); returns the :class:`drills.canary.GateDecision`, also appended to
    ``base_dir/retrain_decisions.jsonl``. ``targets`` are running servers to reload."""
    from drills.canary import GateDecision, read_labels, set_labels
    from recsys.workflow import export_run

    models_config = Path(models_config)
    serving = stable_version(models_config)
    version = int(export_run(result.run_dir, base_dir)[contract.RECOMMEND_MODEL].name)
    from recommenders.features.vocabulary import FeatureVocabularies

    max_length = RunConfig.from_file(result.run_dir / "run_config.json").train.max_length
    catalog_size = FeatureVocabularies.load(result.run_dir / "retrieval" / "vocabularies.json").num_items
    k = result.config.gate_k
    scores = gate_scores(base_dir, {"stable": serving, "new": version}, result.holdout, k, max_length, catalog_size)
    hr, mrr = f"HR@{k}", f"MRR@{k}"
    stable_hr, new_hr = scores["stable"][hr], scores["new"][hr]
    promoted = bool(new_hr >= stable_hr - result.config.max_drop)
    reason = (f"version {version} {hr} {new_hr:.4f} / {mrr} {scores['new'][mrr]:.4f} vs serving version {serving} "
              f"{stable_hr:.4f} / {scores['stable'][mrr]:.4f} on {scores['new']['cases']} holdout cases "
              f"({len(result.new_items)} new items): " + ("promoted to stable" if promoted else
              f"{hr} dropped more than {result.config.max_drop}, rolled back: stable stays at version {serving}"))
    if promoted:
        from serving.config_files import read_model_server_config

        for entry in read_model_server_config(models_config).model_config_list.config:
            labels = read_labels(models_config, entry.name)
            if contract.STABLE_LABEL in labels:
                set_labels(models_config, entry.name, {**labels, contract.STABLE_LABEL: version}, list(targets))
    decision = GateDecision(contract.RECOMMEND_MODEL, serving, version, stable_hr, new_hr, result.config.max_drop,
                            scores["new"]["cases"], promoted, reason, time.time())
    with open(Path(base_dir) / DECISION_LOG, "a") as stream:
        stream.write(decision.to_json() + "\n")
    return decision
