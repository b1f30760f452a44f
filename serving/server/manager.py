"""Which model versions are loaded: polls base paths and applies each model's version policy.

Follows TF Serving's availability-preserving behaviour: a new version is loaded (and
warmed up) before the version it replaces is unloaded, a version that fails to load is
reported as END with its error while the previous one keeps serving (and is retried only
when its files change), an unreadable base path leaves the loaded versions alone, and an
unloaded version finishes the requests already using it.

Version policies and labels as TF Serving (with the sources that define each):

- ``latest {num_versions: N}`` serves the N highest versions on disk (1 if unset), ``all``
  every version, ``specific {versions: ...}`` the listed ones that exist
  (tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc).
- Labels are resolved when a config is applied, not per request. Each label must point at
  an AVAILABLE version, else the whole config is refused with FAILED_PRECONDITION "Request
  to assign label to version V of model M, which is not currently available for
  inference" and nothing changes; with ``allow_version_labels_for_unavailable_models`` a
  new label, or one keeping its version, may point anywhere, but a label that moves must
  still point at an AVAILABLE version (tensorflow_serving/model_servers/server_core.cc,
  UpdateModelVersionLabelMap). The first config is checked before any model loads, so
  without the flag a config with labels cannot start the server.
- A request for a label the model does not have gets INVALID_ARGUMENT "Unrecognized
  servable version label: L" (server_core.cc, GetModelVersionForLabel); a request for a
  version, or a label's version, that is not loaded gets NOT_FOUND "Servable not found
  for request: Specific(M, V)", and for the latest of a model with none loaded
  "...: Latest(M)" (tensorflow_serving/core/basic_manager.cc, manager.h DebugString).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from recsys_base.errors import ConfigError
from serving.contract.warmup import read_warmup_requests
from serving.server.batching import Batcher, BatchingOptions
from serving.server.errors import RequestFailed, from_tf_error, shown
from serving.server.limits import MAX_INPUT_ELEMENTS
from serving.server.servable import Servable

log = logging.getLogger(__name__)

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# How long an unloaded version may finish its in-flight requests before it is dropped.
UNLOAD_GRACE_S = 30.0


@dataclass
class VersionState:
    """One version of a model as GetModelStatus reports it."""

    version: int
    state: str  # LOADING / AVAILABLE / UNLOADING / END
    error_code: grpc.StatusCode = grpc.StatusCode.OK
    error_message: str = ""
    servable: Servable | None = field(default=None, repr=False)
    fingerprint: tuple = field(default=(), repr=False)


@dataclass
class ModelEntry:
    """A served model: where its versions live, which to serve, and its labels."""

    name: str
    base_path: Path
    policy: str  # latest / all / specific
    num_versions: int = 1
    specific: frozenset[int] = frozenset()
    labels: dict[str, int] = field(default_factory=dict)
    versions: dict[int, VersionState] = field(default_factory=dict)

    def wanted(self, on_disk: list[int], skip: set[int]) -> list[int]:
        """Versions the policy wants loaded, newest first, passing over ``skip`` (failed)."""
        candidates = [version for version in sorted(on_disk, reverse=True) if version not in skip]
        if self.policy == "latest":
            return candidates[: self.num_versions]
        if self.policy == "specific":
            return [version for version in candidates if version in self.specific]
        return candidates


def model_entries(config, model_base: Path | None) -> list[ModelEntry]:
    """ModelEntry values for a ModelServerConfig (official proto), validated.

    Relative base paths resolve against ``model_base``; with a ``model_base`` every base
    path must stay inside it (a config cannot point the server at arbitrary directories).
    """
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError("models config: only model_config_list is supported (no custom_model_config)")
    entries, seen = [], set()
    for model in config.model_config_list.config:
        if not MODEL_NAME.match(model.name):
            raise ConfigError(f"models config: model name {model.name!r} must match {MODEL_NAME.pattern}")
        if model.name in seen:
            raise ConfigError(f"models config: model {model.name!r} is listed twice")
        seen.add(model.name)
        if model.model_platform not in ("", "tensorflow"):
            raise ConfigError(f"models config: model {model.name!r} has platform {model.model_platform!r}; only 'tensorflow' is served")
        if not model.base_path:
            raise ConfigError(f"models config: model {model.name!r} has no base_path")
        base = Path(model.base_path)
        if not base.is_absolute():
            base = (model_base or Path.cwd()) / base
        base = Path(os.path.normpath(base.absolute()))
        if model_base is not None:
            # Real paths: a symlink inside the model base must not lead outside it either.
            root = Path(os.path.realpath(model_base))
            real = Path(os.path.realpath(base))
            if real != root and root not in real.parents:
                raise ConfigError(f"models config: base_path {model.base_path!r} of model {model.name!r} is outside the model base {str(root)!r}"
                                  + (f" (it resolves to {str(real)!r})" if real != base else ""))
        policy = model.model_version_policy.WhichOneof("policy_choice") or "latest"
        num_versions = model.model_version_policy.latest.num_versions or 1
        specific = frozenset(model.model_version_policy.specific.versions)
        if policy == "specific" and not specific:
            raise ConfigError(f"models config: model {model.name!r} has a 'specific' version policy with no versions")
        for label, version in model.version_labels.items():
            if version <= 0:
                raise ConfigError(f"models config: label {label!r} of model {model.name!r} points to version {version}; versions are > 0")
        entries.append(ModelEntry(model.name, base, policy, num_versions, specific, dict(model.version_labels)))
    return entries


def _check_inside(version_dir: Path, base_path: Path) -> None:
    """Refuses a version directory that resolves (through a symlink) outside its model's base path.

    The model base check of :func:`model_entries` covers base paths; a version directory
    is a second way out, e.g. ``recommend/7 -> /home/someone/untrusted``.
    """
    real, base = Path(os.path.realpath(version_dir)), Path(os.path.realpath(base_path))
    if base not in real.parents:
        raise RequestFailed(grpc.StatusCode.FAILED_PRECONDITION,
                            f"version directory {str(version_dir)!r} resolves to {str(real)!r}, outside the model's base path "
                            f"{str(base)!r}; refused")


def _fingerprint(path: Path) -> tuple:
    rows = []
    for root, _, files in os.walk(path, onerror=lambda error: rows.append(("error", str(error)))):
        for name in files:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError as error:
                rows.append((name, str(error)))
                continue
            rows.append((os.path.relpath(os.path.join(root, name), path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(rows, key=str))


class ModelManager:
    """Loads, serves and unloads model versions per the models config.

    Usage::

        manager = ModelManager(entries, batching=None)
        manager.poll()                        # load what the policies want
        servable = manager.servable(contract.RECOMMEND_MODEL, version=None, label=contract.STABLE_LABEL)
    """

    def __init__(self, entries: list[ModelEntry], batching: BatchingOptions | None = None, metrics=None,
                 allow_version_labels_for_unavailable_models: bool = True, max_input_elements: int = MAX_INPUT_ELEMENTS):
        self._entries: dict[str, ModelEntry] = {}
        self._max_input_elements = max_input_elements
        self._allow_unavailable_labels = allow_version_labels_for_unavailable_models
        try:
            self._check_labels(entries)  # before anything loads, as TF Serving's first config
        except RequestFailed as error:
            raise ConfigError(f"models config: {error.message} (set allow_version_labels_for_unavailable_models "
                              "to label versions before they load)") from None
        self._entries = {entry.name: entry for entry in entries}
        self._batching = batching
        self._metrics = metrics
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- requests ---------------------------------------------------------------------

    def model_names(self) -> list[str]:
        """Names of the configured models."""
        with self._lock:
            return sorted(self._entries)

    def _entry(self, name: str) -> ModelEntry:
        entry = self._entries.get(name)
        if entry is None:
            raise RequestFailed(grpc.StatusCode.NOT_FOUND, f"model {shown(name)} is not served; served models: {sorted(self._entries)}")
        return entry

    def resolve_version(self, name: str, version: int | None, label: str | None) -> int | None:
        """The version a (version | label | neither) spec means; None: latest available."""
        with self._lock:
            if label:
                # The label map is looked up before the model (server_core.cc).
                labels = self._entries[name].labels if name in self._entries else {}
                if label not in labels:
                    # TF Serving's text; a huge label is cut rather than echoed whole.
                    shown_label = label if len(label) <= 100 else shown(label)
                    raise RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {shown_label}")
                return labels[label]
            self._entry(name)
            return version

    def servable(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The loaded servable for the spec; NOT_FOUND names what is missing."""
        with self._lock:
            wanted = self.resolve_version(name, version, label)
            available = {v: s for v, s in self._entry(name).versions.items() if s.state == "AVAILABLE"}
            if wanted is None:
                if not available:
                    raise RequestFailed(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
                return available[max(available)].servable
            if wanted not in available:
                raise RequestFailed(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({name}, {wanted})")
            return available[wanted].servable

    def statuses(self, name: str, version: int | None = None, label: str | None = None) -> list[VersionState]:
        """Status of every known version of ``name`` (or of the one the spec names)."""
        with self._lock:
            wanted = self.resolve_version(name, version, label)
            versions = self._entries[name].versions
            if wanted is not None:
                if wanted not in versions:
                    raise RequestFailed(grpc.StatusCode.NOT_FOUND, f"version {wanted} of model {name!r} was never seen; known: {sorted(versions)}")
                return [versions[wanted]]
            return [versions[v] for v in sorted(versions)]

    # -- configuration ----------------------------------------------------------------

    def _check_labels(self, entries: list[ModelEntry]) -> None:
        """FAILED_PRECONDITION unless every label of ``entries`` may be assigned now
        (server_core.cc, UpdateModelVersionLabelMap)."""
        for entry in entries:
            current = self._entries.get(entry.name)
            states = current.versions if current is not None else {}
            old_labels = current.labels if current is not None else {}
            for label, version in entry.labels.items():
                moves = label in old_labels and old_labels[label] != version
                if self._allow_unavailable_labels and not moves:
                    continue
                state = states.get(version)
                if state is None or state.state != "AVAILABLE":
                    raise RequestFailed(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"Request to assign label to version {version} of model {entry.name}, which is not currently available for inference",
                    )

    def apply(self, entries: list[ModelEntry]) -> None:
        """Switches to a new model list: keeps loaded versions of models whose base path is
        unchanged, unloads removed models, then polls so new models are loaded on return.

        Refuses the whole list (FAILED_PRECONDITION, nothing changes) if a label may not be
        assigned yet; the new labels take effect before versions the policy drops unload.
        """
        with self._lock:
            self._check_labels(entries)
            old = self._entries
            self._entries = {}
            removed = []
            for entry in entries:
                previous = old.get(entry.name)
                if previous is not None and previous.base_path == entry.base_path:
                    entry.versions = previous.versions
                elif previous is not None:
                    removed.append(previous)
                self._entries[entry.name] = entry
            removed.extend(entry for name, entry in old.items() if name not in self._entries)
        for entry in removed:
            for state in list(entry.versions.values()):
                self._unload(entry, state)
        self.poll()

    # -- polling ----------------------------------------------------------------------

    def poll(self) -> None:
        """One pass over every model's base path: load wanted versions, unload the rest."""
        with self._poll_lock:
            with self._lock:
                entries = list(self._entries.values())
            for entry in entries:
                self._poll_model(entry)

    def _poll_model(self, entry: ModelEntry) -> None:
        try:
            on_disk = {int(path.name): path for path in entry.base_path.iterdir() if path.name.isdigit() and path.is_dir()}
        except OSError as error:
            log.warning("model %s: cannot list %s (%s); keeping the loaded versions", entry.name, entry.base_path, error)
            return
        failed = {
            version
            for version, state in entry.versions.items()
            if state.state == "END" and state.error_code != grpc.StatusCode.OK and version in on_disk
            and state.fingerprint == _fingerprint(on_disk[version])
        }  # fmt: skip
        for version in entry.wanted(list(on_disk), failed):
            current = entry.versions.get(version)
            if current is None or current.state not in ("AVAILABLE", "LOADING"):
                self._load(entry, version, on_disk[version])
        with self._lock:
            available = [v for v, s in entry.versions.items() if s.state == "AVAILABLE" and v in on_disk]
            keep = set(entry.wanted(available, set()))
            to_unload = [s for v, s in entry.versions.items() if s.state == "AVAILABLE" and v not in keep]
        for state in to_unload:
            self._unload(entry, state)

    def _load(self, entry: ModelEntry, version: int, path: Path) -> None:
        fingerprint = _fingerprint(path)
        with self._lock:
            entry.versions[version] = VersionState(version, "LOADING", fingerprint=fingerprint)
        log.info("model %s: loading version %d from %s", entry.name, version, path)
        try:
            _check_inside(path, entry.base_path)
            servable = Servable(entry.name, version, path, self._max_input_elements)
            replayed = self._warm_up(servable)
        except Exception as error:  # noqa: BLE001 - any load failure is reported, never fatal
            if isinstance(error, RequestFailed):
                code = error.code
            elif hasattr(error, "error_code"):  # tf.errors.OpError carries its status code
                code = from_tf_error(error).code
            else:
                code = grpc.StatusCode.UNKNOWN
            message = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            log.error("model %s: version %d failed to load: %s", entry.name, version, message)
            with self._lock:
                entry.versions[version] = VersionState(version, "END", code, message, fingerprint=fingerprint)
            return
        if self._batching is not None:
            # The metrics' batcher records TF Serving's batching_session metrics.
            servable.batcher = self._metrics.batcher(servable.run, self._batching) if self._metrics else Batcher(servable.run, self._batching)
        with self._lock:
            entry.versions[version] = VersionState(version, "AVAILABLE", servable=servable, fingerprint=fingerprint)
        log.info("model %s: version %d available (%d warmup requests replayed)", entry.name, version, replayed)

    @staticmethod
    def _warm_up(servable: Servable) -> int:
        records = read_warmup_requests(servable.path)
        for record in records:
            request = record.predict_log.request
            arrays = servable.decode_inputs(request.model_spec.signature_name, request.inputs)
            servable.run(request.model_spec.signature_name, arrays)
        return len(records)

    def _unload(self, entry: ModelEntry, state: VersionState) -> None:
        with self._lock:
            state.state = "UNLOADING"
        servable = state.servable
        if servable is not None:
            if not servable.wait_idle(UNLOAD_GRACE_S):
                log.warning("model %s: version %d still busy after %.0fs; unloading anyway", entry.name, state.version, UNLOAD_GRACE_S)
            if servable.batcher is not None:
                servable.batcher.close()
        with self._lock:
            state.state = "END"
            state.servable = None
        log.info("model %s: version %d unloaded", entry.name, state.version)

    def start(self, interval_s: float) -> None:
        """Polls every ``interval_s`` seconds on a background thread until :meth:`stop`."""

        def loop():
            while not self._stop.wait(interval_s):
                try:
                    self.poll()
                except Exception:  # a failed poll must not end polling
                    log.exception("model poll failed")

        self._thread = threading.Thread(target=loop, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops polling and unloads every version."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            for state in list(entry.versions.values()):
                if state.state == "AVAILABLE":
                    self._unload(entry, state)
