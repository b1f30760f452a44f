"""End-to-end jobs over a prepared data directory: train, evaluate, export, demo.

These are the library functions behind ``recsys train | evaluate | export | demo``; each
step reads and writes directories so steps can run separately:

* data directory (``recsys data generate|import``): split events + catalog + report;
* run directory (``recsys train``): ``retrieval/`` and ``ranking/`` (weights, vocabularies,
  config; their neighbour tables count the train and validation sessions, recounted
  after the last fit on validation), ``recommend_blend.json`` (the recommend pool and blend fitted on validation),
  ``data_source.json`` (the data directory; ``recsys retrain`` adds its own files, see
  :mod:`recsys.retrain`),
  ``logs/`` (TensorBoard: per-epoch scalars, among them ``retrieve``'s validation HR/MRR,
  graph, item-embedding projector, and an HParams session per model in the tuner's
  format, :mod:`recommenders.models.hparams`), ``backup/`` (resume state while training);
* base directory (``recsys export``): ``<model>/<version>/`` SavedModels for TF Serving.

Usage (training takes minutes; see ``recsys data generate`` for a data directory)::

    config = RunConfig.from_file("run.json")
    train_run("data/shop", "runs/shop", config)
    print(evaluate_run("data/shop", "runs/shop").overall.format_table())
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from recommenders.models.config import RankingConfig, RecommendConfig, RetrievalConfig, TrainConfig
from recsys_base.errors import ConfigError, DataError
from recsys_base.fields import check_fields

# The recommend pool and blend fitted on validation after training (recommenders/models/blend.py).
BLEND_FILE = "recommend_blend.json"
# The prepared data directory a run was trained on (``{"data_dir": ...}``).
DATA_SOURCE_FILE = "data_source.json"
RUN_SECTIONS = {"retrieval": RetrievalConfig, "ranking": RankingConfig, "train": TrainConfig, "recommend": RecommendConfig}


def _from_retrieval_weight(fields: dict, source: str) -> dict:
    """Reads a ``recommend`` section written before ``ranking_weight`` replaced ``retrieval_weight``.

    The old score ``log(rank) + w * retrieval`` ranks candidates as ``retrieval + (1 / w) *
    log(rank)`` does, so run directories trained before keep their exported behaviour.

    >>> _from_retrieval_weight({"candidate_pool": 100, "retrieval_weight": 2.0}, "run_config.json")
    {'candidate_pool': 100, 'ranking_weight': 0.5}
    """
    if "retrieval_weight" not in fields:
        return fields
    fields = dict(fields)
    weight = fields.pop("retrieval_weight")
    if "ranking_weight" in fields:
        raise ConfigError(f"{source}: recommend sets both retrieval_weight (old) and ranking_weight; keep ranking_weight")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0 or weight == float("inf"):
        raise ConfigError(f"{source}: recommend.retrieval_weight (old setting) must be a positive number to convert to "
                          f"ranking_weight = 1 / retrieval_weight, got {weight!r}; set ranking_weight instead")
    return {**fields, "ranking_weight": 1.0 / weight}


@dataclasses.dataclass
class RunConfig:
    """Every setting of a training run, with defaults; loadable from a JSON file.

    The file holds any of the sections ``retrieval``, ``ranking``, ``train``,
    ``recommend``, each mapping field names to values, e.g.
    ``{"train": {"epochs": 4}, "retrieval": {"lstm_units": 64}}``.

    >>> config = RunConfig.from_dict({"train": {"epochs": 4}, "retrieval": {"lstm_units": 64}})
    >>> config.train.epochs, config.retrieval.lstm_units, config.ranking.lstm_units  # unset: the default
    (4, 64, 128)
    """

    retrieval: RetrievalConfig = dataclasses.field(default_factory=RetrievalConfig)
    ranking: RankingConfig = dataclasses.field(default_factory=RankingConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    recommend: RecommendConfig = dataclasses.field(default_factory=RecommendConfig)

    def validate(self) -> RunConfig:
        for section in RUN_SECTIONS:
            # Types first with the section in the path (``ranking.deep_units[0]``), then ranges.
            check_fields(getattr(self, section), section).validate()
        return self

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> RunConfig:
        """A validated RunConfig from parsed JSON; ConfigError names ``source`` and the field path."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected an object with sections {', '.join(RUN_SECTIONS)}, got {values!r:.60}")
        unknown = sorted(map(str, set(values) - set(RUN_SECTIONS)))
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {', '.join(unknown)}; use {', '.join(RUN_SECTIONS)}")
        sections = {}
        for name, config_class in RUN_SECTIONS.items():
            fields = values.get(name, {})
            if not isinstance(fields, dict):
                raise ConfigError(f"{source}: {name} must be an object of settings, got {json.dumps(fields, default=repr):.60}")
            if name == "recommend":
                fields = _from_retrieval_weight(fields, source)
            known = {f.name for f in dataclasses.fields(config_class)}
            bad = sorted(map(str, set(fields) - known))
            if bad:
                raise ConfigError(f"{source}: unknown {name} setting(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
            sections[name] = config_class(**fields)
        try:
            return cls(**sections).validate()
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
        except RecursionError:
            raise ConfigError(f"{path}: JSON nested too deeply to be a run config") from None
        except ValueError as exc:  # Python's limit on integer digits (4300), which json.loads enforces
            raise ConfigError(f"{path}: not a usable run config ({exc})") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        return cls.from_dict(values, source=str(path))

    def to_dict(self) -> dict:
        return {name: dataclasses.asdict(getattr(self, name)) for name in RUN_SECTIONS}


@dataclasses.dataclass
class EvaluationResult:
    """Next-item evaluation on a split (``overall``) and on its searched-for cases (``search``)."""

    overall: object
    search: object | None


def _load_data(data_dir):
    from recommenders.data.dataset import load_prepared

    if not Path(data_dir).is_dir():
        raise DataError(f"data directory not found: {data_dir} (create it with `recsys data generate` or `recsys data import`)")
    return load_prepared(data_dir)


def train_run(data_dir, run_dir, config: RunConfig | None = None, overwrite: bool = False) -> dict:
    """Trains retrieval and ranking on ``data_dir``'s train split; returns the validation metrics
    of the kept (best monitored) epochs.

    An interrupted run resumes from ``run_dir/backup`` when started again.

    With ``config.train.distribute == "multi-worker"`` every worker of the cluster runs this
    same call; only the chief writes ``run_dir`` (the other workers skip the recommend fit
    and wait for the chief to finish), and ``run_dir/backup`` must be storage all workers share
    for a resume to restore every worker.
    """
    config = (config or RunConfig()).validate()
    from recommenders.features.vocabulary import FeatureVocabularies
    from recommenders.models.distribute import is_chief, strategy_for

    strategy = strategy_for(config.train.distribute)  # a bad TF_CONFIG fails here, before the data is read
    prepared = _load_data(data_dir)
    run_dir = Path(run_dir)
    for part in ("retrieval", "ranking"):
        if (run_dir / part / "config.json").exists() and not overwrite:
            raise ConfigError(f"{run_dir} already holds a trained model; pass --overwrite or choose another run directory")
    vocab = FeatureVocabularies.build(prepared.train, prepared.catalog)
    if is_chief(strategy):
        run_dir.mkdir(parents=True, exist_ok=True)
        # Where the run's events are: a retrain replays older sessions from them (recsys/retrain.py).
        (run_dir / DATA_SOURCE_FILE).write_text(json.dumps({"data_dir": str(Path(data_dir).resolve())}))
    return train_models(prepared.train, prepared.validation, prepared.catalog, vocab, run_dir, config)


def train_models(train_events, validation_events, catalog, vocab, run_dir, config: RunConfig, initial_weights=None) -> dict:
    """Trains retrieval then ranking into ``run_dir``, fits the recommend blend, writes
    ``run_config.json`` and ``validation_metrics.json``; returns the validation metrics.

    ``initial_weights(part)``, when given, returns the warm start of ``part`` ("retrieval"
    or "ranking"): the ``initial_weights`` argument of its trainer. Under a multi-worker
    strategy only the chief writes (see :func:`train_run`).
    """
    from recommenders.models.distribute import is_chief, leave_together, strategy_for, written_by_chief
    from recommenders.models.hparams import hparam_values, write_session
    from recommenders.models.projector import write_item_projector
    from recommenders.models.training import (
        RANKING_MONITOR,
        RETRIEVAL_MONITOR,
        count_served_tables,
        kept_epochs,
        save_trained,
        train_ranking,
        train_retrieval,
    )

    strategy = strategy_for(config.train.distribute)
    chief = is_chief(strategy)
    run_dir = Path(run_dir)
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "run_config.json").write_text(json.dumps(config.to_dict(), indent=1))
    metrics, trained = {}, {}
    for part, trainer, model_config, monitor in (
        ("retrieval", train_retrieval, config.retrieval, RETRIEVAL_MONITOR),
        ("ranking", train_ranking, config.ranking, RANKING_MONITOR),
    ):
        print(f"training {part} ...", flush=True)
        if chief and not (run_dir / "backup" / part).exists():
            # A fresh start, not a resume: an earlier run's curves would mix into this one's.
            shutil.rmtree(run_dir / "logs" / part, ignore_errors=True)
        model, history = trainer(train_events, validation_events, catalog, model_config, config.train, vocab=vocab,
                                 initial_weights=initial_weights(part) if initial_weights else None,
                                 log_dir=run_dir / "logs" / part, backup_dir=run_dir / "backup" / part)
        with written_by_chief(run_dir / part, strategy) as directory:  # every worker saves: it takes collectives
            save_trained(model, directory)
        trained[part] = model
        if part == "retrieval" and chief:
            write_item_projector(run_dir / "logs" / part, model)
        # The kept weights' epoch: early stopping restores the best one, not the last.
        epochs = kept_epochs(history, config.train, monitor)
        kept = history.epoch.index(epochs - 1)
        metrics[part] = {name: float(values[kept]) for name, values in history.history.items() if name.startswith("val_")}
        if chief:
            write_session(run_dir / "logs" / part, f"{run_dir.name}/{part}", hparam_values(model_config, config.train),
                          {**metrics[part], "epochs": epochs}, step=epochs)
        if "fusion" in history.history:
            metrics["fusion"] = history.history["fusion"]
            print(f"fusion gate fitted on {metrics['fusion']['examples']:,} validation next items: log-likelihood "
                  f"{metrics['fusion']['model']:.3f} (model alone) -> {metrics['fusion']['fitted']:.3f}, "
                  f"table half-life {metrics['fusion']['half_life']} of the training span, "
                  f"table scale {metrics['fusion']['table_scale']}, popularity shift weight "
                  f"{metrics['fusion']['popularity_weight']}", flush=True)
    if chief:
        shutil.rmtree(run_dir / "backup", ignore_errors=True)
        metrics["recommend"] = fit_blend_run(run_dir, validation_events, config.recommend)
        (run_dir / "validation_metrics.json").write_text(json.dumps(metrics, indent=1))
    # Everything fitted on validation is fitted: the models now serve tables that also
    # count the validation sessions, the latest the run has (validation_metrics.json
    # keeps the scores measured before).
    served_events = pd.concat([train_events, validation_events], ignore_index=True)
    for part, model in trained.items():
        count_served_tables(model, served_events)
        with written_by_chief(run_dir / part, strategy) as directory:
            save_trained(model, directory)
    leave_together(strategy)
    return metrics


