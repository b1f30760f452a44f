"""What data preparation did: rows in and out, rows dropped by reason, split sizes.

Every stage that drops rows records them in a :class:`DropLedger`, so each dropped row
is both counted under a stable reason name and kept (with a ``reason`` column) in the
quarantine table: ``rows_in == rows_out + quarantined`` always holds.

Example:

>>> report = DataReport(source="demo")
>>> DataReport.from_dict(report.to_dict()) == report
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pandas as pd

from recommenders.data import schema

PARTS = ("train", "validation", "test")


class DropLedger:
    """Collects dropped rows under reason names fixed up front (so reports stay stable).

    Example:

    >>> import pandas as pd
    >>> ledger = DropLedger(("negative",))
    >>> frame = pd.DataFrame({"x": [1, -1, 2]})
    >>> kept = ledger.take(frame, frame["x"] < 0, "negative")
    >>> ledger.counts, len(kept), list(ledger.quarantine(["x"])["reason"])
    ({'negative': 1}, 2, ['negative'])
    """

    def __init__(self, reasons: tuple[str, ...]):
        self.counts = dict.fromkeys(reasons, 0)
        self._parts: list[pd.DataFrame] = []

    def take(self, frame: pd.DataFrame, mask: pd.Series, reason: str) -> pd.DataFrame:
        """Records the rows of ``frame`` where ``mask`` is true under ``reason``; returns the rest."""
        if reason not in self.counts:
            raise KeyError(f"unknown drop reason {reason!r}; known: {', '.join(self.counts)}")
        mask = mask.fillna(False).astype(bool)
        dropped = frame[mask]
        self.counts[reason] += len(dropped)
        if len(dropped):
            self._parts.append(dropped.assign(reason=reason))
        return frame[~mask]

    def quarantine(self, columns) -> pd.DataFrame:
        """The dropped rows (``columns`` plus ``reason``), in the order they were dropped."""
        columns = list(columns)
        if not self._parts:
            empty = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
            return empty.assign(reason=pd.Series(dtype="string"))
        out = pd.concat([p[columns + ["reason"]] for p in self._parts], ignore_index=True)
        return out.astype({"reason": "string"})


def quarantine_events(ledger: DropLedger) -> pd.DataFrame:
    """The ledger's dropped events in canonical event dtypes plus a string ``reason`` column."""
    frame = ledger.quarantine(schema.EVENT_COLUMNS)
    reason = frame["reason"]
    return schema.conform_events(frame).assign(reason=pd.array(reason, dtype="string"))


def quarantine_catalog(ledger: DropLedger) -> pd.DataFrame:
    """The ledger's dropped catalog rows in canonical catalog dtypes plus ``reason``."""
    frame = ledger.quarantine(schema.CATALOG_COLUMNS)
    reason = frame["reason"]
    return schema.conform_catalog(frame).assign(reason=pd.array(reason, dtype="string"))


@dataclass
class CleaningReport:
    """Counts from :func:`recommenders.data.cleaning.clean` (events and catalog separately).

    Example:

    >>> CleaningReport(rows_in=3, rows_out=2, dropped={"duplicate": 1}).dropped["duplicate"]
    1
    """

    rows_in: int = 0
    rows_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    sessions_out: int = 0
    items_out: int = 0
    sessions_from_users: int = 0
    sessions_split_by_gap: int = 0
    catalog_rows_in: int = 0
    catalog_rows_out: int = 0
    catalog_dropped: dict[str, int] = field(default_factory=dict)
    catalog_prices_cleared: dict[str, int] = field(default_factory=dict)
    catalog_rows_added: int = 0


@dataclass
class PartSummary:
    """Size and time range of one split part (times as ISO strings, ``None`` when empty).

    Example:

    >>> from recommenders.data import schema
    >>> PartSummary.of(schema.empty_events()).events
    0
    """

    events: int = 0
    sessions: int = 0
    items: int = 0
    first_event: str | None = None
    last_event: str | None = None

    @classmethod
    def of(cls, events: pd.DataFrame) -> PartSummary:
        """Summarizes a canonical events frame."""
        if events.empty:
            return cls()
        return cls(
            events=len(events),
            sessions=int(events["session_id"].nunique()),
            items=int(events["item_id"].nunique()),
            first_event=events["timestamp"].min().isoformat(),
            last_event=events["timestamp"].max().isoformat(),
        )


@dataclass
class SplitReport:
    """Counts from :func:`recommenders.data.split.time_split`.

    Example:

    >>> SplitReport().parts["test"].sessions
    0
    """

    validation_start: str | None = None
    test_start: str | None = None
    rows_in: int = 0
    rows_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    parts: dict[str, PartSummary] = field(default_factory=lambda: {p: PartSummary() for p in PARTS})


@dataclass
class DataReport:
    """The whole preparation: where the data came from, cleaning, then the split.

    Example:

    >>> print(DataReport(source="demo").format_table().splitlines()[0])
    source                                 demo
    """

    source: str = ""
    cleaning: CleaningReport = field(default_factory=CleaningReport)
    split: SplitReport = field(default_factory=SplitReport)

    @property
    def quarantined(self) -> int:
        """Event rows dropped by cleaning and by the split together."""
        return sum(self.cleaning.dropped.values()) + sum(self.split.dropped.values())

    def to_dict(self) -> dict:
        """A JSON-ready dict; :meth:`from_dict` inverts it exactly."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DataReport:
        """Rebuilds a report written by :meth:`to_dict`."""
        split = dict(data["split"])
        split["parts"] = {name: PartSummary(**part) for name, part in split["parts"].items()}
        return cls(source=data["source"], cleaning=CleaningReport(**data["cleaning"]), split=SplitReport(**split))

    def format_table(self) -> str:
        """A plain-text table for terminals: every count, reasons in their fixed order."""
        c, s = self.cleaning, self.split
        rows: list[tuple[str, object]] = [("source", self.source or "-"), ("", "")]
        rows += [("events in", c.rows_in)]
        rows += [(f"  dropped: {reason}", n) for reason, n in c.dropped.items()]
        rows += [
            ("events after cleaning", c.rows_out),
            ("  sessions", c.sessions_out),
            ("  items", c.items_out),
            ("  sessions made from user activity", c.sessions_from_users),
            ("  sessions split at inactivity gaps", c.sessions_split_by_gap),
            ("", ""),
            ("catalog rows in", c.catalog_rows_in),
        ]
        rows += [(f"  dropped: {reason}", n) for reason, n in c.catalog_dropped.items()]
        rows += [(f"  price cleared: {reason}", n) for reason, n in c.catalog_prices_cleared.items()]
        rows += [("  added for items only seen in events", c.catalog_rows_added), ("catalog rows out", c.catalog_rows_out)]
        rows += [("", ""), ("split: validation from", s.validation_start or "-"), ("split: test from", s.test_start or "-")]
        rows += [(f"  dropped: {reason}", n) for reason, n in s.dropped.items()]
        for name, part in s.parts.items():
            span = f"{part.first_event or '-'} .. {part.last_event or '-'}"
            rows.append((f"{name}", f"{part.events:,} events, {part.sessions:,} sessions, {part.items:,} items, {span}"))
        rows += [("", ""), ("quarantined events", self.quarantined)]
        width = max(len(label) for label, _ in rows)
        lines = []
        for label, value in rows:
            text = f"{value:,}" if isinstance(value, int) else str(value)
            lines.append(f"{label:<{width}}  {text}".rstrip() if label else "")
        return "\n".join(lines)
