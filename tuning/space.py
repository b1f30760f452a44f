"""The search spaces for retrieval and ranking, in one place, overridable from a JSON/YAML file.

A space maps a hyperparameter name to how it is searched. Names are fields of the model
config (:class:`RetrievalConfig` / :class:`RankingConfig`) or of :class:`TrainConfig`, so
a trial's values turn into the same typed configs ``recsys train`` uses. In a file:

.. code-block:: yaml

    retrieval:
      embedding_dim: [32, 64]                                # a list: choose one of these
      learning_rate: {min: 1.0e-4, max: 1.0e-2, sampling: log}  # a range (int or float by field)
      dropout: 0.1                                           # a scalar: fixed, not searched
    ranking:
      cross_layers: {min: 0, max: 3}

Entries replace the default entry of the same name; defaults not mentioned stay.

Example:

>>> space = default_space("retrieval")
>>> space["temperature"]
Range(low=0.03, high=1.0, step=None, sampling='log')
>>> model_config, train_config = configs_from_values(
...     "retrieval", {"embedding_dim": 32, "learning_rate": 0.01})
>>> model_config.embedding_dim, train_config.learning_rate
(32, 0.01)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml

from recommenders.models.config import RankingConfig, RetrievalConfig, TrainConfig
from recommenders.models.hparams import tunable_fields
from recsys_base.errors import ConfigError

KINDS = ("retrieval", "ranking")
MODEL_CONFIGS = {"retrieval": RetrievalConfig, "ranking": RankingConfig}
SAMPLINGS = ("linear", "log", "reverse_log")


@dataclasses.dataclass(frozen=True)
class Fixed:
    """One value, used by every trial (a scalar in the file).

    Example: ``Fixed(0.1)`` for ``dropout: 0.1``.
    """

    value: int | float | str | bool


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of a list of values (a list in the file).

    Example: ``Choice((32, 64))`` for ``embedding_dim: [32, 64]``.
    """

    values: tuple


@dataclasses.dataclass(frozen=True)
class Range:
    """A number from ``low`` to ``high`` (inclusive); integer or float by the config field.

    Example: ``Range(1e-4, 1e-2, sampling="log")`` for
    ``learning_rate: {min: 1.0e-4, max: 1.0e-2, sampling: log}``.
    """

    low: float
    high: float
    step: float | None = None
    sampling: str = "linear"


Spec = Fixed | Choice | Range

_COMMON = {
    "embedding_dim": Choice((32, 64, 96, 128)),
    "output_dim": Choice((32, 64, 96, 128)),
    "lstm_units": Choice((64, 128, 256)),
    "lstm_layers": Range(1, 2),
    "dropout": Range(0.0, 0.4, step=0.05),
    "l2": Choice((0.0, 1e-6, 1e-5)),
    "session_attention": Choice((False, True)),
    "learning_rate": Range(1e-4, 1e-2, sampling="log"),
    "learning_rate_decay": Range(0.3, 1.0, step=0.1),
    "optimizer": Choice(("adam", "adagrad")),
    "batch_size": Choice((128, 256, 512)),
}
_DEFAULTS = {
    # The retrieval model as it is: heads and readout, normalization and temperature, negatives.
    # A new RetrievalConfig field is searched once it has an entry here (e.g. the fusion component).
    "retrieval": {
        **_COMMON,
        "repeat_head": Choice((False, True)),
        "session_item_readout": Choice((False, True)),
        "l2_normalize": Choice((False, True)),
        "temperature": Range(0.03, 1.0, sampling="log"),
        "negatives": Choice(("sampled", "catalog")),
        "extra_negatives": Choice((0, 512, 2048, 8192)),
        "fusion": Choice((False, True)),
        "neighbours_per_item": Choice((20, 50, 100)),
        "co_occurrence_window": Choice((1, 2, 3, 5)),
    },
    "ranking": {
        **_COMMON,
        "l2_normalize": Choice((False, True)),
        "cross_layers": Range(0, 3),
        "negatives_per_position": Choice((2, 4, 8)),
        # Click stays the unit the other task weights are measured against.
        "cart_weight": Range(0.5, 4.0, sampling="log"),
        "purchase_weight": Range(0.5, 4.0, sampling="log"),
    },
}


def default_space(kind: str) -> dict[str, Spec]:
    """The built-in search space for ``kind`` ("retrieval" or "ranking")."""
    _check_kind(kind)
    return dict(_DEFAULTS[kind])


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"model kind must be one of {', '.join(KINDS)}, got {kind!r}")


def field_type(kind: str, name: str) -> type:
    """The Python type of tunable field ``name`` (bool, int, float or str); ConfigError otherwise.

    Tunable fields come from the config dataclasses (:func:`recommenders.models.hparams.tunable_fields`):
    a new model field is tunable at once; run settings are listed in ``TrainConfig.NOT_TUNABLE``.
    """
    _check_kind(kind)
    for config_class in (MODEL_CONFIGS[kind], TrainConfig):
        if name in {f.name for f in dataclasses.fields(config_class)}:
            tunable = tunable_fields(config_class)
            if name not in tunable:
                raise ConfigError(f"{kind}.{name} cannot be tuned")
            return tunable[name]
    raise ConfigError(f"{kind}.{name} is not a {MODEL_CONFIGS[kind].__name__} or TrainConfig field")


