"""Search spaces: defaults, file overrides, and a clear error for every kind of bad file."""

import dataclasses
import json

import pytest

from recsys_base.errors import ConfigError
from tuning.space import Choice, Fixed, Range, configs_from_values, default_space, load_space


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_cover_the_tuned_dimensions_of_each_kind():
    retrieval, ranking = default_space("retrieval"), default_space("ranking")
    common = {"embedding_dim", "lstm_units", "lstm_layers", "dropout", "l2", "learning_rate", "optimizer",
              "batch_size", "l2_normalize"}
    assert common | {"temperature"} <= set(retrieval)
    assert common | {"cross_layers", "cart_weight", "purchase_weight"} <= set(ranking)
    assert "temperature" not in ranking and "cross_layers" not in retrieval


def test_yaml_file_overrides_entries_and_keeps_the_rest(tmp_path):
    path = write(tmp_path, "space.yaml", """
retrieval:
  embedding_dim: [16, 32]
  learning_rate: {min: 1.0e-4, max: 1.0e-2, sampling: log}
  dropout: 0.2
  lstm_layers: {min: 1, max: 3, step: 1}
ranking:
  cross_layers: 1
""")
    space = load_space("retrieval", path)
    assert space["embedding_dim"] == Choice((16, 32))
    assert space["learning_rate"] == Range(1e-4, 1e-2, None, "log")
    assert space["dropout"] == Fixed(0.2)
    assert space["lstm_layers"] == Range(1, 3, 1, "linear")
    assert space["temperature"] == default_space("retrieval")["temperature"]
    assert load_space("ranking", path)["cross_layers"] == Fixed(1)


def test_json_file_with_an_integer_for_a_float_field_is_accepted(tmp_path):
    path = write(tmp_path, "space.json", json.dumps({"ranking": {"cart_weight": [1, 2.5]}}))
    assert load_space("ranking", path)["cart_weight"] == Choice((1.0, 2.5))