def fit_blend_run(run_dir, validation_events, explicit: RecommendConfig) -> dict:
    """Fits the recommend pool and blend of a trained run on validation cases into ``BLEND_FILE``.

    Fields set in ``explicit`` (the run config's ``recommend`` section) are kept as they
    are; returns the validation HR/MRR of ``retrieve`` and of the fitted ``recommend``.
    """
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.models.blend import fit_recommend

    run_dir = Path(run_dir)
    (run_dir / BLEND_FILE).unlink(missing_ok=True)  # a previous run's fit must not shape this one's modules
    cases = make_next_item_cases(validation_events)
    fit = fit_recommend(TrainedModels(run_dir).recommend, cases, explicit)
    (run_dir / BLEND_FILE).write_text(json.dumps(fit.to_dict(), indent=1))
    print(f"recommend blend fitted on {fit.n_cases:,} validation cases: candidate_pool {fit.candidate_pool}, "
          f"ranking_weight {fit.ranking_weight} (HR@{fit.k} / MRR@{fit.k}: recommend "
          f"{100 * fit.recommend[f'HR@{fit.k}']:.2f} / {100 * fit.recommend[f'MRR@{fit.k}']:.2f}, retrieve "
          f"{100 * fit.retrieve[f'HR@{fit.k}']:.2f} / {100 * fit.retrieve[f'MRR@{fit.k}']:.2f})", flush=True)
    return {"candidate_pool": fit.candidate_pool, "ranking_weight": fit.ranking_weight,
            **{f"val_recommend_{name}": value for name, value in fit.recommend.items()},
            **{f"val_retrieve_{name}": value for name, value in fit.retrieve.items()}}


