"""Fitting the models: data pipelines, optimizer, callbacks (TensorBoard, early stopping, resume).

Training runs under the ``tf.distribute`` strategy of ``TrainConfig.distribute``
(:mod:`recommenders.models.distribute`): :func:`_train` builds the model and optimizer in
its scope and Keras ``fit`` splits every global batch over the replicas.

Retrieval stops early on ``val_MRR@20`` of the exported ``retrieve`` score (catalog
softmax mixed with the repeat head, :mod:`recommenders.models.validation`), not on
FactorizedTopK's catalog-only accuracy. MRR rather than HR: it moves with every rank
change inside the top 20, not only when a target crosses rank 20, so patience counts
fewer spurious plateaus, and it is the metric on which the hand-tuned and searched
configurations differ most.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from recommenders.features.neighbours import ItemNeighbours
from recommenders.features.sequences import batches_per_epoch, sessions_to_arrays, to_dataset
from recommenders.features.vocabulary import FeatureVocabularies
from recommenders.models.config import RankingConfig, RetrievalConfig, TrainConfig
from recommenders.models.distribute import strategy_for
from recommenders.models.fusion import fit_gate
from recommenders.models.ranking import MultiTaskRanker
from recommenders.models.retrieval import RefreshCatalogIndex, SessionRetrievalModel, catalog_log_probabilities
from recommenders.models.towers import FIRST_ITEM_INDEX, precision_policy
from recommenders.models.validation import VALIDATION_KS, RetrievalValidation, validation_cases
from recsys_base.errors import DataError
from recsys_base.tf_compat import tensorflow, traced_for_any_shape

tf = tensorflow()

# Multipliers of the neighbour tables' fitted share tried on validation (fit_fusion).
FUSION_TABLE_SCALES = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
# Weights of the popularity shift tried with each scale (fit_fusion; models/fusion.py).
# 1 is the full label-shift correction; 0 (first: kept on ties) none.
POPULARITY_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
RETRIEVAL_MONITOR = f"val_MRR@{max(VALIDATION_KS)}"
RANKING_MONITOR = "val_click_auc"
# The moving average of the weights (TrainConfig.weight_averaging) spans at most this share of an epoch.
AVERAGING_WINDOWS_PER_EPOCH = 10


class TensorBoard(tf.keras.callbacks.TensorBoard):
    """Keras's TensorBoard callback, with the training graph written for the Graphs tab.

    tf-keras writes that graph at the end of the first training batch, but asks for batch
    hooks only when profiling or logging per batch; with ``update_freq="epoch"`` the graph
    is never written. Batch hooks of this callback read no logs, so they cost no sync.
    """

    def _implements_train_batch_hooks(self):
        return super()._implements_train_batch_hooks() or self._should_write_train_graph


def make_optimizer(config: TrainConfig, steps_per_epoch: int | None = None):
    """The configured Keras optimizer; its learning rate steps down by ``learning_rate_decay``
    after every ``steps_per_epoch`` batches (a schedule on the optimizer's own step counter,
    so a resumed run continues at the right rate). With ``weight_averaging`` it also keeps
    the moving average of the weights (Keras's ``use_ema``), saved with its other state, so
    a resumed run continues the same average; its momentum is capped so that it spans at most
    a tenth of an epoch (:data:`AVERAGING_WINDOWS_PER_EPOCH`).

    >>> make_optimizer(TrainConfig(weight_averaging=0.99), steps_per_epoch=50).ema_momentum
    0.8
    """
    optimizers = {
        "adam": tf.keras.optimizers.Adam,
        "adagrad": tf.keras.optimizers.Adagrad,
        "sgd": tf.keras.optimizers.SGD,
        "rmsprop": tf.keras.optimizers.RMSprop,
    }
    learning_rate = config.learning_rate
    if config.learning_rate_decay < 1 and steps_per_epoch:
        learning_rate = tf.keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, steps_per_epoch, config.learning_rate_decay, staircase=True)
    averaging = {}
    if config.weight_averaging:
        momentum = config.weight_averaging
        if steps_per_epoch:
            # The average starts at the initial weights, whose share after n steps is
            # momentum**n: spanning at most 1/AVERAGING_WINDOWS_PER_EPOCH of an epoch, it has
            # forgotten them (a share below e**-10) by the first validation, however small the data.
            momentum = min(momentum, max(0.0, 1 - AVERAGING_WINDOWS_PER_EPOCH / steps_per_epoch))
        averaging = {"use_ema": True, "ema_momentum": momentum}
    return optimizers[config.optimizer](learning_rate=learning_rate, **averaging)


class ValidateAveragedWeights(tf.keras.callbacks.Callback):
    """From each validation to the end of its epoch the model holds the optimizer's moving
    average of its weights (``TrainConfig.weight_averaging``); training goes on from its own.

    Why: the steps' weights jitter around where the sampled softmax pulls them, and their
    average ranks better. Early stopping must compare, and keep, the weights the run will
    end with: Keras's ``fit`` puts the average in place when training ends, and
    ``EarlyStopping`` restores the best epoch's weights after that, so it has to have seen
    averaged weights too. List this callback first (``RefreshCatalogIndex`` then embeds the
    averaged catalog) and :attr:`back_to_training_weights` after every callback that reads
    the epoch's weights, before ``BackupAndRestore``: a backup holds the training weights,
    the average being the optimizer's to save.
    """

    def __init__(self):
        super().__init__()
        self.training_weights = None
        self.back_to_training_weights = _BackToTrainingWeights(self)

    def on_test_begin(self, logs=None):
        if self.training_weights is None:
            variables = self.model.trainable_variables
            self.training_weights = [variable.numpy() for variable in variables]
            self.model.optimizer.finalize_variable_values(variables)


class _BackToTrainingWeights(tf.keras.callbacks.Callback):
    """The end of :class:`ValidateAveragedWeights`' swap: the training weights back in place."""

    def __init__(self, swap: ValidateAveragedWeights):
        super().__init__()
        self.swap = swap

    def on_epoch_end(self, epoch, logs=None):
        if self.swap.training_weights is not None:
            for variable, value in zip(self.model.trainable_variables, self.swap.training_weights):
                variable.assign(value)
            self.swap.training_weights = None


def _sequences(events: pd.DataFrame, max_length: int, what: str):
    arrays = sessions_to_arrays(events, max_length)
    if len(arrays) == 0:
        raise DataError(f"the {what} split has no session with two or more item events to learn from")
    return arrays


class StreamStart(tf.keras.callbacks.Callback):
    """Where a run's training stream starts: ``optimizer.iterations`` as training begins.

    Set in ``on_train_begin``, after ``BackupAndRestore`` (listed before this callback)
    restored the iteration count, and never changed while training runs. The stream must
    not read ``optimizer.iterations`` itself: tf.data produces the first batch on its own
    thread, sometimes before and sometimes after the first step has incremented it, and a
    resumed run then started one batch off (seen as a flaky resume test).
    """

    def __init__(self, optimizer):
        super().__init__()
        self.optimizer = optimizer
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="stream_start")

    def on_train_begin(self, logs=None):
        self.step.assign(tf.cast(self.optimizer.iterations, tf.int64))


