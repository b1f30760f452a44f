"""The optimizer's learning-rate schedule: constant by default, stepped down once per epoch."""

import pytest

from recommenders.models.config import TrainConfig
from recommenders.models.training import make_optimizer
from recsys_base.errors import ConfigError
from recsys_base.tf_compat import tensorflow

tf = tensorflow()


def _rates_at(optimizer, steps) -> list[float]:
    """The rates the optimizer applies at ``steps`` (it evaluates its schedule when applying)."""
    weight = tf.Variable(1.0)
    optimizer.build([weight])
    rates = []
    for step in steps:
        optimizer.iterations.assign(step)
        optimizer.apply_gradients([(tf.constant(0.0), weight)])
        rates.append(float(optimizer.learning_rate))
    return rates


def test_learning_rate_steps_down_by_the_decay_after_each_epoch():
    optimizer = make_optimizer(TrainConfig(learning_rate=0.01, learning_rate_decay=0.5), steps_per_epoch=10)
    assert _rates_at(optimizer, (0, 9, 10, 25)) == pytest.approx([0.01, 0.01, 0.005, 0.0025], rel=1e-6)


def test_learning_rate_is_constant_without_decay():
    optimizer = make_optimizer(TrainConfig(learning_rate=0.01), steps_per_epoch=10)
    assert _rates_at(optimizer, (1000,)) == pytest.approx([0.01])


@pytest.mark.parametrize("decay", [0.0, 1.5])
def test_decay_outside_zero_to_one_is_named(decay):
    with pytest.raises(ConfigError, match=f"learning_rate_decay must be in \\(0, 1\\], got {decay}"):
        TrainConfig(learning_rate_decay=decay).validate()


def test_weight_averaging_asks_the_optimizer_for_a_moving_average():
    assert not make_optimizer(TrainConfig()).use_ema
    optimizer = make_optimizer(TrainConfig(weight_averaging=0.99), steps_per_epoch=2000)
    assert optimizer.use_ema and optimizer.ema_momentum == pytest.approx(0.99)


@pytest.mark.parametrize(("steps_per_epoch", "momentum"), [(100, 0.9), (10, 0.0), (5, 0.0)])
def test_weight_averaging_spans_at_most_a_tenth_of_an_epoch(steps_per_epoch, momentum):
    # An average that started at the initial weights has forgotten them by the first validation.
    optimizer = make_optimizer(TrainConfig(weight_averaging=0.99), steps_per_epoch=steps_per_epoch)
    assert optimizer.ema_momentum == pytest.approx(momentum)


@pytest.mark.parametrize("momentum", [-0.1, 1.0])
def test_weight_averaging_outside_zero_to_one_is_named(momentum):
    with pytest.raises(ConfigError, match=f"weight_averaging must be in \\[0, 1\\), got {momentum}"):
        TrainConfig(weight_averaging=momentum).validate()
