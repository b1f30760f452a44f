"""Serving cost: thin vs official client, and latency/QPS through the server vs in-process.

1. Import time and peak RSS of a process that imports the thin client
   (``serving.client``) vs the official ``tensorflow_serving.apis`` stubs (median of 3
   fresh subprocesses each).
2. p50/p99 latency and QPS of ``recommend`` at concurrency 1, 8 and 32: the SavedModel
   signature called in-process (the floor), and the embedded server (a separate process,
   loopback gRPC, thin client) without and with server-side batching.

    .venv/bin/python benchmarks/serving_benchmark.py [--model-base saved_models] [--requests 400]

Without ``--model-base`` it serves the toy contract models (50 items). Writes
``benchmarks/results/serving_benchmark.{json,md,png}``. Bounded loops, loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CONCURRENCY = (1, 8, 32)

_IMPORT_PROBE = """
import resource, sys, time
started = time.perf_counter()
{statement}
elapsed = time.perf_counter() - started
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'tensorflow' in sys.modules)
"""
CLIENTS = {
    "thin (serving.client)": "import serving.client",
    "official (tensorflow_serving.apis)": "from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc",
}


def import_costs(repeats: int = 3) -> list[dict]:
    """Median import seconds and peak RSS (MiB) of each client in fresh interpreters."""
    rows = []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    for name, statement in CLIENTS.items():
        runs = []
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, "-c", _IMPORT_PROBE.format(statement=statement)],
                capture_output=True, text=True, check=True, env=env, cwd=REPO,
            ).stdout.split()  # fmt: skip
            runs.append((float(out[0]), float(out[1]), out[2] == "True"))
        rows.append(
            {
                "client": name,
                "import_s": statistics.median(r[0] for r in runs),
                "peak_rss_mib": statistics.median(r[1] for r in runs),
                "imports_tensorflow": runs[0][2],
            }
        )
    return rows


def _percentiles(latencies: list[float], wall_s: float) -> dict:
    values = np.array(latencies) * 1000
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)), "qps": len(values) / wall_s}


def drive(call, concurrency: int, requests: int) -> dict:
    """Runs ``call()`` ``requests`` times from ``concurrency`` threads; latency stats and QPS."""
    per_thread = max(1, requests // concurrency)
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)

    def worker():
        mine = []
        barrier.wait()
        for _ in range(per_thread):
            started = time.perf_counter()
            call()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return _percentiles(latencies, time.perf_counter() - started)


def _start_server(model_base: Path, batching: Path | None) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "recsys", "serve", "--embedded", "--model-base", str(model_base), "--port", "0", "--rest-port", "0"]
    if batching is not None:
        command += ["--batching-config", str(batching)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    process.stdout.readline()
    address = process.stdout.readline().split("gRPC on ")[1].split(",")[0]
    return process, address


def latency_table(model_base: Path, requests: int, batching_file: Path) -> list[dict]:
    """Latency/QPS rows for in-process, server, and server with batching."""
    import recsys_base  # noqa: F401 - Keras 2 before TensorFlow loads
    from serving import contract
    from serving.client import RecommenderClient
    from serving.server.servable import Servable
    from serving.testing import toy_request

    model_dir = model_base / contract.RECOMMEND_MODEL
    version = max(int(path.name) for path in model_dir.iterdir() if path.name.isdigit())
    servable = Servable(contract.RECOMMEND_MODEL, version, model_dir / str(version))
    inputs = toy_request(contract.RECOMMEND_MODEL)
    inputs[contract.K] = np.array([20], dtype=np.int32)
    rows = []
    modes = [("in-process signature", None), ("server, no batching", "off"), ("server, batching", "on")]
    progress = tqdm(total=len(modes) * len(CONCURRENCY), desc="latency", unit="run")
    for mode, batching in modes:
        process = None
        if batching is None:
            call = lambda: servable.run(contract.DEFAULT_SIGNATURE, inputs)  # noqa: E731
        else:
            process, address = _start_server(model_base, batching_file if batching == "on" else None)
            client = RecommenderClient([address], deadline_s=30.0)
            call = lambda client=client: client.predict(contract.RECOMMEND_MODEL, inputs)  # noqa: E731
        try:
            call()  # first call outside the measurement
            for concurrency in CONCURRENCY:
                rows.append({"mode": mode, "concurrency": concurrency, **drive(call, concurrency, requests)})
                progress.update()
        finally:
            if process is not None:
                client.close()
                process.terminate()
                process.wait(timeout=60)
    progress.close()
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """p50 and p99 latency against concurrency, one line per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, metric in zip(axes, ("p50_ms", "p99_ms")):
        for mode in dict.fromkeys(row["mode"] for row in rows):
            points = [(row["concurrency"], row[metric]) for row in rows if row["mode"] == mode]
            axis.plot(*zip(*points), marker="o", label=mode)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
        axis.set_xlabel("concurrent requests")
        axis.set_title(metric.replace("_ms", " latency (ms)"))
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def markdown(imports: list[dict], rows: list[dict], machine: str) -> str:
    """The results as Markdown tables."""
    lines = [f"Machine: {machine}", "", "| client | import (s) | peak RSS (MiB) | imports TensorFlow |", "|---|---:|---:|---|"]
    lines += [f"| {r['client']} | {r['import_s']:.2f} | {r['peak_rss_mib']:.0f} | {r['imports_tensorflow']} |" for r in imports]
    lines += ["", "| mode | concurrency | p50 (ms) | p99 (ms) | QPS |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['mode']} | {r['concurrency']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['qps']:.0f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base", type=Path, help="exported models (default: toy contract models in a temp dir)")
    parser.add_argument("--requests", type=int, default=400, help="requests per (mode, concurrency) run")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-micros", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    imports = import_costs()
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as scratch:
        scratch = Path(scratch)
        model_base = args.model_base
        if model_base is None:
            import recsys_base  # noqa: F401
            from serving.testing import export_toy_models

            model_base = scratch / "models"
            export_toy_models(model_base)
        batching = scratch / "batching.txt"
        batching.write_text(
            f"max_batch_size {{ value: {args.max_batch_size} }}\nbatch_timeout_micros {{ value: {args.batch_timeout_micros} }}\n"
            "num_batch_threads { value: 2 }\npad_variable_length_inputs: true\n"
        )
        rows = latency_table(model_base, args.requests, batching)

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = markdown(imports, rows, machine)
    print(table)
    (RESULTS / "serving_benchmark.md").write_text(table)
    (RESULTS / "serving_benchmark.json").write_text(json.dumps({"machine": machine, "imports": imports, "latency": rows}, indent=2))
    plot(rows, RESULTS / "serving_benchmark.png")
    print(f"wrote {RESULTS}/serving_benchmark.{{md,json,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
