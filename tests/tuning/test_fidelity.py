"""The multi-fidelity check: rank correlation of subsample scores, and the subsample size chosen from it."""

import pytest

from recommenders.models.config import RetrievalConfig, TrainConfig
from tuning.fidelity import rank_correlation, sample_configs, smallest_faithful_size
from tuning.space import Choice, Fixed


def test_rank_correlation_is_spearmans_rho():
    # Ranks (1, 2, 3) against (3, 2, 1): d = (-2, 0, 2), rho = 1 - 6 * 8 / (3 * 8) = -1.
    assert rank_correlation([0.1, 0.2, 0.3], [0.9, 0.5, 0.1]) == pytest.approx(-1.0)
    # Ties take their average rank: (1.5, 1.5, 3) against (1, 2, 3) gives rho = 0.8660 (Pearson of the ranks).
    assert rank_correlation([0.2, 0.2, 0.3], [0.1, 0.2, 0.3]) == pytest.approx(0.8660254)
    # The ranking is all that counts, not the scale: subsample scores sit lower than full-data ones.
    assert rank_correlation([0.05, 0.20, 0.10], [0.40, 0.60, 0.50]) == pytest.approx(1.0)


def test_the_smallest_size_faithful_on_every_metric_is_chosen():
    study = {"correlations": {20_000: {"val_HR@20": 0.9, "val_MRR@20": 0.6},
                              50_000: {"val_HR@20": 0.85, "val_MRR@20": 0.8},
                              100_000: {"val_HR@20": 1.0, "val_MRR@20": 0.9}}}
    assert smallest_faithful_size(study, 0.8) == 50_000
    assert smallest_faithful_size(study, 0.95) is None  # none is: trials use every session


def test_one_swap_in_four_configs_meets_a_threshold_of_0_8():
    # rho = 1 - 6 * 2 / (4 * 15) = 0.8 exactly, not a float a hair below it.
    rho = rank_correlation([0.1, 0.3, 0.2, 0.4], [0.2, 0.5, 0.1, 0.6])
    assert smallest_faithful_size({"correlations": {20_000: {"val_HR@20": rho, "val_MRR@20": 1.0}}}, 0.8) == 20_000


def test_sampled_configs_are_valid_draws_over_the_base():
    base_model, base_train = RetrievalConfig(use_user=False), TrainConfig(epochs=3)
    space = {"lstm_units": Choice((32, 64)), "optimizer": Choice(("adam", "sgd")), "dropout": Fixed(0.2)}
    configs = sample_configs("retrieval", space, 6, base_model, base_train, seed=1)
    assert len(configs) == 6
    for model_config, train_config in configs:
        assert model_config.lstm_units in (32, 64) and train_config.optimizer in ("adam", "sgd")
        assert model_config.dropout == 0.2 and model_config.use_user is False and train_config.epochs == 3
    assert len({(m.lstm_units, t.optimizer) for m, t in configs}) > 1
    assert configs == sample_configs("retrieval", space, 6, base_model, base_train, seed=1)  # reproducible