@pytest.mark.parametrize("text, message", [
    ("retrieval:\n  embeding_dim: [16]\n", "retrieval.embeding_dim is not a RetrievalConfig or TrainConfig field"),
    ("ranking:\n  temperature: 0.1\n", "ranking.temperature is not a RankingConfig or TrainConfig field"),
    ("retrieval:\n  dropout: 1.5\n", "retrieval.dropout: dropout must be in [0, 1), got 1.5"),
    ("retrieval:\n  lstm_units: [64, 0]\n", "retrieval.lstm_units[1]: lstm_units must be at least 1, got 0"),
    ("retrieval:\n  lstm_units: [64, 12.5]\n", "retrieval.lstm_units[1] must be int, got 12.5"),
    ("retrieval:\n  learning_rate: {min: 1e-4, max: 0.1}\n", "retrieval.learning_rate.min must be float, got '1e-4' "
                                                             "(YAML reads 1e-4 as text: write 1.0e-4)"),
    ("retrieval:\n  dropout: {min: 0.3, max: 0.1}\n", "retrieval.dropout.min (0.3) must not exceed max (0.1)"),
    ("retrieval:\n  dropout: {low: 0.1, max: 0.3}\n", "retrieval.dropout range needs keys min and max"),
    ("retrieval:\n  dropout: {min: 0.0, max: 0.3, sampling: log}\n",
     "retrieval.dropout.min must be > 0 for log sampling, got 0.0"),
    ("retrieval:\n  l2: {min: 0.0, max: 0.1, sampling: cubic}\n", "retrieval.l2.sampling must be one of linear, log"),
    ("retrieval:\n  optimizer: [adam, adamw]\n", "retrieval.optimizer[1]: optimizer must be one of adam"),
    ("retrieval:\n  optimizer: {min: 1, max: 2}\n", "retrieval.optimizer is not numeric"),
    ("retrieval:\n  embedding_dim: []\n", "retrieval.embedding_dim lists no values"),
    ("retrieval:\n  epochs: [1, 2]\n", "retrieval.epochs cannot be tuned"),
    ("retrieval:\n  xla: [true, false]\n", "retrieval.xla cannot be tuned"),
    ("retrieval:\n  deep_units: [8]\n", "retrieval.deep_units is not a RetrievalConfig"),
    ("ranking:\n  deep_units: [8]\n", "ranking.deep_units cannot be tuned"),
    ("retreival:\n  dropout: 0.1\n", "top-level keys must be retrieval and/or ranking, got ['retreival']"),
    ("retrieval: [dropout]\n", "retrieval must map hyperparameter names to values"),
    ("retrieval:\n  dropout: [0.1\n", "not valid YAML: expected ',' or ']', but got '<stream end>' at line 3"),
])
def test_bad_file_names_the_bad_key_or_value(tmp_path, text, message):
    kind = "ranking" if text.startswith("ranking") else "retrieval"
    path = write(tmp_path, "space.yaml", text)
    with pytest.raises(ConfigError) as error:
        load_space(kind, path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_every_non_tunable_name_is_a_train_config_field():
    # A stale name (a renamed field) would leave the real field tunable by accident.
    from recommenders.models.config import TrainConfig

    assert set(TrainConfig.NOT_TUNABLE) <= {field.name for field in dataclasses.fields(TrainConfig)}


def test_only_what_to_learn_is_tunable_in_train_config():
    # A new TrainConfig field is tunable unless listed in NOT_TUNABLE: this list makes adding one a decision.
    from recommenders.models.config import TrainConfig
    from recommenders.models.hparams import tunable_fields

    assert set(tunable_fields(TrainConfig)) == {"batch_size", "learning_rate", "learning_rate_decay", "optimizer",
                                                 "max_length", "early_stopping_patience", "weight_averaging"}


def test_tunable_model_fields_are_derived_from_the_config_dataclass():
    from recommenders.models.config import RetrievalConfig
    from recommenders.models.hparams import tunable_fields
    from tuning.space import field_type

    # Every retrieval field is a scalar hyperparameter, but the half-lives validation picks from (a list).
    scalar = {f.name for f in dataclasses.fields(RetrievalConfig)} - set(RetrievalConfig.FITTED_FIELDS)
    assert set(tunable_fields(RetrievalConfig)) == scalar
    assert field_type("retrieval", "negatives") is str and field_type("retrieval", "repeat_head") is bool


def test_default_retrieval_space_covers_the_model_as_it_is():
    space = default_space("retrieval")
    assert {"repeat_head", "session_item_readout", "learning_rate_decay", "l2_normalize", "temperature", "negatives",
            "extra_negatives", "dropout", "embedding_dim", "output_dim", "lstm_units", "lstm_layers"} <= set(space)
    for name, spec in space.items():  # every default entry is a valid value of its field
        values = spec.values if isinstance(spec, Choice) else (spec.low, spec.high)
        for value in values:
            configs_from_values("retrieval", {name: value})


def test_known_values_widen_the_space_and_fixed_entries_stay():
    from tuning.space import anchored

    space = {"lstm_units": Choice((64, 128)), "temperature": Range(0.05, 1.0, sampling="log"), "dropout": Fixed(0.1),
             "embedding_dim": Choice((32, 64))}
    widened = anchored(space, {"lstm_units": 96, "temperature": 0.03, "dropout": 0.3, "embedding_dim": 64})
    assert widened == {"lstm_units": Choice((64, 128, 96)), "temperature": Range(0.03, 1.0, sampling="log"),
                       "dropout": Fixed(0.1), "embedding_dim": Choice((32, 64))}


def test_invalid_json_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="space.json: not valid JSON: Expecting property name"):
        load_space("retrieval", write(tmp_path, "space.json", "{'retrieval': }"))
    with pytest.raises(ConfigError, match="search space file not found: .*nope.yaml"):
        load_space("retrieval", tmp_path / "nope.yaml")


def test_values_become_validated_model_and_train_configs():
    model_config, train_config = configs_from_values(
        "ranking", {"cross_layers": 3, "batch_size": 64, "optimizer": "sgd", "tuner/epochs": 4})
    assert (model_config.cross_layers, train_config.batch_size, train_config.optimizer) == (3, 64, "sgd")
    with pytest.raises(ConfigError, match="batch_size must be at least 2"):
        configs_from_values("ranking", {"batch_size": 1})
