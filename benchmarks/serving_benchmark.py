"""Serving cost: thin vs official client, and latency/QPS through the server vs in-process.

1. Import time and peak RSS of a process that imports the thin client
   (``serving.client``) vs the official ``tensorflow_serving.apis`` stubs (median of 3
   fresh subprocesses each).
2. For each export (the toy contract models, 50 items; and a Diginetica-size export: the
   LSTM two-tower + ranker over the real 43,097-item vocabulary built from the
   dataset's training split, untrained, since latency does not depend on the weights),
   p50/p99 latency and QPS of ``recommend`` at concurrency 1, 8 and 32, all in one run:

   * the SavedModel's signature called in-process on ready tensors (the floor);
   * a gRPC echo server answering every Predict with that model's response bytes, without
     parsing or running anything: the cost of Python gRPC (server and thin client) alone;
   * the embedded server (a separate process, loopback gRPC, thin client) without batching
     and with the production batching parameters (``BatchingOptions``' defaults, the ones
     ``serving/deployment.py`` writes for TF Serving).

   The two ratios the serving work aims at are computed from the same run: server p50 /
   in-process p50 at concurrency 1, and batched / unbatched QPS at concurrency 32.

    .venv/bin/python benchmarks/serving_benchmark.py [--exports toy,diginetica] [--requests 400]
        [--data-dir DIR] [--model-base DIR] [--max-batch-size N --batch-timeout-micros N ...]

``--model-base`` serves already exported models in place of the toy ones. Writes
``benchmarks/results/serving_benchmark.{json,md,png}``. Bounded loops, loopback only;
about 3 minutes on 2 CPUs (the Diginetica export takes half of that).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, REPO, RESULTS, provenance, run_main

CONCURRENCY = (1, 8, 32)
EXPORTS = ("toy", "diginetica")
IN_PROCESS, ECHO, SERVER, BATCHED = "in-process signature", "gRPC echo (no model)", "server, no batching", "server, batching"
MODES = (IN_PROCESS, ECHO, SERVER, BATCHED)
RECOMMEND_K = 20  # the Diginetica protocol's cut-off (HR@20)

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

# A Predict servicer that answers every call with fixed bytes: grpcio's generic handler
# with no (de)serializers, so only Python gRPC's own work is left. Same thread pool size
# as the embedded server (ServerConfig.workers).
_ECHO_SERVER = """
import sys
from concurrent import futures
import grpc
response = open(sys.argv[1], 'rb').read()
handler = grpc.method_handlers_generic_handler(
    'tensorflow.serving.PredictionService',
    {'Predict': grpc.unary_unary_rpc_method_handler(lambda request, context: response)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=int(sys.argv[2])), handlers=[handler])
port = server.add_insecure_port('127.0.0.1:0')
server.start()
print('echo: gRPC on 127.0.0.1:%d,' % port, flush=True)
server.wait_for_termination()
"""


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


def _listening(command: list[str]) -> tuple[subprocess.Popen, str]:
    """Starts ``command`` and reads the gRPC address from its "... gRPC on host:port," line."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=env)
    for line in process.stdout:
        if "gRPC on " in line:
            return process, line.split("gRPC on ")[1].split(",")[0].strip()
    raise RuntimeError(f"{command[:4]} exited before serving (code {process.wait()})")


def _start_server(model_base: Path, batching: Path | None) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "recsys", "serve", "--embedded", "--model-base", str(model_base), "--port", "0", "--rest-port", "0"]
    if batching is not None:
        command += ["--batching-config", str(batching)]
    return _listening(command)


def export_toy(base: Path, num_items: int) -> tuple[dict, str]:
    """The toy contract models under ``base``; the recommend request and a description."""
    from serving.testing import export_toy_models, toy_request

    export_toy_models(base, num_items=num_items, models=("recommend",))
    inputs = toy_request("recommend", num_items)
    inputs["k"] = np.array([min(RECOMMEND_K, num_items)], dtype=np.int32)
    return inputs, f"toy contract model, {num_items} items, fixed scores (serving/testing.py)"