class TrainedModels:
    """A run directory's trained models and the serving modules built from them.

    ``recommend`` uses the run's fitted pool and blend (``BLEND_FILE``, when present), except
    where ``recommend_config`` or else the run config's ``recommend`` section sets a value.
    """

    def __init__(self, run_dir, recommend_config: RecommendConfig | None = None):
        from recommenders.models.blend import BlendFit
        from recommenders.models.serving_modules import RankingModule, RecommendModule, RetrievalModule
        from recommenders.models.training import load_trained

        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise DataError(f"run directory not found: {run_dir} (create it with `recsys train`)")
        saved = run_dir / "run_config.json"
        run_config = RunConfig.from_file(saved) if saved.exists() else RunConfig()
        self.run_config = run_config
        self.retrieval_model = load_trained(run_dir / "retrieval")
        self.ranking_model = load_trained(run_dir / "ranking")
        self.retrieval = RetrievalModule(self.retrieval_model, run_config.train.max_length)
        self.ranking = RankingModule(self.ranking_model, run_config.train.max_length)
        fit_file = run_dir / BLEND_FILE
        self.blend_fit = BlendFit.from_dict(json.loads(fit_file.read_text())) if fit_file.exists() else None
        # run_config.recommend was validated when the file was read.
        explicit = recommend_config.validate() if recommend_config else run_config.recommend
        recommend = explicit.resolved(self.blend_fit.config() if self.blend_fit else None)
        self.recommend = RecommendModule(self.retrieval, self.ranking, recommend)

    @property
    def num_items(self) -> int:
        return self.retrieval.num_items


