"""The drill scenarios: each injects one fault under steady load and judges the outcome."""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from drills.load import LoadGenerator, recommend_inputs, summarize
from drills.replicas import ReplicaProcess
from drills.workspace import MODEL, Workspace, load_session
from recsys_base.errors import ConfigError, RecsysError
from serving import contract
from serving.client import RecommenderClient, ServingError


@dataclass(frozen=True)
class DrillSettings:
    """Load and timing shared by the scenarios (see :class:`drills.DrillConfig`)."""

    replicas: int = 2
    workers: int = 4
    rate_per_worker: float = 25.0
    k: int = 10
    warm_seconds: float = 1.0
    fault_seconds: float = 2.0
    poll_seconds: float = 0.25
    deadline_s: float = 2.0
    first_request_bound_ms: float = 1000.0
    compare_cold_start: bool = True
    gate_max_drop: float = 0.02
    holdout_cases: int = 100
    freshness_days: int = 7  # new shop days the freshness drill retrains and releases (recsys/freshness.py)
    seed: int = 0

    def validate(self) -> DrillSettings:
        """Checks every field; returns ``self``."""
        if self.replicas < 2:
            raise ConfigError(f"replicas must be >= 2 (a kill needs a survivor), got {self.replicas}")
        for name in ("workers", "k", "holdout_cases", "freshness_days"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("rate_per_worker", "fault_seconds", "poll_seconds", "deadline_s", "first_request_bound_ms"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.warm_seconds < 0 or not 0 <= self.gate_max_drop <= 1:
            raise ConfigError(f"need warm_seconds >= 0 and gate_max_drop in [0, 1]; got {self.warm_seconds}, {self.gate_max_drop}")
        return self


@dataclass
class DrillResult:
    """One scenario's outcome and figures (NaN where a figure does not apply)."""

    scenario: str
    passed: bool
    requests: int = 0
    failed: int = 0
    failover_s: float = float("nan")
    p99_fault_ms: float = float("nan")
    notes: list[str] = field(default_factory=list)


def _client(targets, settings: DrillSettings, **options) -> RecommenderClient:
    # The most attempts gRPC allows: a call caught on a killed replica retries on a live one.
    return RecommenderClient(list(targets), deadline_s=settings.deadline_s, retries=4, **options)


@contextmanager
def _in_process_server(workspace: Workspace, settings: DrillSettings):
    from serving.server import ServerConfig, serve

    handle = serve(ServerConfig(workspace.config_file, model_base=workspace.models_dir, port=0, poll_seconds=settings.poll_seconds,
                                allow_config_reload=True))  # the canary tooling reloads it (from loopback)
    try:
        yield handle
    finally:
        handle.stop(0)


def _wait_for(condition, timeout_s: float, interval_s: float = 0.05) -> float | None:
    """Seconds until ``condition()`` held, or None if it did not within ``timeout_s``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if condition():
            return time.monotonic() - start
        time.sleep(interval_s)
    return None


def _load(client, workspace: Workspace, settings: DrillSettings) -> LoadGenerator:
    session = load_session(workspace.version_dir(workspace.stable_version))
    return LoadGenerator(client, settings.workers, settings.rate_per_worker, settings.k, session)


def replica_killed(workspace: Workspace, settings: DrillSettings) -> DrillResult:
    """SIGKILL one of ``settings.replicas`` replica processes under load: no client request may fail."""
    replicas = [ReplicaProcess(workspace.config_file, workspace.models_dir, poll_seconds=settings.poll_seconds)
                for _ in range(settings.replicas)]
    try:
        with _client([r.target for r in replicas], settings) as client:
            load = _load(client, workspace, settings)
            with load.running():
                time.sleep(settings.warm_seconds)
                killed_at = time.monotonic()
                replicas[0].kill()
                time.sleep(settings.fault_seconds)
            fault = summarize(load.samples, killed_at, killed_at + settings.fault_seconds)
            total = summarize(load.samples)
            # The longest any shopper waited because of the kill: requests in flight at the
            # kill or started during the fault window, retries and failover included.
            affected = [s for s in load.samples if s.end >= killed_at and s.start < killed_at + settings.fault_seconds]
            failover = max((s.latency for s in affected), default=float("nan"))
    finally:
        for replica in replicas:
            replica.stop()
    notes = [f"{settings.replicas} replica processes, replica 1 SIGKILLed after {settings.warm_seconds:.0f}s; "
             f"{fault.requests} requests in the {settings.fault_seconds:.0f}s after the kill"]
    notes += [f"errors: {', '.join(total.errors)}"] if total.failed else []
    return DrillResult("replica_killed", total.failed == 0 and fault.requests > 0, total.requests, total.failed,
                       failover, fault.p99_ms, notes)


def _half_written_copy(source: Path, destination: Path) -> None:
    """``source`` copied as an export interrupted midway: saved_model.pb cut in half, no variables."""
    shutil.copytree(source, destination)
    graph = destination / "saved_model.pb"
    data = graph.read_bytes()
    graph.write_bytes(data[: len(data) // 2])
    shutil.rmtree(destination / "variables", ignore_errors=True)


def corrupt_version(workspace: Workspace, settings: DrillSettings) -> DrillResult:
    """A half-written new version lands in the base path and is labelled canary: labelling
    fails with its load error (models.config restored), the previous version keeps serving
    and GetModelStatus reports the broken one as END with its load error."""
    from drills.canary import set_labels

    stable, broken = workspace.stable_version, workspace.stable_version + 1
    with _in_process_server(workspace, settings) as handle, _client([f"127.0.0.1:{handle.port}"], settings) as client:
        target = f"127.0.0.1:{handle.port}"
        load = _load(client, workspace, settings)
        with load.running():
            time.sleep(settings.warm_seconds)
            dropped_at = time.monotonic()
            _half_written_copy(workspace.version_dir(stable), workspace.version_dir(broken))
            try:
                set_labels(workspace.config_file, MODEL, {contract.STABLE_LABEL: stable, contract.CANARY_LABEL: broken}, [target],
                           timeout_s=max(10.0, 20 * settings.poll_seconds))
                refused = None
            except RecsysError as error:
                refused = str(error)

            def broken_reported():
                return any(s.version == broken and s.state == "END" and s.error_code != "OK" for s in client.status(MODEL))

            detected_s = _wait_for(broken_reported, timeout_s=max(10.0, 20 * settings.poll_seconds))
            time.sleep(settings.fault_seconds)
        statuses = {s.version: s for s in client.status(MODEL)}
    fault = summarize(load.samples, dropped_at)
    total = summarize(load.samples)
    reported = statuses.get(broken)
    served_previous = fault.versions == (stable,)
    still_available = stable in statuses and statuses[stable].state == "AVAILABLE"
    notes = [f"version {broken} (saved_model.pb cut in half, no variables/) "
             + (f"reported {reported.state}/{reported.error_code} after {detected_s:.2f}s: {reported.error_message[:90]}"
                if detected_s is not None and reported else "never reported as failed"),
             f"versions that answered after the drop: {list(fault.versions)}",
             f"labelling it canary: {refused or 'accepted (it should have failed)'}"]
    passed = total.failed == 0 and detected_s is not None and served_previous and still_available and refused is not None
    return DrillResult("corrupt_version", passed, total.requests, total.failed, float("nan"), fault.p99_ms, notes)


def unreadable_model_dir(workspace: Workspace, settings: DrillSettings) -> DrillResult:
    """The model's base path becomes unreadable: the loaded version keeps serving.

    The drills run as root, for whom ``chmod 000`` blocks nothing, so unreadability is
    simulated the way a failed mount or a botched deploy looks: the directory is moved
    away and a regular file takes its place.
    """
    stable = workspace.stable_version
    away = workspace.model_dir.with_name(workspace.model_dir.name + ".away")
    with _in_process_server(workspace, settings) as handle, _client([f"127.0.0.1:{handle.port}"], settings) as client:
        load = _load(client, workspace, settings)
        with load.running():
            time.sleep(settings.warm_seconds)
            broken_at = time.monotonic()
            workspace.model_dir.rename(away)
            workspace.model_dir.write_text("not a directory\n")
            # Several polls must pass over the unreadable directory.
            time.sleep(max(settings.fault_seconds, 4 * settings.poll_seconds))
            during = client.status(MODEL)
            fault_end = time.monotonic()
            workspace.model_dir.unlink()
            away.rename(workspace.model_dir)
            time.sleep(settings.warm_seconds)
    fault = summarize(load.samples, broken_at, fault_end)
    total = summarize(load.samples)
    available = [s.version for s in during if s.state == "AVAILABLE"]
    notes = ["root ignores chmod, so the base path was moved away and replaced by a regular file",
             f"versions answering while unreadable: {list(fault.versions)}; AVAILABLE per GetModelStatus: {available}"]
    passed = total.failed == 0 and fault.requests > 0 and fault.versions == (stable,) and available == [stable]
    return DrillResult("unreadable_model_dir", passed, total.requests, total.failed, float("nan"), fault.p99_ms, notes)


def _first_requests(replica: ReplicaProcess, inputs, settings: DrillSettings, count: int = 50) -> tuple[list[float], list[str]]:
    """Latencies (s) of ``count`` sequential requests to a just-started replica, and errors."""
    latencies, errors = [], []
    with _client([replica.target], settings) as client:
        for _ in range(count):
            start = time.monotonic()
            try:
                client.predict(MODEL, inputs)
            except ServingError as error:
                errors.append(error.code.name)
            latencies.append(time.monotonic() - start)
    return latencies, errors


def restart_with_warmup(workspace: Workspace, settings: DrillSettings) -> DrillResult:
    """Stop a replica and start it again on the same port: the first request after it reports
    ready must answer within ``first_request_bound_ms`` (warmup already paid the tracing).
    With ``settings.compare_cold_start`` the same restart without warmup records is timed too."""
    from serving.contract.warmup import WARMUP_FILE

    first = ReplicaProcess(workspace.config_file, workspace.models_dir, poll_seconds=settings.poll_seconds)
    port = first.port
    stopped_at = time.monotonic()
    first.stop()
    replica = ReplicaProcess(workspace.config_file, workspace.models_dir, port=port, poll_seconds=settings.poll_seconds)
    restart_s = replica.ready_at - stopped_at
    inputs = recommend_inputs(list(load_session(workspace.version_dir(workspace.stable_version))), settings.k)
    try:
        latencies, errors = _first_requests(replica, inputs, settings)
    finally:
        replica.stop()
    first_ms = latencies[0] * 1000.0
    steady = sorted(latencies[1:])
    notes = [f"first request {first_ms:.1f} ms (bound {settings.first_request_bound_ms:.0f} ms), then p50 "
             f"{steady[len(steady) // 2] * 1000.0:.1f} ms; stop -> ready {restart_s:.1f}s on the same port"]
    if settings.compare_cold_start:
        (workspace.version_dir(workspace.stable_version) / WARMUP_FILE).unlink(missing_ok=True)
        cold = ReplicaProcess(workspace.config_file, workspace.models_dir, port=port, poll_seconds=settings.poll_seconds)
        try:
            cold_latencies, cold_errors = _first_requests(cold, inputs, settings, count=1)
        finally:
            cold.stop()
        errors += cold_errors
        notes.append(f"without warmup records the first request takes {cold_latencies[0] * 1000.0:.1f} ms")
    passed = not errors and first_ms <= settings.first_request_bound_ms
    return DrillResult("restart_with_warmup", passed, len(latencies), len(errors), restart_s, float("nan"), notes)


def canary_rejected(workspace: Workspace, settings: DrillSettings, holdout=None) -> DrillResult:
    """A canary worse than stable on the holdout is not promoted: ``stable`` keeps its
    version (in the server and in models.config), the decision is logged, load never fails."""
    from drills.canary import canary_gate, read_labels, toy_holdout
    from serving.testing import export_toy_models

    stable, canary = workspace.stable_version, workspace.stable_version + 1
    if holdout is None:
        holdout = toy_holdout(50, stable, settings.holdout_cases, settings.k, settings.seed)
    decision_log = workspace.root / "canary_decisions.jsonl"
    with _in_process_server(workspace, settings) as handle, _client([f"127.0.0.1:{handle.port}"], settings,
                                                                     version_label=contract.STABLE_LABEL) as client:
        load = _load(client, workspace, settings)
        with load.running():
            time.sleep(settings.warm_seconds)
            started = time.monotonic()
            # The canary: for the toy shop a differently ranked toy version; for a real model
            # the toy model, which answers by the contract but knows nothing of the shop.
            staging = workspace.root / "canary-export"
            export_toy_models(staging, version=canary, num_items=50, models=(MODEL,))
            shutil.move(str(staging / MODEL / str(canary)), str(workspace.version_dir(canary)))
            # The gate labels it canary, which loads it (models.config lists the labelled versions).
            decision = canary_gate(client, [f"127.0.0.1:{handle.port}"], workspace.config_file, MODEL, canary, holdout,
                                   k=settings.k, max_drop=settings.gate_max_drop, decision_log=decision_log)
            ended = time.monotonic()
            time.sleep(settings.warm_seconds)
            served_after = client.predict(MODEL, recommend_inputs(["item-001"], settings.k), label=contract.STABLE_LABEL).version
    fault = summarize(load.samples, started, ended)
    total = summarize(load.samples)
    labels = read_labels(workspace.config_file, MODEL)
    logged = decision_log.read_text().strip().splitlines() if decision_log.exists() else []
    notes = [decision.reason, f"labels after the gate: {labels}; stable-labelled requests answered by versions {list(total.versions)}",
             f"decision logged to {decision_log.name} ({len(logged)} line)"]
    passed = (not decision.promoted and labels.get(contract.STABLE_LABEL) == stable
              and contract.CANARY_LABEL not in labels
              and served_after == stable and total.versions == (stable,) and total.failed == 0 and len(logged) == 1)
    return DrillResult("canary_rejected", passed, total.requests, total.failed, float("nan"), fault.p99_ms, notes)


def three_exports(workspace: Workspace, settings: DrillSettings, exports: int = 3) -> DrillResult:
    """``exports`` new versions land in the base path in a row under ``stable``-labelled load,
    each labelled canary as it lands (models.config and the server rewritten by
    :func:`drills.canary.set_labels`): no ``stable`` request may fail and all are answered by
    the stable version, which stays loaded while the previous canaries unload.

    With the old ``latest {num_versions: 2}`` policy the second export already unloaded the
    version ``stable`` points at and every ``stable`` request failed NOT_FOUND.
    """
    from drills.canary import read_labels, set_labels

    stable = workspace.stable_version
    versions = list(range(stable + 1, stable + 1 + exports))
    with _in_process_server(workspace, settings) as handle, _client([f"127.0.0.1:{handle.port}"], settings,
                                                                     version_label=contract.STABLE_LABEL) as client:
        load = _load(client, workspace, settings)
        with load.running():
            time.sleep(settings.warm_seconds)
            started = time.monotonic()
            for version in versions:
                # A re-export of the stable model: written aside, moved in with one rename.
                staging = workspace.root / f"export-{version}"
                shutil.copytree(workspace.version_dir(stable), staging)
                staging.rename(workspace.version_dir(version))
                time.sleep(2 * settings.poll_seconds)  # polls see it on disk before it is labelled
                set_labels(workspace.config_file, MODEL, {contract.STABLE_LABEL: stable, contract.CANARY_LABEL: version},
                           [f"127.0.0.1:{handle.port}"])
            ended = time.monotonic()
            time.sleep(settings.warm_seconds)
        states = {s.version: s.state for s in client.status(MODEL)}
    before, during = summarize(load.samples, end=started), summarize(load.samples, started, ended)
    total = summarize(load.samples)
    labels = read_labels(workspace.config_file, MODEL)
    notes = [f"{exports} exports in {ended - started:.1f}s, each labelled canary; {during.requests} stable requests meanwhile, "
             f"answered by versions {list(total.versions)}",
             f"states after: {dict(sorted(states.items()))}; labels in models.config: {labels}",
             # A replica loading a version shares the CPUs (and the embedded one Python's GIL) with its requests.
             f"stable p50 / p99 {before.p50_ms:.1f} / {before.p99_ms:.1f} ms before the exports, "
             f"{during.p50_ms:.1f} / {during.p99_ms:.1f} ms while they loaded"]
    notes += [f"errors: {', '.join(total.errors)}"] if total.failed else []
    passed = (total.failed == 0 and during.requests > 0 and total.versions == (stable,) and states.get(stable) == "AVAILABLE"
              and states.get(versions[-1]) == "AVAILABLE" and all(states.get(v) == "END" for v in versions[:-1])
              and labels == {contract.STABLE_LABEL: stable, contract.CANARY_LABEL: versions[-1]})
    return DrillResult("three_exports", passed, total.requests, total.failed, float("nan"), during.p99_ms, notes)