def export_diginetica(base: Path, data_dir: Path, config_path: Path) -> tuple[dict, str]:
    """An untrained Diginetica-size export under ``base``; a real test session as the request.

    The vocabulary is built as training builds it (``FeatureVocabularies.build`` on the
    training split and the catalog), the towers from ``config_path`` with the features
    Diginetica lacks (users, queries, clock time) off, as ``diginetica_retrieval.py`` does.
    """
    from recommenders.data.loaders import load_srgnn_splits
    from recommenders.features.vocabulary import FeatureVocabularies
    from recommenders.models.export import export_models
    from recommenders.models.ranking import MultiTaskRanker
    from recommenders.models.retrieval import SessionRetrievalModel
    from recsys.workflow import RunConfig
    from recsys_base.tf_compat import tensorflow
    from serving.client import sessions

    tensorflow().get_logger().setLevel("ERROR")  # saving untrained Keras layers warns once per layer
    config = RunConfig.from_file(config_path)
    for towers in (config.retrieval, config.ranking):
        towers.use_user = towers.use_query = towers.use_context = False
    config.validate()
    prepared = load_srgnn_splits(data_dir, validation_fraction=0.0)
    vocab = FeatureVocabularies.build(prepared.train, prepared.catalog)
    export_models(SessionRetrievalModel(vocab, config.retrieval), MultiTaskRanker(vocab, config.ranking), base, version=1,
                  recommend_config=config.recommend)
    # A test session of the median length, as a shopper's client would send it.
    test = prepared.test.sort_values(["session_id", "timestamp"], kind="stable")
    lengths = test.groupby("session_id", sort=False).size()
    session_id = (lengths - lengths.median()).abs().idxmin()
    events = test[test["session_id"] == session_id]
    session = [(item, kind, int(stamp.timestamp())) for item, kind, stamp in zip(events["item_id"], events["event_type"], events["timestamp"])]
    inputs = {**sessions.session_inputs([session], [None], [None]), **sessions.exclude_inputs([None])}
    inputs["k"] = np.array([RECOMMEND_K], dtype=np.int32)
    description = (f"LSTM two-tower + ranker, untrained, {vocab.num_items:,} items (Diginetica training-split vocabulary), "
                   f"config {config_path.relative_to(REPO) if config_path.is_relative_to(REPO) else config_path}; "
                   f"request: a {len(session)}-event test session, k={RECOMMEND_K}")
    return inputs, description


def _in_process_call(model_base: Path, inputs: dict):
    """The recommend signature of the exported model, called on prebuilt tensors: the floor."""
    from recsys_base.tf_compat import tensorflow

    tf = tensorflow()
    version_dir = max((path for path in (model_base / "recommend").iterdir() if path.name.isdigit()), key=lambda path: int(path.name))
    function = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    tensors = {name: tf.constant(array) for name, array in inputs.items()}
    return lambda: {name: value.numpy() for name, value in function(**tensors).items()}


def latency_rows(name: str, model_base: Path, inputs: dict, requests: int, batching_file: Path, scratch: Path, progress) -> list[dict]:
    """Latency/QPS rows of every mode and concurrency for one export."""
    from tensorflow_serving.apis import predict_pb2

    from recsys_base.tf_compat import tensorflow
    from serving.client import RecommenderClient

    tf = tensorflow()
    call = _in_process_call(model_base, inputs)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = "recommend"
    for output, value in call().items():
        response.outputs[output].CopyFrom(tf.make_tensor_proto(value))
    echo_response = scratch / f"{name}-response.bin"
    echo_response.write_bytes(response.SerializeToString())
    rows = []
    for mode in MODES:
        process = client = None
        if mode != IN_PROCESS:
            if mode == ECHO:
                process, address = _listening([sys.executable, "-c", _ECHO_SERVER, str(echo_response), "64"])
            else:
                process, address = _start_server(model_base, batching_file if mode == BATCHED else None)
            client = RecommenderClient([address], deadline_s=60.0)
            call = lambda client=client: client.predict("recommend", inputs)  # noqa: E731
        try:
            call()  # first call outside the measurement
            for concurrency in CONCURRENCY:
                progress.set_description(f"{name}: {mode}, concurrency {concurrency}")
                rows.append({"mode": mode, "concurrency": concurrency, **drive(call, concurrency, requests)})
                progress.update()
        finally:
            if process is not None:
                client.close()
                process.terminate()
                process.wait(timeout=60)
    return rows


def ratios(rows: list[dict]) -> dict:
    """The aims' ratios: server p50 / in-process p50 at concurrency 1, batched / unbatched QPS at 32."""
    at = {(row["mode"], row["concurrency"]): row for row in rows}
    low, high = CONCURRENCY[0], CONCURRENCY[-1]
    return {
        "server_p50_over_in_process_c1": at[SERVER, low]["p50_ms"] / at[IN_PROCESS, low]["p50_ms"],
        "batched_p50_over_in_process_c1": at[BATCHED, low]["p50_ms"] / at[IN_PROCESS, low]["p50_ms"],
        "echo_p50_over_in_process_c1": at[ECHO, low]["p50_ms"] / at[IN_PROCESS, low]["p50_ms"],
        "batched_qps_over_unbatched_c32": at[BATCHED, high]["qps"] / at[SERVER, high]["qps"],
    }