def anchored(space: dict[str, Spec], known: dict) -> dict[str, Spec]:
    """``space`` widened to hold the ``known`` configuration's values (a list gains the value, a
    range stretches to it), so the oracle can start from that configuration (trial 0).

    Fixed entries stay as they are: the file's fixed value is what every trial uses.

    >>> anchored({"lstm_units": Choice((64, 128)), "dropout": Range(0.0, 0.3)}, {"lstm_units": 96, "dropout": 0.5})
    {'lstm_units': Choice(values=(64, 128, 96)), 'dropout': Range(low=0.0, high=0.5, step=None, sampling='linear')}
    """
    widened = {}
    for name, spec in space.items():
        value = known.get(name)
        if isinstance(spec, Choice) and name in known and value not in spec.values:
            spec = Choice((*spec.values, value))
        elif isinstance(spec, Range) and name in known and not spec.low <= value <= spec.high:
            spec = dataclasses.replace(spec, low=min(spec.low, value), high=max(spec.high, value))
        widened[name] = spec
    return widened


def configs_from_values(kind: str, values: dict, model_config=None, train_config: TrainConfig | None = None):
    """``(model config, train config)``: the base configs with ``values`` applied, validated.

    Keys that are not config fields (e.g. Hyperband's ``tuner/epochs``) are ignored.
    """
    _check_kind(kind)
    model_config = model_config or MODEL_CONFIGS[kind]()
    train_config = train_config or TrainConfig()
    model_fields = {f.name for f in dataclasses.fields(model_config)}
    train_fields = {f.name for f in dataclasses.fields(train_config)}
    model_config = dataclasses.replace(model_config, **{k: v for k, v in values.items() if k in model_fields})
    train_config = dataclasses.replace(train_config, **{k: v for k, v in values.items() if k in train_fields})
    model_config.validate()
    train_config.validate()
    return model_config, train_config


def _typed(kind: str, name: str, value, what: str):
    expected = field_type(kind, name)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        hint = " (YAML reads 1e-4 as text: write 1.0e-4)" if expected is float and isinstance(value, str) else ""
        raise ConfigError(f"{kind}.{name}{what} must be {expected.__name__}, got {value!r}{hint}")
    try:
        configs_from_values(kind, {name: value})
    except ConfigError as exc:
        raise ConfigError(f"{kind}.{name}{what}: {exc}") from None
    return value


def parse_spec(kind: str, name: str, raw) -> Spec:
    """One file entry -> a :data:`Spec`, checking each value against the config's own validation."""
    if isinstance(raw, list):
        if not raw:
            raise ConfigError(f"{kind}.{name} lists no values")
        return Choice(tuple(_typed(kind, name, v, f"[{i}]") for i, v in enumerate(raw)))
    if not isinstance(raw, dict):
        return Fixed(_typed(kind, name, raw, ""))
    unknown = set(raw) - {"min", "max", "step", "sampling"}
    if unknown or not {"min", "max"} <= set(raw):
        raise ConfigError(f"{kind}.{name} range needs keys min and max (optional step, sampling); "
                          f"got {', '.join(sorted(raw))}")
    if field_type(kind, name) not in (int, float):
        raise ConfigError(f"{kind}.{name} is not numeric: give a list of values instead of a range")
    low, high = _typed(kind, name, raw["min"], ".min"), _typed(kind, name, raw["max"], ".max")
    if low > high:
        raise ConfigError(f"{kind}.{name}.min ({low}) must not exceed max ({high})")
    sampling = raw.get("sampling", "linear")
    if sampling not in SAMPLINGS:
        raise ConfigError(f"{kind}.{name}.sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    if sampling != "linear" and low <= 0:
        raise ConfigError(f"{kind}.{name}.min must be > 0 for {sampling} sampling, got {low}")
    step = raw.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
        raise ConfigError(f"{kind}.{name}.step must be a positive number, got {step!r}")
    return Range(low, high, step, sampling)


def load_space(kind: str, path: str | Path | None = None) -> dict[str, Spec]:
    """The default space for ``kind`` with the entries of the file's ``kind`` section applied."""
    space = default_space(kind)
    if path is None:
        return space
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search space file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML: {getattr(exc, 'problem', None) or exc}{where}") from None
    document = document or {}
    if not isinstance(document, dict) or set(document) - set(KINDS):
        extra = sorted(set(document) - set(KINDS)) if isinstance(document, dict) else document
        raise ConfigError(f"{path}: top-level keys must be {' and/or '.join(KINDS)}, got {extra!r}")
    section = document.get(kind) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: {kind} must map hyperparameter names to values, got {section!r}")
    try:
        space.update({name: parse_spec(kind, str(name), raw) for name, raw in section.items()})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return space
