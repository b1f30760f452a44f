"""``recsys drill``: disaster-recovery drills against embedded server replicas on loopback."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from drills.scenarios import DrillSettings
from recsys.cli.flags import field_flag, field_values

FRESHNESS = "freshness"


def register(subparsers) -> None:
    """Adds the ``drill`` command to the ``recsys`` parser."""
    drill = subparsers.add_parser(
        "drill",
        help="run disaster-recovery drills (replica loss, bad versions, canary gate) and print a report",
        description="Starts embedded server replicas on loopback, drives steady load through the thin client, "
        "injects one fault per scenario and prints pass/fail, failed requests, failover time and p99 during the fault. "
        "Exits 1 if any drill failed.",
    )
    drill.add_argument("--scenario", action="append", dest="scenarios", metavar="NAME",
                       help="scenario to run, repeatable (default: all fault drills; an unknown name lists them); "
                            f"'{FRESHNESS}' trains and retrains a tiny shop under load (minutes), run only when named")
    drill.add_argument("--model-base", type=Path,
                       help="exported models directory (saved_models/); default: the toy contract models")
    drill.add_argument("--holdout", type=Path, help="prepared data directory whose test split feeds the canary gate (with --model-base)")
    drill.add_argument("--workdir", type=Path, help="where the drills copy models and write logs (default: a temporary directory)")
    for field, text, flag in (
        ("replicas", "replicas in the kill drill (>= 2)", None),
        ("workers", "client threads driving load", None),
        ("rate_per_worker", "requests per second per client thread", "--rate"),
        ("fault_seconds", "how long load runs after each fault", None),
        ("first_request_bound_ms", "restart drill: bound on the first request's latency", None),
        ("gate_max_drop", "canary gate: largest hit-rate drop vs stable that still promotes", None),
        ("freshness_days", "freshness drill: new shop days retrained and released under load", None),
    ):
        field_flag(drill, DrillSettings, field, text, flag)
    drill.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    drill.set_defaults(func=_drill)


def _drill(args: argparse.Namespace) -> int:
    from drills import SCENARIOS, DrillConfig, format_report, run_drills
    from drills.runner import results_as_dicts

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    settings = DrillSettings(**field_values(args, DrillSettings)).validate()
    scenarios = tuple(args.scenarios or SCENARIOS)
    faults = tuple(name for name in scenarios if name != FRESHNESS)
    results = []
    if faults:
        results += run_drills(DrillConfig(scenarios=faults, model_base=args.model_base, holdout=args.holdout,
                                          workdir=args.workdir, settings=settings))
    if FRESHNESS in scenarios:
        results.append(_freshness(args.workdir, settings))
    print(format_report(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results_as_dicts(results), indent=1))
    return 0 if all(result.passed for result in results) else 1


def _freshness(workdir, settings: DrillSettings):
    import tempfile

    from recsys.freshness import freshness

    if workdir is not None:
        return freshness(Path(workdir) / FRESHNESS, settings)
    with tempfile.TemporaryDirectory(prefix="recsys-freshness-") as scratch:
        return freshness(Path(scratch), settings)
