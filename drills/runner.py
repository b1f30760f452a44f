"""Runs the drill scenarios in a private workspace and formats the report."""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from drills import scenarios
from drills.scenarios import DrillResult, DrillSettings
from drills.workspace import new_workspace, pristine_models
from recsys_base.errors import ConfigError

log = logging.getLogger(__name__)

SCENARIOS = {
    "replica_killed": scenarios.replica_killed,
    "corrupt_version": scenarios.corrupt_version,
    "unreadable_model_dir": scenarios.unreadable_model_dir,
    "restart_with_warmup": scenarios.restart_with_warmup,
    "canary_rejected": scenarios.canary_rejected,
    "three_exports": scenarios.three_exports,
}


@dataclass(frozen=True)
class DrillConfig:
    """Which scenarios to run on which models, and the load/timing ``settings``.

    ``model_base`` None drills the toy contract models (fast); otherwise the newest
    exported ``recommend`` version under it is copied into the workspace (the original is
    never touched) and the canary drill needs ``holdout``, a prepared dataset directory
    whose test split gives the holdout cases. ``workdir`` None uses a temporary directory.
    :func:`run_drills` validates it.

    Usage::

        DrillConfig(scenarios=("replica_killed",), settings=DrillSettings(replicas=3))
    """

    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    model_base: Path | None = None
    holdout: Path | None = None
    workdir: Path | None = None
    settings: DrillSettings = DrillSettings()

    def validate(self) -> DrillConfig:
        """Checks the scenarios, the directories and the settings; returns ``self``."""
        unknown = [name for name in self.scenarios if name not in SCENARIOS]
        if unknown or not self.scenarios:
            raise ConfigError(f"unknown drill scenario(s) {unknown or '(none given)'}; choose from {list(SCENARIOS)}")
        if self.model_base is not None and not Path(self.model_base).is_dir():
            raise ConfigError(f"--model-base {self.model_base} is not a directory")
        if self.model_base is not None and "canary_rejected" in self.scenarios and self.holdout is None:
            raise ConfigError("the canary_rejected drill on real models needs --holdout (a prepared dataset directory)")
        if self.holdout is not None and not Path(self.holdout).is_dir():
            raise ConfigError(f"--holdout {self.holdout} is not a directory")
        self.settings.validate()
        return self


def run_drills(config: DrillConfig, progress: bool = True) -> list[DrillResult]:
    """Runs ``config.scenarios`` in order (a tqdm bar unless ``progress`` is False); a
    scenario that crashes is reported as failed and the others still run."""
    from tqdm import tqdm

    config.validate()

    with tempfile.TemporaryDirectory(prefix="recsys-drill-") as scratch:
        root = Path(config.workdir or scratch)
        root.mkdir(parents=True, exist_ok=True)
        pristine, stable = pristine_models(root, config.model_base)
        holdout = None
        if config.model_base is not None and "canary_rejected" in config.scenarios:
            from drills.canary import prepared_holdout

            holdout = prepared_holdout(config.holdout, config.settings.holdout_cases, config.settings.seed)
        results = []
        for name in tqdm(config.scenarios, desc="drills", unit="scenario", disable=not progress):
            workspace = new_workspace(root, name, pristine, stable, toy=config.model_base is None)
            options = {"holdout": holdout} if name == "canary_rejected" else {}
            try:
                results.append(SCENARIOS[name](workspace, config.settings, **options))
            except Exception as error:  # a crashed drill is a failed drill, the others still run
                log.exception("drill %s crashed", name)
                results.append(DrillResult(name, False, notes=[f"crashed: {type(error).__name__}: {error}"]))
    return results


def _figure(value: float, digits: int) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def format_report(results: list[DrillResult]) -> str:
    """A Markdown table of the results plus one line of notes per scenario."""
    lines = [
        "| scenario | result | requests | failed | failover / restart s | p99 during fault ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(f"| {result.scenario} | {'PASS' if result.passed else 'FAIL'} | {result.requests} | {result.failed} "
                     f"| {_figure(result.failover_s, 2)} | {_figure(result.p99_fault_ms, 1)} |")
    lines.append("")
    for result in results:
        lines.extend(f"- {result.scenario}: {note}" for note in result.notes)
    return "\n".join(lines)


def results_as_dicts(results: list[DrillResult]) -> list[dict]:
    """The results as JSON-ready dicts (NaN figures become None)."""
    return [{key: (None if isinstance(value, float) and math.isnan(value) else value)
             for key, value in dataclasses.asdict(result).items()} for result in results]