def evaluate_run(data_dir, run_dir, split: str = "test", k_values=(5, 10, 20), baselines: bool = True,
                 json_path=None) -> EvaluationResult:
    """Scores retrieval alone, the full recommend path and (optionally) the baselines on a split.

    Baselines (popularity, Markov-1, session-kNN) are fitted on the train split and ranked
    over the same catalog in the same run. On ``split="validation"`` the models' neighbour
    tables already count those sessions (:func:`train_models`), so their scores there are
    optimistic: ``validation_metrics.json`` holds the ones measured before the recount. Cases where the shopper searched right before
    the target are scored again on their own: that is personalized search.
    """
    from recommenders.evaluation.baselines import MarkovChain, Popularity, SessionKNN
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.evaluation.harness import evaluate
    from recommenders.evaluation.report import EvaluationReport
    from recommenders.models.inference import SignatureRecommender

    if split not in ("validation", "test"):
        raise ConfigError(f"--split must be validation or test, got {split!r}")
    prepared = _load_data(data_dir)
    models = TrainedModels(run_dir)
    cases = make_next_item_cases(getattr(prepared, split))
    if not len(cases):
        raise DataError(f"the {split} split of {data_dir} has no next-item cases")
    max_length = models.run_config.train.max_length

    def score(subset):
        ours = evaluate({"retrieval (LSTM two-tower)": SignatureRecommender(models.retrieval.retrieve, max_length),
                         "recommend (retrieve+rank)": SignatureRecommender(models.recommend.recommend, max_length)},
                        subset, k_values, catalog_size=models.num_items)
        if not baselines:
            return ours
        theirs = evaluate({"popularity": Popularity(), "markov-1": MarkovChain(), "session-knn": SessionKNN()},
                          subset, k_values, train_events=prepared.train, catalog=prepared.catalog)
        return EvaluationReport(k_values=ours.k_values, n_cases=ours.n_cases, catalog_size=ours.catalog_size,
                                results=[*ours.results, *theirs.results])

    searched = np.flatnonzero(np.asarray(cases.queries, dtype=object) != "")
    result = EvaluationResult(overall=score(cases), search=score(cases.take(searched)) if len(searched) else None)
    if json_path is not None:
        Path(json_path).write_text(json.dumps({
            "split": split,
            "overall": result.overall.to_dict(),
            "search": result.search.to_dict() if result.search else None,
        }, indent=1))
    return result


