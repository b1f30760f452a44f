"""The result of an evaluation run: per-model metrics and timings, as a table or JSON.

Metric values are fractions (0.5136, not 51.36); :meth:`EvaluationReport.format_table`
shows them in percent, the way papers and the dataset README quote them.

Example:

>>> report = EvaluationReport(k_values=(20,), n_cases=2, catalog_size=3, results=[
...     ModelResult("popularity", {"HR@20": 0.5, "MRR@20": 0.25}, 0.1, 0.2)])
>>> report.result("popularity").metrics["HR@20"]
0.5
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from recsys_base.errors import DataError

METRIC_NAMES = ("HR", "MRR", "NDCG", "Coverage")


def metric_key(name: str, k: int) -> str:
    """The key a metric is stored under, e.g. ``metric_key("HR", 20) == "HR@20"``."""
    return f"{name}@{k}"


@dataclass(frozen=True)
class ModelResult:
    """One model's metrics (keys like ``"HR@20"``) and wall times in seconds.

    ``fit_seconds`` is ``None`` when the model arrived already trained.

    Example:

    >>> ModelResult("markov", {"HR@20": 0.35}, fit_seconds=None, recommend_seconds=3.0).name
    'markov'
    """

    name: str
    metrics: dict[str, float]
    fit_seconds: float | None
    recommend_seconds: float


@dataclass(frozen=True)
class EvaluationReport:
    """Every model's results on the same cases, in evaluation order.

    Example: see the module docstring; ``report.to_json(path)`` and
    ``EvaluationReport.from_json(path)`` round-trip exactly.
    """

    k_values: tuple[int, ...]
    n_cases: int
    catalog_size: int
    results: list[ModelResult] = field(default_factory=list)

    def result(self, name: str) -> ModelResult:
        """Returns the result of the model called ``name``."""
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no model named {name!r}; the report has {', '.join(r.name for r in self.results)}")

    def format_table(self) -> str:
        """A Markdown table: one row per model, metrics in percent, then fit and recommend seconds."""
        keys = [metric_key(m, k) for m in METRIC_NAMES for k in self.k_values]
        keys = [key for key in keys if any(key in r.metrics for r in self.results)]
        header = ["model", *keys, "fit s", "recommend s"]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        for r in self.results:
            cells = [f"{100 * r.metrics[key]:.2f}" if key in r.metrics else "" for key in keys]
            fit = "" if r.fit_seconds is None else f"{r.fit_seconds:.1f}"
            lines.append("| " + " | ".join([r.name, *cells, fit, f"{r.recommend_seconds:.1f}"]) + " |")
        caption = f"{self.n_cases:,} cases, full ranking over {self.catalog_size:,} items; metrics in percent."
        return "\n".join([caption, "", *lines])

    def to_dict(self) -> dict:
        """A JSON-ready dict (see :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EvaluationReport:
        """Rebuilds a report from :meth:`to_dict` output."""
        try:
            return cls(
                k_values=tuple(int(k) for k in data["k_values"]),
                n_cases=int(data["n_cases"]),
                catalog_size=int(data["catalog_size"]),
                results=[ModelResult(**r) for r in data["results"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"not an evaluation report: {exc}") from exc

    def to_json(self, path) -> None:
        """Writes the report as JSON, atomically (a reader never sees half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as out:
            json.dump(self.to_dict(), out, indent=2)
            out.write("\n")
        os.replace(out.name, path)

    @classmethod
    def from_json(cls, path) -> EvaluationReport:
        """Reads a report written by :meth:`to_json`."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise DataError(f"evaluation report not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)