def resumable_stream(dataset, start: StreamStart):
    """``dataset`` repeated endlessly, starting at batch ``start.step``.

    A resumed run so continues with exactly the batches an uninterrupted run would have
    seen next (the shuffle order of every epoch is fixed by the seed), even when it was
    interrupted mid-epoch.
    """
    stream = dataset.repeat()
    return tf.data.Dataset.from_tensors(0).flat_map(lambda _: stream.skip(start.step))


def _sharded_by_data(dataset):
    """``dataset`` split over workers by its elements: each takes its part of every global
    batch. The pipeline reads arrays in memory, so there are no files to shard by."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def fit(model, train_events, validation_events, train_config: TrainConfig, monitor: str,
        log_dir=None, backup_dir=None, extra_callbacks=(), backup_every_steps: int | None = None,
        initial_epoch: int = 0, neighbour_folds: int = 0):
    """Fits ``model`` on every position of the training sessions, validating each epoch.

    ``log_dir`` gets TensorBoard scalars and the graph; ``backup_dir`` makes the run
    resumable (``BackupAndRestore``): rerunning the same call after an interruption
    continues from the last backup, taken every epoch or every ``backup_every_steps``
    batches, and ends in the state an uninterrupted run reaches. ``extra_callbacks`` run
    before early stopping and TensorBoard, so metrics they add to the epoch logs are
    monitored and written; with ``weight_averaging`` they see the averaged weights from
    validation to the epoch's end (:class:`ValidateAveragedWeights`). ``initial_epoch``
    continues a model trained that many epochs (a warm start): the optimizer's step counter
    starts there, so the learning-rate decay and the batch order continue where that
    training stopped. ``neighbour_folds`` > 0 gives every training row its session's fold
    (out-of-fold neighbour tables, see
    :mod:`recommenders.models.neighbour_features`). Returns the Keras ``History``.
    ``train_config`` is trusted: its entry point (``train_run``, the tuner) validated it.
    """
    sequences = _sequences(train_events, train_config.max_length, "training")
    train = to_dataset(sequences, train_config.batch_size, shuffle=True, seed=train_config.seed, bucket_by_length=True,
                       neighbour_folds=neighbour_folds)
    steps_per_epoch = batches_per_epoch(sequences, train_config.batch_size, bucket_by_length=True)
    with model.distribute_strategy.scope():  # the optimizer's state, the moving average too, lives on every replica
        optimizer = make_optimizer(train_config, steps_per_epoch)
        # Every variable exists before the first step: a tf.function whose first call creates
        # variables (the layers', the optimizer's slots) is traced twice, seconds each here.
        build_variables(model, train_events, train_config.max_length, neighbour_folds)
        optimizer.build(model.trainable_variables)
    optimizer.iterations.assign(initial_epoch * steps_per_epoch)  # BackupAndRestore, when resuming, overrides it
    start = StreamStart(optimizer)
    train = _sharded_by_data(resumable_stream(train, start))
    validation = _sharded_by_data(to_dataset(_sequences(validation_events, train_config.max_length, "validation"), 512))
    averaged = ValidateAveragedWeights() if train_config.weight_averaging else None
    callbacks = [averaged] if averaged else []
    callbacks += extra_callbacks
    if train_config.early_stopping_patience:
        callbacks.append(tf.keras.callbacks.EarlyStopping(
            monitor=monitor, mode="max", patience=train_config.early_stopping_patience, restore_best_weights=True))
    if log_dir is not None:
        callbacks.append(TensorBoard(log_dir=str(log_dir), write_graph=True, update_freq="epoch"))
    if averaged:
        callbacks.append(averaged.back_to_training_weights)
    if backup_dir is not None:
        callbacks.append(tf.keras.callbacks.BackupAndRestore(str(backup_dir), save_freq=backup_every_steps or "epoch"))
    callbacks.append(start)  # after BackupAndRestore: it reads the restored iteration count
    if train_config.xla:
        tf.config.optimizer.set_jit("autoclustering")
    model.compile(optimizer=optimizer)
    # Metric results are already global (Keras merges them across replicas); the default
    # ("auto", a sum) adds them up again over the workers of a multi-worker cluster.
    model.distribute_reduction_method = "first"
    return model.fit(train, validation_data=validation, epochs=train_config.epochs, steps_per_epoch=steps_per_epoch,
                     callbacks=callbacks, verbose=train_config.verbose, initial_epoch=initial_epoch)


def kept_epochs(history, train_config: TrainConfig, monitor: str) -> int:
    """Epochs (counted from the start, a warm start's earlier ones included) that produced the
    kept weights: the best monitored epoch under early stopping (its ``restore_best_weights``),
    else the last."""
    curve = history.history.get(monitor)
    if train_config.early_stopping_patience and curve:
        return history.epoch[int(np.nanargmax(curve))] + 1
    return history.epoch[-1] + 1


def build_variables(model, train_events, max_length: int, neighbour_folds: int = 0) -> None:
    """Creates every variable of ``model`` (in the current strategy scope): one loss
    computation on a batch of the first 8 training sessions."""
    first_sessions = train_events["session_id"].drop_duplicates().head(8)
    sample = _sequences(train_events[train_events["session_id"].isin(first_sessions)], max_length, "training")
    model.compute_loss(next(iter(to_dataset(sample, 8, neighbour_folds=neighbour_folds))), training=True)


def saved_weights(directory, train_events, max_length: int):
    """An ``initial_weights`` warm start: the weights :func:`save_trained` wrote to ``directory``.

    The model is built first (:func:`build_variables`), so the weights are in place before
    training starts instead of restored lazily inside its first step; every model variable
    must be found in the saved weights.
    """
    def load(model):
        build_variables(model, train_events, max_length)
        model.load_weights(str(Path(directory) / "weights")).assert_existing_objects_matched().expect_partial()

    return load


def _train(model_class, monitor, callbacks, train_events, validation_events, catalog, model_config, train_config,
           vocab, initial_weights=None, **fit_kwargs):
    strategy = strategy_for(train_config.distribute)  # first: a multi-worker strategy joins its cluster before any op
    tf.keras.utils.set_random_seed(train_config.seed)
    vocab = vocab or FeatureVocabularies.build(train_events, catalog)
    # The model's and the optimizer's variables are made in the scope: mirrored on every replica.
    with strategy.scope(), precision_policy(train_config.mixed_precision):
        model = model_class(vocab, model_config)
    if initial_weights is not None:  # a warm start: saved_weights, or recommenders/models/warm_start.py
        initial_weights(model)
    specs = model_config.neighbour_specs()
    folds = getattr(model_config, "neighbour_folds", 0) if specs else 0
    if specs:  # counted on this run's training events, also after a warm start
        model.set_neighbours(ItemNeighbours.build(train_events, vocab.item_ids, specs))
    if folds:  # the ranker's training positions read tables counted without their own fold
        with strategy.scope():
            model.neighbour_scores.set_training_neighbours(
                ItemNeighbours.build_out_of_fold(train_events, vocab.item_ids, specs, folds))
    # Outside the policy: tfrs tasks create helper layers while they run (accidental-hit
    # removal), which must compute in float32 like the tasks' losses.
    history = fit(model, train_events, validation_events, train_config, monitor, neighbour_folds=folds,
                  extra_callbacks=[*callbacks, *fit_kwargs.pop("extra_callbacks", ())], **fit_kwargs)
    if getattr(model, "fusion", None) is not None:
        history.history["fusion"] = fit_fusion(model, train_events, validation_events, train_config,
                                               counted_half_life=0.0)
    if folds:
        model.neighbour_scores.set_training_neighbours(None)  # serving never reads them
    # The tables stay counted on the training sessions only: the recommend blend is fitted
    # on validation after training (then count_served_tables recounts them).
    return model, history


def fit_fusion(model: SessionRetrievalModel, train_events, validation_events, train_config: TrainConfig,
               batch_size: int = 256, counted_half_life: float | None = None) -> dict:
    """Counts ``model.fusion``'s tables on ``train_events`` and fits its gate on the validation
    split's next items, the towers frozen.

    Each validation case is scored as ``retrieve`` scores it (its last ``max_length``
    events), without the fusion; cases whose next item is not in the catalog are left
    out. For every half-life of ``model.config.neighbour_half_lives`` the tables are counted
    with that recency and the gate fitted from the same start; the half-life and table
    scale with the best validation HR@K + MRR@K are kept, and ``model.config`` then names
    only that half-life (what :func:`count_served_tables` recounts with). The weight of the
    popularity shift counted with the tables is chosen with the scale, from
    ``POPULARITY_WEIGHTS``, after the gate's likelihood fit (which it does not enter). When the tables
    the model holds on entry are counted on ``train_events`` with ``counted_half_life``,
    that candidate uses them instead of counting again (training counts them once without
    recency to validate the fused score while it trains). Returns what
    :func:`recommenders.models.fusion.fit_gate` returns for the kept fit, the chosen
    ``half_life``, ``table_scale`` and ``popularity_weight``, and the validation quality of every candidate.
    """
    from recommenders.evaluation.cases import make_next_item_cases
    from recommenders.models.inference import as_tensors, session_inputs
    from recommenders.models.serving_modules import RetrievalModule, _features

    cases = make_next_item_cases(validation_events)
    targets = model.item_encoder.lookup(tf.constant(cases.targets.astype(str))).numpy()
    cases = cases.take(np.flatnonzero(targets >= FIRST_ITEM_INDEX))
    if len(cases) == 0:
        raise DataError("the validation split has no next item in the catalog to fit the fusion gate on")
    module = RetrievalModule(model, train_config.max_length)

    def model_scores(inputs, target_ids):
        """The towers' part: log p [B, catalog], state [B, D], items [B, T], target columns [B]."""
        features, _ = _features(train_config.max_length, **inputs)
        log_p, state, items = catalog_log_probabilities(module.members(), None, module.temperature, features)
        return log_p, state, items, model.item_encoder.lookup(target_ids) - FIRST_ITEM_INDEX

    settings = list(itertools.product(FUSION_TABLE_SCALES, POPULARITY_WEIGHTS))

    def target_ranks(log_p, state, items, columns):
        """[len(settings), B]: the target's rank under each (table scale, popularity weight), with the tables loaded now."""
        scales, popularity_weights = np.array(settings, np.float32).T
        return model.fusion.target_ranks(log_p, state, items, columns, np.log(scales), popularity_weights)

    # Both passes read the same batches: prepared once.
    batches = []
    for first in range(0, len(cases), batch_size):
        batch = cases.take(np.arange(first, min(first + batch_size, len(cases))))
        batches.append((as_tensors(session_inputs(batch, train_config.max_length)), tf.constant(batch.targets.astype(str))))
    model_scores = traced_for_any_shape(model_scores, *batches[0])
    target_ranks = traced_for_any_shape(target_ranks, *model_scores(*batches[0]))
    parts = []
    for batch in batches:
        log_p, state, items, columns = model_scores(*batch)
        parts.append([tf.gather(log_p, columns, batch_dims=1).numpy(), state.numpy(), items.numpy(), columns.numpy()])
    log_model, state, items, columns = (np.concatenate([part[i] for part in parts]) if i != 2 else
                                        _right_padded([part[i] for part in parts]) for i in range(4))
    model.fusion.popularity_weight.assign(0.0)  # the gate is fitted without the shift
    start, specs, fits = model.fusion.get_weights(), model.config.neighbour_specs(), {}
    for half_life in model.config.neighbour_half_lives:
        model.fusion.set_weights(start)  # the tables are weights too: back to the ones counted on entry
        if half_life != counted_half_life:
            model.set_neighbours(ItemNeighbours.build(train_events, model.vocab.item_ids, specs, half_life))
        result = fit_gate(model.fusion, log_model, state, items, columns, seed=train_config.seed)
        fits[half_life] = (result, model.fusion.get_weights())
    # The likelihood fit weighs the tables for calibrated probabilities; the ranking the shop
    # sees may prefer another share: pick the half-life, scale and popularity weight with the
    # best HR@K + MRR@K.
    # Each batch is encoded once and ranked under every fit's tables (swapping the tables
    # costs far less than running the towers again per half-life).
    ranks = {half_life: [] for half_life in fits}
    for batch in batches:
        scores = model_scores(*batch)
        for half_life, (_, weights) in fits.items():
            model.fusion.set_weights(weights)
            ranks[half_life].append(target_ranks(*scores).numpy())
    k, candidates, best = max(VALIDATION_KS), {}, None
    for half_life, (result, weights) in fits.items():
        ranks_by_setting = np.concatenate(ranks[half_life], axis=1)
        quality = [(at <= k).mean() + np.where(at <= k, 1.0 / at, 0.0).mean() for at in ranks_by_setting]
        candidates[half_life] = {scale: {} for scale in FUSION_TABLE_SCALES}
        for (scale, popularity_weight), value in zip(settings, np.round(quality, 4).tolist()):
            candidates[half_life][scale][popularity_weight] = value
        chosen = int(np.argmax(quality))
        if best is None or quality[chosen] > best[0]:
            best = (quality[chosen], half_life, settings[chosen], weights, result)
    _, half_life, (scale, popularity_weight), weights, result = best
    model.fusion.set_weights(weights)
    model.fusion.table_log_scale.assign(np.log(scale))
    model.fusion.popularity_weight.assign(popularity_weight)
    model.config = dataclasses.replace(model.config, neighbour_half_lives=(half_life,))
    return {**result, "half_life": half_life, "table_scale": scale, "popularity_weight": popularity_weight,
            f"validation HR@{k} + MRR@{k} by half-life, table scale and popularity weight": candidates}


def count_served_tables(model, events) -> None:
    """Recounts ``model``'s neighbour tables on ``events``, with the recency :func:`fit_fusion` chose.

    A run serves tables counted on every session it learned from, validation included;
    call this after everything fitted on validation is fitted (the fusion gate, the
    recommend blend): a fit on sessions the tables count finds every answer in them.
    """
    specs = model.config.neighbour_specs()
    if specs:
        model.set_neighbours(ItemNeighbours.build(events, model.vocab.item_ids, specs, model.config.served_half_life()))


def _right_padded(blocks: list[np.ndarray]) -> np.ndarray:
    """Row blocks of different widths stacked into one array, right-padded with 0."""
    width = max(block.shape[1] for block in blocks)
    return np.concatenate([np.pad(block, [(0, 0), (0, width - block.shape[1])]) for block in blocks])


def train_retrieval(train_events, validation_events, catalog, model_config: RetrievalConfig,
                    train_config: TrainConfig, vocab: FeatureVocabularies | None = None, initial_weights=None,
                    **fit_kwargs):
    """Builds vocabularies (unless given) and fits a :class:`SessionRetrievalModel`; see :func:`fit`.

    Every epoch ends with ``retrieve`` scored on at most ``train_config.max_validation_cases``
    validation cases (``val_HR@K``, ``val_MRR@K``; early stopping monitors
    :data:`RETRIEVAL_MONITOR`). ``initial_weights(model)``, when given, sets the new model's
    weights before fitting (a warm start: :func:`saved_weights`, or a grown model's copy).
    """
    cases = validation_cases(validation_events, train_config.max_validation_cases, train_config.seed)
    callbacks = [RefreshCatalogIndex(), RetrievalValidation(cases, train_config.max_length)]
    return _train(SessionRetrievalModel, RETRIEVAL_MONITOR, callbacks, train_events, validation_events,
                  catalog, model_config, train_config, vocab, initial_weights, **fit_kwargs)


def train_ranking(train_events, validation_events, catalog, model_config: RankingConfig,
                  train_config: TrainConfig, vocab: FeatureVocabularies | None = None, initial_weights=None,
                  **fit_kwargs):
    """Builds vocabularies (unless given) and fits a :class:`MultiTaskRanker`; see :func:`fit` and
    :func:`train_retrieval` for ``initial_weights``."""
    return _train(MultiTaskRanker, RANKING_MONITOR, [], train_events, validation_events, catalog, model_config,
                  train_config, vocab, initial_weights, **fit_kwargs)


def save_trained(model, directory) -> Path:
    """Writes weights, vocabularies and config so :func:`load_trained` can rebuild the model."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.vocab.save(directory / "vocabularies.json")
    (directory / "config.json").write_text(json.dumps(
        {"kind": type(model).__name__, "config": dataclasses.asdict(model.config)}, indent=1))
    model.save_weights(str(directory / "weights"))
    return directory


def load_trained(directory):
    """Rebuilds a model saved by :func:`save_trained` (retrieval or ranking)."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise DataError(f"no trained model in {directory}: config.json is missing (run `recsys train` first)")
    saved = json.loads((directory / "config.json").read_text())
    kinds = {"SessionRetrievalModel": (SessionRetrievalModel, RetrievalConfig),
             "MultiTaskRanker": (MultiTaskRanker, RankingConfig)}
    if saved.get("kind") not in kinds:
        raise DataError(f"{directory}/config.json names unknown model kind {saved.get('kind')!r}")
    model_class, config_class = kinds[saved["kind"]]
    config = saved["config"]
    if "deep_units" in config:
        config["deep_units"] = tuple(config["deep_units"])
    model = model_class(FeatureVocabularies.load(directory / "vocabularies.json"), config_class(**config).validate())
    model.load_weights(str(directory / "weights")).expect_partial()
    return model