def export_run(run_dir, base_dir="saved_models", version: int | None = None) -> dict:
    """Exports a trained run as the next (or the given) version of all three SavedModels."""
    from recommenders.models.export import export_models

    models = TrainedModels(run_dir)
    metrics_file = Path(run_dir) / "validation_metrics.json"
    metadata = {"run_dir": str(run_dir), "run_config": models.run_config.to_dict(),
                "recommend": dataclasses.asdict(models.recommend.config),
                "recommend_fit": models.blend_fit.to_dict() if models.blend_fit else None}
    if metrics_file.exists():
        metadata["validation_metrics"] = json.loads(metrics_file.read_text())
    return export_models(models.retrieval_model, models.ranking_model, base_dir, version,
                         recommend_config=models.recommend.config, metadata=metadata,
                         max_session_events=models.run_config.train.max_length)


def example_recommendations(version_dir, prepared, n_sessions: int = 3, k: int = 5) -> str:
    """Asks an exported ``recommend`` SavedModel for the next items of a few test sessions."""
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.models.inference import SignatureRecommender
    from recsys_base.tf_compat import tensorflow
    from serving import contract

    tf = tensorflow()
    signature = tf.saved_model.load(str(version_dir)).signatures[contract.SIGNATURES[contract.RECOMMEND_MODEL]]
    cases = make_next_item_cases(prepared.test)
    lengths = np.array([len(p) for p in cases.prefix_item_ids])
    # The longest prefix of a few different sessions: the most context to show.
    picks, seen = [], set()
    for index in np.argsort(-lengths, kind="stable"):
        if cases.session_ids[index] not in seen:
            seen.add(cases.session_ids[index])
            picks.append(index)
        if len(picks) == n_sessions:
            break
    chosen = cases.take(picks)
    recommended = SignatureRecommender(signature).recommend(chosen, k)
    titles = prepared.catalog.set_index("item_id")["title"].astype(str).to_dict()
    lines = []
    for row in range(len(chosen)):
        lines.append(f"session {chosen.session_ids[row]}:")
        for item, kind in list(zip(chosen.prefix_item_ids[row], chosen.prefix_event_types[row]))[-4:]:
            lines.append(f"    {kind:>8}  {item}  {titles.get(item, '')}")
        if chosen.queries[row]:
            lines.append(f"    searched  \"{chosen.queries[row]}\"")
        lines.append(f"  next (actual): {chosen.targets[row]}  {titles.get(chosen.targets[row], '')}")
        for rank, item in enumerate(recommended[row], 1):
            mark = "  <- actual next" if item == chosen.targets[row] else ""
            lines.append(f"  {rank}. {item}  {titles.get(item, '')}{mark}")
    return "\n".join(lines)


def demo(workdir, base_dir="saved_models", config: RunConfig | None = None, small: bool = False) -> dict:
    """The README's main job: synthetic shop -> clean/split -> train -> evaluate -> export -> recommend."""
    from recommenders.data.dataset import prepare, save_prepared
    from recommenders.data.synthetic import SyntheticShopConfig, generate_shop

    workdir = Path(workdir)
    shop_config = SyntheticShopConfig.small() if small else SyntheticShopConfig()
    print(f"[1/5] generating the synthetic shop ({shop_config.n_sessions:,} sessions, {shop_config.n_items:,} items) ...", flush=True)
    prepared = prepare(generate_shop(shop_config), source="synthetic shop (demo)")
    save_prepared(prepared, workdir / "data", overwrite=True)
    print(prepared.report.format_table(), flush=True)
    print("[2/5] training retrieval and ranking ...", flush=True)
    train_run(workdir / "data", workdir / "run", config, overwrite=True)
    print("[3/5] evaluating on the test split against baselines ...", flush=True)
    result = evaluate_run(workdir / "data", workdir / "run", json_path=workdir / "evaluation.json")
    print(result.overall.format_table())
    if result.search is not None:
        print("\nPersonalized search (cases where the shopper searched before the target):")
        print(result.search.format_table())
    print(f"[4/5] exporting SavedModels to {base_dir} ...", flush=True)
    exported = export_run(workdir / "run", base_dir)
    for name, path in exported.items():
        print(f"  {name}: {path}")
    print("[5/5] recommendations from the exported recommend model:", flush=True)
    print(example_recommendations(exported["recommend"], prepared))
    print(f"\nTensorBoard: tensorboard --logdir {workdir / 'run' / 'logs'}")
    return {"evaluation": result, "exported": exported}
