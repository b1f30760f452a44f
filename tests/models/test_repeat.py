"""The repeat head's mixture and training targets, on hand-computed cases."""

import numpy as np
import pytest

from recommenders.models.repeat import RepeatHead, mix_with_catalog, repeat_targets, revisit_history
from recsys_base.tf_compat import tensorflow

tf = tensorflow()


def test_mixture_moves_the_gate_share_onto_the_sessions_items():
    # Four catalog items (indices 2..5), uniform catalog softmax, an even gate, and a
    # pointer split evenly between the two known positions (the third is padding).
    log_probability = mix_with_catalog(
        catalog_logits=tf.zeros([1, 4]), gate_logits=tf.zeros([1]),
        pointer_logits=tf.constant([[0.0, 0.0, -1e9]]), items=tf.constant([[2, 3, 0]], tf.int64))
    probability = np.exp(log_probability.numpy()[0])
    assert probability == pytest.approx([0.375, 0.375, 0.125, 0.125])
    assert probability.sum() == pytest.approx(1.0)


def test_an_item_seen_twice_collects_both_pointer_weights():
    log_probability = mix_with_catalog(
        catalog_logits=tf.zeros([1, 2]), gate_logits=tf.constant([50.0]),
        pointer_logits=tf.constant([[0.0, 0.0, 0.0]]), items=tf.constant([[3, 2, 3]], tf.int64))
    assert np.exp(log_probability.numpy()[0]) == pytest.approx([1 / 3, 2 / 3])


def test_repeat_targets_mark_seen_next_items_with_their_pointer_likelihood():
    items = tf.constant([[5, 6, 5, 7]], tf.int64)
    pointer = tf.where(tf.linalg.band_part(tf.ones([4, 4], tf.bool), -1, 0), 0.0, -1e9)[tf.newaxis]
    seen, log_likelihood = repeat_targets(items, items[:, 1:], pointer[:, :-1])
    assert seen.numpy().tolist() == [[False, True, False]]
    assert log_likelihood.numpy()[0] == pytest.approx([0.0, np.log(0.5), 0.0])


def test_pointer_never_looks_ahead_or_at_padding():
    head = RepeatHead(units=4)
    _, pointer = head(tf.random.normal([1, 3, 8]), tf.random.normal([1, 3, 8]), tf.constant([[4, 9, 0]], tf.int64))
    allowed = pointer.numpy()[0] > -1e8
    assert allowed.tolist() == [[True, False, False], [True, True, False], [True, True, False]]


def test_config_round_trip():
    head = RepeatHead(units=4, max_distance=8)
    assert RepeatHead.from_config(head.get_config()).get_config() == head.get_config()


def test_revisit_history_counts_returns_to_earlier_items():
    items = tf.constant([[5, 6, 5, 5, 0]], tf.int64)
    history = revisit_history(items, tf.not_equal(items, 0)).numpy()[0]
    assert history[:, 1].tolist() == [0, 0, 1, 1, 0]
    assert history[:4, 0] == pytest.approx([0, 0, 1 / 3, 2 / 4])
    assert history[:, 2] == pytest.approx(np.log1p(np.arange(5)))
