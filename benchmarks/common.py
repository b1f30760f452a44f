"""What every benchmark script shares: where data and results live, the machine, the run wrapper."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "diginetica"
RESULTS = REPO / "benchmarks" / "results"
def machine() -> dict:
    """CPU count this process may use, total memory and platform."""
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gb": round(total_kb / 2**20, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def run_main(name: str, args, run, markdown) -> int:
    """Runs a benchmark, prints its results page and writes ``<name>.json`` / ``<name>.md``.

    Bad input (a ``RecsysError``) is one line on stderr and exit code 2.
    """
    from recsys_base.errors import RecsysError

    try:
        result = run(args)
    except RecsysError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    page = markdown(result)
    print(page)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    (args.output_dir / f"{name}.md").write_text(page, encoding="utf-8")
    return 0