def plot(exports: dict, path: Path) -> None:
    """p50 and p99 latency against concurrency, one line per mode, one row per export."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(exports), 2, figsize=(10, 4 * len(exports)), squeeze=False)
    for row_axes, (name, export) in zip(axes, exports.items()):
        for axis, metric in zip(row_axes, ("p50_ms", "p99_ms")):
            for mode in MODES:
                points = [(row["concurrency"], row[metric]) for row in export["latency"] if row["mode"] == mode]
                axis.plot(*zip(*points), marker="o", label=mode)
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
            axis.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
            axis.set_xlabel("concurrent requests")
            axis.set_title(f"{name}: {metric.replace('_ms', ' latency (ms)')}")
            axis.grid(True, which="both", alpha=0.3)
        row_axes[0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def markdown(result: dict) -> str:
    """The results as Markdown tables."""
    b = result["batching"]
    lines = [
        f"{provenance(result)} Python {result['machine']['python']}; {result['requests']} requests per row.",
        "",
        "| client | import (s) | peak RSS (MiB) | imports TensorFlow |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {r['client']} | {r['import_s']:.2f} | {r['peak_rss_mib']:.0f} | {r['imports_tensorflow']} |" for r in result["imports"]]
    lines += ["", "Batching: " + ", ".join(f"{key} {value}" for key, value in b.items()) + ".", ""]
    for name, export in result["exports"].items():
        r = export["ratios"]
        lines += [
            f"## {name}: {export['description']}",
            "",
            "| mode | concurrency | p50 (ms) | p99 (ms) | QPS |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [f"| {row['mode']} | {row['concurrency']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['qps']:.0f} |" for row in export["latency"]]
        lines += [
            "",
            f"- server p50 / in-process p50 at concurrency 1: **{r['server_p50_over_in_process_c1']:.2f}x** (aim <= 1.3x); "
            f"with batching {r['batched_p50_over_in_process_c1']:.2f}x; the gRPC echo alone {r['echo_p50_over_in_process_c1']:.2f}x",
            f"- batched QPS / unbatched QPS at concurrency 32: **{r['batched_qps_over_unbatched_c32']:.2f}x** (aim >= 3x)",
            "",
        ]
    return "\n".join(lines)


def run(args) -> dict:
    from serving.deployment import DeploymentConfig, batching_parameters_text
    from serving.server.batching import BatchingOptions

    options = dataclasses.replace(BatchingOptions(), **{f.name: getattr(args, f.name) for f in dataclasses.fields(BatchingOptions)
                                                        if hasattr(args, f.name)}).validate()
    imports = [] if args.skip_imports else import_costs()
    results = {}
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as scratch:
        scratch = Path(scratch)
        batching = scratch / "batching.txt"
        batching.write_text(batching_parameters_text(DeploymentConfig(
            model_base=str(scratch), **{f.name: getattr(options, f.name) for f in dataclasses.fields(BatchingOptions)})))
        progress = tqdm(total=len(args.exports) * len(MODES) * len(CONCURRENCY), unit="row")
        for name in args.exports:
            progress.set_description(f"{name}: exporting")
            base = scratch / name
            if name == "toy":
                inputs, description = export_toy(base, args.toy_items)
                if args.model_base is not None:
                    base, description = args.model_base, f"models in {args.model_base}, toy request"
            else:
                inputs, description = export_diginetica(base, args.data_dir, args.config)
            rows = latency_rows(name, base, inputs, args.requests, batching, scratch, progress)
            results[name] = {"description": description, "latency": rows, "ratios": ratios(rows)}
        progress.close()
    return {"requests": args.requests, "batching": dataclasses.asdict(options), "imports": imports, "exports": results}


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import recsys_base  # noqa: F401 - Keras 2 before TensorFlow loads
    from serving.server.batching import BatchingOptions

    defaults = BatchingOptions()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exports", default=",".join(EXPORTS), help="comma-separated exports to measure: %(default)s")
    parser.add_argument("--model-base", type=Path, help="serve these exported models in place of the toy ones")
    parser.add_argument("--toy-items", type=int, default=50, help="catalogue size of the toy model")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="the Diginetica SR-GNN split")
    parser.add_argument("--config", type=Path, default=REPO / "benchmarks" / "configs" / "diginetica.json",
                        help="run config of the Diginetica towers")
    parser.add_argument("--requests", type=int, default=400, help="requests per (export, mode, concurrency) row")
    for field in dataclasses.fields(BatchingOptions):
        if field.type in ("int", int):
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=int, default=getattr(defaults, field.name))
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    parser.add_argument("--skip-imports", action="store_true", help="skip the client import measurement")
    args = parser.parse_args()
    exports = [name.strip() for name in args.exports.split(",") if name.strip()]
    if unknown := sorted(set(exports) - set(EXPORTS)):
        parser.error(f"unknown export(s) {unknown}; choose from {list(EXPORTS)}")

    args.exports = exports
    code = run_main("serving_benchmark", args, run, markdown)
    if code == 0:
        result = json.loads((args.output_dir / "serving_benchmark.json").read_text(encoding="utf-8"))
        plot(result["exports"], args.output_dir / "serving_benchmark.png")
        print(f"wrote {args.output_dir}/serving_benchmark.{{md,json,png}}")
    return code


if __name__ == "__main__":
    sys.exit(main())
