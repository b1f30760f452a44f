"""A/B label split and tensor encoding, without a server."""

from collections import Counter

import numpy as np
import pytest

from serving.client.routing import LabelSplit
from serving.client.tensors import to_array, to_tensor_proto


def test_label_split_is_deterministic_and_close_to_the_percentages():
    split = LabelSplit({"stable": 90, "canary": 10})
    labels = [split.label_for(f"user-{i}") for i in range(20_000)]
    assert labels == [LabelSplit({"stable": 90, "canary": 10}).label_for(f"user-{i}") for i in range(20_000)]
    assert abs(Counter(labels)["canary"] / len(labels) - 0.10) < 0.01


def test_growing_the_canary_only_moves_users_towards_it():
    before, after = LabelSplit({"canary": 10, "stable": 90}), LabelSplit({"canary": 30, "stable": 70})
    moved = [(before.label_for(f"u{i}"), after.label_for(f"u{i}")) for i in range(5000)]
    assert ("canary", "stable") not in moved


@pytest.mark.parametrize("shares, message", [({"a": 50, "b": 40}, "add up to 100"), ({"a": 110, "b": -10}, ">= 0"), ({}, "at least one")])
def test_bad_splits_are_refused(shares, message):
    with pytest.raises(ValueError, match=message):
        LabelSplit(shares)


@pytest.mark.parametrize(
    "values",
    [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([7], dtype=np.int32), np.array([["a", "é"]], dtype=object), np.array([True])],
)
def test_tensors_round_trip_exactly(values):
    decoded = to_array(to_tensor_proto(values))
    expected = values.astype(object) if values.dtype == object else values
    assert decoded.shape == values.shape
    assert [v.decode() if isinstance(v, bytes) else v for v in decoded.reshape(-1).tolist()] == expected.reshape(-1).tolist()


def test_unsendable_values_name_the_problem():
    with pytest.raises(ValueError, match="complex128"):
        to_tensor_proto(np.array([1j]))
