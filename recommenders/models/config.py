"""Typed model, training and recommend configuration, validated once where it enters.

Every config's ``validate()`` checks the field types (:func:`recsys_base.fields.check_fields`)
and ranges, raises :class:`ConfigError` naming the bad field and returns the config, so an
entry point (CLI handler, ``train_run``, the tuner, ``export``) writes
``config = config.validate()``; the models and trainers below trust what they get.

Example:

>>> RetrievalConfig(embedding_dim=64, lstm_units=128).validate().lstm_units
128
"""

from __future__ import annotations

import dataclasses

from recommenders.features.neighbours import NeighbourSpec
from recsys_base.errors import ConfigError
from recsys_base.fields import check_fields
from serving import contract

# The ranking model's tasks, each with a head, a loss weight (``<task>_weight`` in
# RankingConfig), a validation AUC (``<task>_auc``) and the ``rank`` output holding its
# probability.
RANKING_TASK_OUTPUTS = {
    "click": contract.CLICK_PROBABILITY,
    "cart": contract.CART_PROBABILITY,
    "purchase": contract.PURCHASE_PROBABILITY,
}
RANKING_TASKS = tuple(RANKING_TASK_OUTPUTS)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclasses.dataclass
class TowerConfig:
    """Sizes shared by the session (query) tower and the item (candidate) tower."""

    embedding_dim: int = 64  # item/category/brand/text embedding width
    feature_dim: int = 16  # small features: event type, time gap, price bucket, hour, weekday
    lstm_units: int = 128
    lstm_layers: int = 1
    output_dim: int = 64  # the retrieval space both towers map into
    dropout: float = 0.1
    l2: float = 0.0
    max_title_tokens: int = 8
    use_user: bool = True
    use_query: bool = True
    use_context: bool = True
    # Attention from each position over the session so far (NARM-style): lets the query
    # recall items seen earlier, which a last-state-only LSTM forgets.
    session_attention: bool = True
    # Adds an attention-weighted sum of the session's items, embedded by the item tower, to
    # the query: the output space then holds the seen items themselves, so re-visits (a
    # fifth of Diginetica's next clicks) and their neighbours score high without having to
    # be squeezed through the LSTM state (the tied-embedding readout of NARM/STAMP/SR-GNN).
    session_item_readout: bool = True
    l2_normalize: bool = False
    # Fields training narrows to what it chose on validation (the architecture is the same
    # whatever they hold: a warm start pairs models that differ only here).
    FITTED_FIELDS = ()

    def tower_fields(self) -> dict:
        """Just the :class:`TowerConfig` fields (what a tower layer serializes)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(TowerConfig)}

    def validate(self) -> TowerConfig:
        check_fields(self)
        for name in ("embedding_dim", "feature_dim", "lstm_units", "lstm_layers", "output_dim", "max_title_tokens"):
            _check(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        _check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        _check(self.l2 >= 0.0, f"l2 must be >= 0, got {self.l2}")
        return self


@dataclasses.dataclass
class NeighbourTablesConfig:
    """The item-to-item neighbour tables a model reads, counted on the training sessions
    (features/neighbours.py): what shoppers clicked next after each item, and what they
    clicked near it within ``co_occurrence_window`` events; each item keeps its
    ``neighbours_per_item`` strongest."""

    neighbours_per_item: int = 50
    co_occurrence_window: int = 3

    def table_specs(self) -> list[NeighbourSpec]:
        return [
            NeighbourSpec("transitions", window=1, max_neighbours=self.neighbours_per_item),
            NeighbourSpec("co_occurrence", window=self.co_occurrence_window, both_directions=True, decay=0.5,
                          max_neighbours=self.neighbours_per_item),
        ]

    def served_half_life(self) -> float:
        """The recency the served tables are counted with (features/neighbours.py): every session alike."""
        return 0.0

    def check_tables(self) -> None:
        _check(self.neighbours_per_item >= 1, f"neighbours_per_item must be at least 1, got {self.neighbours_per_item}")
        _check(self.co_occurrence_window >= 1, f"co_occurrence_window must be at least 1, got {self.co_occurrence_window}")


@dataclasses.dataclass
class RetrievalConfig(NeighbourTablesConfig, TowerConfig):
    """Two-tower retrieval: which negatives the softmax sees, and how it is scaled.

    ``negatives="sampled"``: in-batch positives plus ``extra_negatives`` uniformly sampled
    catalog items, with logQ correction; its cost does not grow with the catalog.
    ``negatives="catalog"``: an exact softmax over every catalog item; best quality while
    the catalog fits a ``[positions, catalog]`` score matrix (tens of thousands of items).
    """

    NEGATIVES = ("sampled", "catalog")

    # L2-normalized towers at temperature 0.07: what real data (Diginetica) needs. On the
    # synthetic shop `benchmarks/fusion_ablation.py --dataset synthetic` measured 75.82 / 34.65
    # HR@20 / MRR@20 with them (23a3835) against 75.56 / 34.41 unnormalized at 0.1 (b1c79bf).
    l2_normalize: bool = True
    temperature: float = 0.07
    negatives: str = "sampled"
    extra_negatives: int = 2048  # uniformly sampled catalog items added to in-batch negatives
    remove_accidental_hits: bool = True
    sampling_bias_correction: bool = True
    # Mixes the catalog softmax with a pointer over the session's own items (models/repeat.py).
    repeat_head: bool = True
    # Mixes in the session's neighbour tables (models/fusion.py).
    fusion: bool = True
    # Towers trained side by side from different initial weights; retrieve scores the
    # mean of their distributions (models/retrieval.py). Each member costs a model's
    # training and encoding time again.
    ensemble_size: int = 1
    # Recency of the fused tables: each is a half-life as a share of the training span
    # (0 = every session counts alike; features/neighbours.py). fit_fusion keeps the one
    # validation ranks best, and the trained model's config then holds only that one.
    neighbour_half_lives: tuple[float, ...] = (0.0, 0.5, 0.2, 0.1)
    FITTED_FIELDS = ("neighbour_half_lives",)

    def neighbour_specs(self) -> list[NeighbourSpec]:
        """The neighbour tables fusion mixes in (none when ``fusion`` is off)."""
        return self.table_specs() if self.fusion else []

    def served_half_life(self) -> float:
        """The first of ``neighbour_half_lives``: after training, the one the fusion fit chose."""
        return self.neighbour_half_lives[0]

    def validate(self) -> RetrievalConfig:
        super().validate()
        self.check_tables()
        _check(self.temperature > 0.0, f"temperature must be > 0, got {self.temperature}")
        _check(self.negatives in self.NEGATIVES,
               f"negatives must be one of {', '.join(self.NEGATIVES)}, got {self.negatives!r}")
        _check(self.extra_negatives >= 0, f"extra_negatives must be >= 0, got {self.extra_negatives}")
        _check(self.ensemble_size >= 1, f"ensemble_size must be at least 1, got {self.ensemble_size}")
        _check(len(self.neighbour_half_lives) >= 1 and all(value >= 0.0 for value in self.neighbour_half_lives),
               f"neighbour_half_lives must be one or more numbers >= 0, got {list(self.neighbour_half_lives)}")
        return self


@dataclasses.dataclass
class RankingConfig(NeighbourTablesConfig, TowerConfig):
    """Multi-task click/cart/purchase ranking with DCN-v2 cross layers over a shared bottom.

    ``neighbour_features``: each candidate's scores in the session's neighbour tables are
    features (models/neighbour_features.py); training positions read tables counted
    without their own session, one set per fold of ``neighbour_folds``.
    """

    cross_layers: int = 2
    deep_units: tuple[int, ...] = (128, 64)
    negatives_per_position: int = 4
    # With 2 of these the ranker helps recommend on the synthetic shop (test MRR@20 35.20
    # with neighbour features, 35.11 without, 35.00 with it fitted off):
    # benchmarks/results/ranker_ablation_synthetic.md.
    session_negatives: int = 2
    click_weight: float = 1.0
    cart_weight: float = 1.0
    purchase_weight: float = 1.0
    neighbour_features: bool = True
    neighbour_folds: int = 5

    def neighbour_specs(self) -> list[NeighbourSpec]:
        """The neighbour tables the ranker reads (none when ``neighbour_features`` is off)."""
        return self.table_specs() if self.neighbour_features else []

    def validate(self) -> RankingConfig:
        super().validate()
        self.check_tables()
        _check(self.cross_layers >= 0, f"cross_layers must be >= 0, got {self.cross_layers}")
        _check(all(u >= 1 for u in self.deep_units), f"deep_units must all be >= 1, got {self.deep_units}")
        _check(self.negatives_per_position >= 1, "negatives_per_position must be at least 1")
        _check(self.session_negatives >= 0, f"session_negatives must be >= 0, got {self.session_negatives}")
        weights = (self.click_weight, self.cart_weight, self.purchase_weight)
        _check(all(w >= 0 for w in weights) and sum(weights) > 0, f"task weights must be >= 0 and not all 0, got {weights}")
        _check(self.neighbour_folds >= 2, f"neighbour_folds must be at least 2, got {self.neighbour_folds}")
        return self


@dataclasses.dataclass
class TrainConfig:
    """How to fit: optimizer, budget, precision and reproducibility.

    ``max_validation_cases`` bounds the validation next-item cases that ``retrieve`` scores
    after every epoch (:mod:`recommenders.models.validation`; a fixed random subset).
    ``weight_averaging`` > 0 keeps an exponential moving average of the weights with that
    momentum per step; validation, early stopping and the fitted model then use the
    average, not the last step's weights (:class:`recommenders.models.training.ValidateAveragedWeights`).
    """

    epochs: int = 8
    batch_size: int = 256
    learning_rate: float = 0.003
    learning_rate_decay: float = 1.0  # multiplies the learning rate after every epoch; 1 keeps it constant
    optimizer: str = "adam"
    max_length: int = 20
    seed: int = 0
    early_stopping_patience: int = 2
    mixed_precision: bool = False
    xla: bool = False  # XLA auto-clustering: compiles the numeric parts, leaves string lookups to TF
    verbose: int = 1
    # tf.distribute strategy (models/distribute.py): one device, this machine's devices, or a
    # cluster of workers described by TF_CONFIG. batch_size stays the global batch.
    distribute: str = "none"
    max_validation_cases: int = 5_000
    weight_averaging: float = 0.0

    OPTIMIZERS = ("adam", "adagrad", "sgd", "rmsprop")
    DISTRIBUTE = ("none", "mirrored", "multi-worker")
    # Fields a hyperparameter search must not set: they say how to run or measure, not what
    # to learn (epochs: the trial budget, or Hyperband's to allot). Every other scalar field
    # is tunable (tuning/space.py), so a new field that is not a hyperparameter belongs here.
    NOT_TUNABLE = ("epochs", "seed", "verbose", "mixed_precision", "xla", "max_validation_cases", "distribute")

    def validate(self) -> TrainConfig:
        check_fields(self)
        _check(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        _check(self.batch_size >= 2, f"batch_size must be at least 2, got {self.batch_size}")
        _check(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        _check(0 < self.learning_rate_decay <= 1, f"learning_rate_decay must be in (0, 1], got {self.learning_rate_decay}")
        _check(self.optimizer in self.OPTIMIZERS, f"optimizer must be one of {', '.join(self.OPTIMIZERS)}, got {self.optimizer!r}")
        _check(self.max_length >= 2, f"max_length must be at least 2, got {self.max_length}")
        _check(self.early_stopping_patience >= 0, "early_stopping_patience must be >= 0")
        _check(self.distribute in self.DISTRIBUTE,
               f"distribute must be one of {', '.join(self.DISTRIBUTE)}, got {self.distribute!r}")
        _check(self.max_validation_cases >= 1, f"max_validation_cases must be at least 1, got {self.max_validation_cases}")
        _check(0 <= self.weight_averaging < 1, f"weight_averaging must be in [0, 1), got {self.weight_averaging}")
        return self


@dataclasses.dataclass
class RecommendConfig:
    """The recommend path: how many retrieved candidates the ranker reorders, and the blend.

    The final score of a candidate is ``retrieval log-probability + ranking_weight *
    log(ranking score)``: how well the item matches the session in the retrieval space
    (the ``retrieve`` score), plus the ranker's business-weighted click/cart/purchase
    probability. ``ranking_weight`` 0 is ``retrieve``'s ranking exactly (then only the
    exclusion and purchased-item filters differ).

    A field left ``None`` is chosen on validation data after training
    (:mod:`recommenders.models.blend`, stored in the run's ``recommend_blend.json``); a
    value set in the run config overrides the fit. :meth:`resolved` fills what is still
    unset with :attr:`UNFITTED` (a run trained before the fit existed, a module built by hand).

    >>> RecommendConfig(candidate_pool=50).resolved(RecommendConfig(candidate_pool=200, ranking_weight=0.3))
    RecommendConfig(candidate_pool=50, ranking_weight=0.3)
    >>> RecommendConfig().resolved()
    RecommendConfig(candidate_pool=100, ranking_weight=1.0)
    """

    candidate_pool: int | None = None
    ranking_weight: float | None = None

    UNFITTED = {"candidate_pool": 100, "ranking_weight": 1.0}

    def validate(self) -> RecommendConfig:
        check_fields(self)
        _check(self.candidate_pool is None or self.candidate_pool >= 1,
               f"candidate_pool must be at least 1, got {self.candidate_pool}")
        _check(self.ranking_weight is None or self.ranking_weight >= 0,
               f"ranking_weight must be >= 0, got {self.ranking_weight}")
        return self

    def resolved(self, fitted: RecommendConfig | None = None) -> RecommendConfig:
        """Every field set: this config's values, else ``fitted``'s, else :attr:`UNFITTED`'s."""
        values = {}
        for name, fallback in self.UNFITTED.items():
            value = getattr(self, name)
            if value is None and fitted is not None:
                value = getattr(fitted, name)
            values[name] = fallback if value is None else value
        return RecommendConfig(**values).validate()
