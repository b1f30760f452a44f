"""Disaster-recovery drills for the serving stack: scenarios, load, canary gate, report.

Each drill starts embedded server replicas on loopback, drives steady load through the
thin client, injects one fault and reports whether the shop kept being served.

Usage::

    from serving.drills import DrillConfig, run_drills, format_report
    results = run_drills(DrillConfig(workdir=Path("/tmp/drill")))
    print(format_report(results))
"""

from serving.drills.runner import SCENARIOS, DrillConfig, format_report, run_drills
from serving.drills.scenarios import DrillResult, DrillSettings

__all__ = ["SCENARIOS", "DrillConfig", "DrillResult", "DrillSettings", "format_report", "run_drills"]
