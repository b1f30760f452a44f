"""Time-based train/validation/test split with no leakage from the future.

Whole sessions go to one part by the time of their last event:
``train < validation_start <= validation < test_start <= test``. So every training event
happened before any validation or test session ended, and a model trained on the train
part never saw what it is evaluated on. Validation and test then lose what a model
trained on train cannot score (:data:`SPLIT_REASONS`): ``unseen_item`` events (items that
never occur in train) and, afterwards, ``short_session_after_split`` sessions (fewer than
``min_session_length`` view/cart/purchase events left).

Example:

>>> import pandas as pd
>>> from recommenders.data import schema
>>> events = schema.conform_events(pd.DataFrame({"session_id": ["a", "a", "b", "b"],
...     "item_id": ["x", "y", "x", "y"], "event_type": "view",
...     "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"])}))
>>> result = time_split(events, validation_fraction=0.0, test_fraction=0.5)
>>> list(result.train["session_id"].unique()), list(result.test["session_id"].unique())
(['a'], ['b'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from recommenders.data import schema
from recommenders.data.report import DropLedger, PartSummary, SplitReport, quarantine_events
from recsys_base.errors import ConfigError, DataError
from recsys_base.fields import check_fields

SPLIT_REASONS = ("unseen_item", "short_session_after_split")


@dataclass
class SplitConfig:
    """Shares of sessions (by end time) held out for validation and test.

    Example:

    >>> SplitConfig(validation_fraction=0.2).validate().test_fraction
    0.1
    """

    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    min_session_length: int = 2

    def validate(self) -> SplitConfig:
        """Checks the types and that the fractions leave room for training; returns ``self``."""
        check_fields(self)
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}")
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ConfigError(
                f"validation_fraction + test_fraction must be < 1 to leave training data, got "
                f"{self.validation_fraction} + {self.test_fraction}"
            )
        if self.min_session_length < 1:
            raise ConfigError(f"min_session_length must be >= 1, got {self.min_session_length}")
        return self


class Cutoffs(NamedTuple):
    """First session-end time of validation and of test.

    Example:

    >>> import pandas as pd
    >>> Cutoffs(pd.Timestamp("2024-01-10"), pd.Timestamp("2024-01-20")).test_start.day
    20
    """

    validation_start: pd.Timestamp
    test_start: pd.Timestamp


class SplitResult(NamedTuple):
    """The three parts (canonical events), the cutoffs, the counts, and the dropped rows.

    The first four fields unpack like ``train, validation, test, cutoffs = result[:4]``.

    Example:

    Test session ``b`` ends with item ``z``, which training never saw: that event is dropped.

    >>> import pandas as pd
    >>> from recommenders.data import schema
    >>> events = schema.conform_events(pd.DataFrame({"session_id": ["a", "a", "b", "b", "b"],
    ...     "item_id": ["x", "y", "x", "y", "z"], "event_type": "view",
    ...     "timestamp": pd.date_range("2024-01-01", periods=5, freq="D")}))
    >>> result = time_split(events, validation_fraction=0.0, test_fraction=0.5)
    >>> result.report.dropped["unseen_item"], list(result.quarantine["item_id"]), list(result.test["item_id"])
    (1, ['z'], ['x', 'y'])
    >>> train, validation, test, cutoffs = result[:4]
    >>> cutoffs.test_start
    Timestamp('2024-01-05 00:00:00')
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    cutoffs: Cutoffs
    report: SplitReport
    quarantine: pd.DataFrame


def _holdout_filter(part: pd.DataFrame, train_items: pd.Index, min_length: int, ledger: DropLedger) -> pd.DataFrame:
    is_item = part["event_type"] != schema.SEARCH
    part = ledger.take(part, is_item & ~part["item_id"].isin(train_items), "unseen_item")
    length = (part["event_type"] != schema.SEARCH).groupby(part["session_id"]).transform("sum")
    return ledger.take(part, length < min_length, "short_session_after_split").reset_index(drop=True)


def time_split(
    events: pd.DataFrame, validation_fraction: float = 0.1, test_fraction: float = 0.1, min_session_length: int = 2
) -> SplitResult:
    """Splits canonical ``events`` by session end time (see the module docstring).

    The last ``test_fraction`` of sessions by end time are test, the ``validation_fraction``
    before them validation (sessions ending at the same instant as a cutoff go to the
    later part). An empty part's cutoff is one nanosecond after the last event.
    """
    config = SplitConfig(validation_fraction, test_fraction, min_session_length).validate()
    if events.empty:
        raise DataError("cannot split: there are no events")
    end = events.groupby("session_id")["timestamp"].max().sort_values(kind="stable")
    n = len(end)
    n_test = round(n * config.test_fraction)
    n_validation = round(n * config.validation_fraction)
    after_last = end.iloc[-1] + pd.Timedelta(1, "ns")
    test_start = end.iloc[n - n_test] if n_test else after_last
    validation_start = end.iloc[n - n_test - n_validation] if n_validation else test_start
    session_end = events["session_id"].map(end)
    train = events[session_end < validation_start].reset_index(drop=True)
    if train.empty:
        raise DataError(
            f"cannot split: every session ends at or after {validation_start}; there would be no training data"
        )
    validation = events[(session_end >= validation_start) & (session_end < test_start)]
    test = events[session_end >= test_start]

    ledger = DropLedger(SPLIT_REASONS)
    train_items = pd.Index(train["item_id"].dropna().unique())
    validation = _holdout_filter(validation, train_items, config.min_session_length, ledger)
    test = _holdout_filter(test, train_items, config.min_session_length, ledger)
    parts = {"train": train, "validation": validation, "test": test}
    report = SplitReport(
        validation_start=validation_start.isoformat(),
        test_start=test_start.isoformat(),
        rows_in=len(events),
        rows_out=len(train) + len(validation) + len(test),
        dropped=dict(ledger.counts),
        parts={name: PartSummary.of(part) for name, part in parts.items()},
    )
    cutoffs = Cutoffs(validation_start, test_start)
    return SplitResult(train, validation, test, cutoffs, report, quarantine_events(ledger))


def unsplit_report(parts: dict[str, pd.DataFrame]) -> SplitReport:
    """The report of parts fixed by the source (a benchmark's own split): nothing dropped."""
    starts = {name: part["timestamp"].min().isoformat() if len(part) else None for name, part in parts.items()}
    rows = sum(len(part) for part in parts.values())
    return SplitReport(
        validation_start=starts["validation"] or starts["test"],
        test_start=starts["test"],
        rows_in=rows,
        rows_out=rows,
        dropped=dict.fromkeys(SPLIT_REASONS, 0),
        parts={name: PartSummary.of(part) for name, part in parts.items()},
    )


def latest_sessions(events: pd.DataFrame, n_sessions: int | None) -> pd.DataFrame:
    """The events of the ``n_sessions`` sessions that ended last (all of them for ``None`` or fewer).

    A time-ordered subsample: the sessions closest to validation and test, as a cheaper
    stand-in for the whole training split (the multi-fidelity budget of tuning).

    >>> events = pd.DataFrame({"session_id": ["a", "b", "b", "c"],
    ...     "timestamp": pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-02", "2024-01-04"])})
    >>> sorted(latest_sessions(events, 2)["session_id"].unique())
    ['a', 'c']
    """
    if n_sessions is None:
        return events
    ends = events.groupby("session_id", sort=False)["timestamp"].max().sort_values(kind="stable")
    return events[events["session_id"].isin(ends.index[-n_sessions:])]
