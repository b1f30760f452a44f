"""Which replica and which model version a call goes to: health tracking, backoff, A/B split."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Mapping


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap_s, base_s * (2**attempt)))


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


class TargetHealth:
    """Health of the replicas: failing ones are ejected for an exponentially growing time.

    ``pick`` prefers healthy targets (round robin among them) and falls back to the one
    whose ejection ends first, so a call never finds "no target" while any exists.

    Usage::

        health = TargetHealth(["10.0.0.1:8500", "10.0.0.2:8500"])
        target = health.pick()
        health.failed(target)   # or health.succeeded(target)
    """

    def __init__(self, targets: list[str], eject_base_s: float = 0.5, eject_cap_s: float = 10.0):
        if not targets:
            raise ValueError("give at least one target (host:port)")
        self.targets = list(targets)
        self._eject_base_s = eject_base_s
        self._eject_cap_s = eject_cap_s
        self._failures = dict.fromkeys(self.targets, 0)
        self._down_until = dict.fromkeys(self.targets, 0.0)
        self._cursor = 0
        self._lock = threading.Lock()

    def pick(self, avoid: set[str] = frozenset()) -> str:
        """A target to call next, avoiding ``avoid`` (already tried) while others remain."""
        with self._lock:
            now = time.monotonic()
            candidates = [t for t in self.targets if t not in avoid] or self.targets
            count = len(self.targets)
            ordered = [self.targets[(self._cursor + i) % count] for i in range(count)]
            self._cursor = (self._cursor + 1) % count
            for target in ordered:
                if target in candidates and self._down_until[target] <= now:
                    return target
            return min(candidates, key=lambda target: self._down_until[target])

    def failed(self, target: str) -> None:
        """Records a failed call: ejects ``target`` for base * 2**(failures-1) seconds."""
        with self._lock:
            self._failures[target] += 1
            delay = min(self._eject_cap_s, self._eject_base_s * 2 ** (self._failures[target] - 1))
            self._down_until[target] = time.monotonic() + delay

    def succeeded(self, target: str) -> None:
        """Records a successful call: ``target`` is healthy again."""
        with self._lock:
            self._failures[target] = 0
            self._down_until[target] = 0.0

    def healthy(self) -> list[str]:
        """Targets not currently ejected."""
        now = time.monotonic()
        with self._lock:
            return [t for t in self.targets if self._down_until[t] <= now]
