"""Fuzzing at scale: thousands of hostile cases per target against a server in its own process.

The CI tests (tests/reliability/test_fuzz.py) run the same targets
(tests/reliability/fuzz_targets.py) with a few dozen cases each; this run gives each
target ``--cases`` (default 1,300: over 10,000 in all) and, instead of stopping at the
first failure, counts every crash: an answer outside the target's allowed set or an
exception. The server (toy recommend model, batching on, REST on, 64 KiB message limit)
runs as ``python -m drills.replica`` so its memory is its own: VmRSS after warm-up is the
baseline, VmHWM the peak over the whole run.

Usage::

    python benchmarks/fuzz_benchmark.py                 # ~10,400 cases
    python benchmarks/fuzz_benchmark.py --cases 50      # a quick look
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, provenance, run_main

NAME = "fuzz_benchmark"
SHOWN_CRASHES = 3  # first crash messages kept per target


def _memory_mb(pid: int) -> dict[str, float]:
    """The process's resident set now (VmRSS) and at its peak so far (VmHWM), in MB."""
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
    return {name: round(int(value.split()[0]) / 1024, 1) for name, value in fields.items()}


def _start_server(workdir: Path):
    from drills.replicas import ReplicaProcess
    from serving.deployment import DeploymentConfig, write_configs
    from serving.testing import export_toy_models
    from tests.reliability.fuzz_targets import LIMIT, MODEL, VERSION

    export_toy_models(workdir / "models", version=VERSION, models=(MODEL,))
    configs = write_configs(DeploymentConfig(model_base=str(workdir / "models"), models=(MODEL,), stable_version=VERSION),
                            workdir / "config")
    return ReplicaProcess(configs["models.config"], workdir / "models",
                          server_args=("--rest-port", "0", "--enable-batching", "--max-message-bytes", str(LIMIT)))


def _fuzz_target(name: str, target, endpoints, cases: int) -> dict:
    """Runs ``cases`` cases of one target, counting crashes rather than stopping at the first."""
    from hypothesis import HealthCheck, Phase, given, settings

    outcomes: collections.Counter = collections.Counter()
    crashes: list[str] = []
    start = time.monotonic()

    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def check(case):
        try:
            outcomes[target.check(endpoints, case)] += 1
        except Exception as error:  # noqa: BLE001 - a Crash, or anything else escaping the check: both count
            outcomes["crash"] += 1
            crashes.append(f"{type(error).__name__}: {error}"[:500])
        done = sum(outcomes.values())
        if done % 250 == 0:
            print(f"  {name}: {done}/{cases} cases, {len(crashes)} crashes, {time.monotonic() - start:.0f} s", flush=True)

    check()
    return {"target": name, "cases": sum(outcomes.values()), "crashes": len(crashes), "outcomes": dict(sorted(outcomes.items())),
            "seconds": round(time.monotonic() - start, 1), "first_crashes": crashes[:SHOWN_CRASHES]}


def run(args) -> dict:
    import grpc

    from tests.reliability.fuzz_targets import LIMIT, TARGETS, Endpoints, still_serving

    names = args.targets or list(TARGETS)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server = _start_server(workdir)
        try:
            pid = server.process.pid
            channel = grpc.insecure_channel(server.target, options=[("grpc.max_send_message_length", 8 * LIMIT)])
            files = workdir / "files"
            files.mkdir()
            endpoints = Endpoints(channel, channel, server.rest_port, files)
            for _ in range(20):  # warm-up: pools, caches and the batcher reach their working size
                assert still_serving(channel), "the server does not answer a valid request"
            baseline = _memory_mb(pid)
            print(f"server pid {pid}: {baseline['VmRSS']} MB resident after warm-up", flush=True)
            rows = []
            for name in names:
                print(f"{name}: {args.cases} cases", flush=True)
                row = _fuzz_target(name, TARGETS[name], endpoints, args.cases)
                row["serving_after"] = still_serving(channel) and server.process.poll() is None
                row["server_memory_mb"] = _memory_mb(pid)
                rows.append(row)
            end = _memory_mb(pid)
            channel.close()
        finally:
            server.stop()
    return {
        "cases_per_target": args.cases,
        "targets": rows,
        "total_cases": sum(row["cases"] for row in rows),
        "total_crashes": sum(row["crashes"] for row in rows),
        "server_memory_mb": {"baseline_rss": baseline["VmRSS"], "peak_rss": end["VmHWM"], "end_rss": end["VmRSS"],
                             "growth_rss": round(end["VmRSS"] - baseline["VmRSS"], 1)},
    }


def markdown(result: dict) -> str:
    memory = result["server_memory_mb"]
    lines = [
        "# Fuzz benchmark",
        "",
        f"{provenance(result)} Python {result['machine']['python']}. "
        f"{result['total_cases']:,} cases, {result['total_crashes']} crashes (goal 0). Server (separate process, batching and "
        f"REST on): {memory['baseline_rss']} MB resident after warm-up, peak {memory['peak_rss']} MB (VmHWM, whole run), "
        f"{memory['end_rss']} MB at the end ({memory['growth_rss']:+} MB).",
        "",
        "| target | cases | crashes | distinct outcomes | seconds | server RSS after (MB) | serving after |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for row in result["targets"]:
        outcomes = ", ".join(f"{name} {count}" for name, count in row["outcomes"].items())
        lines.append(f"| {row['target']} | {row['cases']:,} | {row['crashes']} | {outcomes} | {row['seconds']} | "
                     f"{row['server_memory_mb']['VmRSS']} | {'yes' if row['serving_after'] else 'NO'} |")
    crashes = [(row["target"], text) for row in result["targets"] for text in row["first_crashes"]]
    if crashes:
        lines += ["", "## First crashes per target", ""] + [f"- {target}: `{text}`" for target, text in crashes]
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> int:
    from tests.reliability.fuzz_targets import TARGETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1300, help="cases per target (default 1300; 8 targets: 10,400 in all)")
    parser.add_argument("--targets", nargs="*", choices=sorted(TARGETS), help="only these targets (default: all)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    return run_main(NAME, args, run, markdown)


if __name__ == "__main__":
    sys.exit(main())
