"""Disaster-recovery drills for the serving stack: scenarios, load, canary gate, report.

Each drill starts embedded server replicas on loopback, drives steady load through the
thin client, injects one fault and reports whether the shop kept being served.

Usage::

    from drills import DrillConfig, run_drills, format_report
    results = run_drills(DrillConfig(workdir=Path("/tmp/drill")))
    print(format_report(results))
"""

import recsys_base  # noqa: F401  (the Keras-2 switch, before a drill imports TensorFlow)
from drills.runner import SCENARIOS, DrillConfig, format_report, run_drills
from drills.scenarios import DrillResult, DrillSettings

__all__ = ["SCENARIOS", "DrillConfig", "DrillResult", "DrillSettings", "format_report", "run_drills"]
