"""Which model version a call goes to: the A/B split between version labels.

Which replica takes a call is gRPC's round_robin (:mod:`serving.client.channels`); the
version is the one choice gRPC cannot make, since it travels inside the request's
ModelSpec, so the client makes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


class LabelSplit:
    """A deterministic percentage split of traffic between version labels.

    The same key (user or session id) always lands on the same label, and changing the
    percentages only moves the keys whose bucket crosses a boundary.

    Usage::

        split = LabelSplit({"stable": 90, "canary": 10})
        split.label_for("user-42")  # always the same answer for user-42
    """

    BUCKETS = 10_000

    def __init__(self, percentages: Mapping[str, float]):
        if not percentages:
            raise ValueError("label split: give at least one label")
        if any(share < 0 for share in percentages.values()):
            raise ValueError(f"label split: percentages must be >= 0, got {dict(percentages)}")
        total = sum(percentages.values())
        if abs(total - 100.0) > 1e-6:
            raise ValueError(f"label split: percentages must add up to 100, got {total} in {dict(percentages)}")
        self.percentages = dict(percentages)
        self._bounds = []
        cumulative = 0.0
        for label, share in self.percentages.items():
            cumulative += share
            self._bounds.append((round(cumulative * self.BUCKETS / 100.0), label))

    def label_for(self, key: str) -> str:
        """The label for ``key``: its SHA-256 bucket in 0..9999 against cumulative shares."""
        bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % self.BUCKETS
        for bound, label in self._bounds:
            if bucket < bound:
                return label
        return self._bounds[-1][1]
