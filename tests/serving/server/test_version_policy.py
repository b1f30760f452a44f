"""Version policies and labels of the embedded server, as TF Serving applies them
(file_system_storage_path_source.cc, server_core.cc, basic_manager.cc)."""

import shutil

import grpc
import pytest

from recsys_base.errors import ConfigError
from serving import contract
from serving.server.errors import RequestFailed
from serving.server.manager import ModelEntry, ModelManager
from serving.testing import export_toy_models

MODEL = contract.RECOMMEND_MODEL


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Versions 1, 2 and 3 of the toy recommend model, exported once."""
    base = tmp_path_factory.mktemp("versions")
    for version in (1, 2, 3):
        export_toy_models(base, version=version, models=(MODEL,), warmup=False)
    return base


@pytest.fixture
def base_path(exported, tmp_path):
    shutil.copytree(exported, tmp_path / "models")
    return tmp_path / "models" / MODEL


def _available(manager):
    return sorted(state.version for state in manager.statuses(MODEL) if state.state == "AVAILABLE")


def _manager(base_path, policy, labels=None, allow=True, **options):
    manager = ModelManager([ModelEntry(MODEL, base_path, policy, labels=dict(labels or {}), **options)],
                           allow_version_labels_for_unavailable_models=allow)
    manager.poll()
    return manager


@pytest.mark.parametrize(
    "policy, options, loaded",
    [
        ("latest", {}, [3]),  # num_versions unset means 1
        ("latest", {"num_versions": 2}, [2, 3]),
        ("all", {}, [1, 2, 3]),
        ("specific", {"specific": frozenset({1, 3, 7})}, [1, 3]),  # 7 is not on disk: nothing to load
    ],
)
def test_each_version_policy_loads_its_versions(base_path, policy, options, loaded):
    manager = _manager(base_path, policy, **options)
    try:
        assert _available(manager) == loaded
    finally:
        manager.stop()


def test_a_specific_policy_ignores_new_exports(base_path, tmp_path):
    manager = _manager(base_path, "specific", {contract.STABLE_LABEL: 1}, specific=frozenset({1}))
    try:
        shutil.copytree(base_path / "3", base_path / "4")
        manager.poll()
        assert _available(manager) == [1]
        assert manager.servable(MODEL, label=contract.STABLE_LABEL).version == 1
    finally:
        manager.stop()


def test_without_the_flag_labels_must_point_at_available_versions(base_path):
    # The first config is checked before anything loads: TF Serving cannot start with labels.
    with pytest.raises(ConfigError, match="Request to assign label to version 1 of model recommend, which is not currently "
                                          "available for inference"):
        _manager(base_path, "specific", {contract.STABLE_LABEL: 1}, allow=False, specific=frozenset({1}))
    manager = _manager(base_path, "specific", allow=False, specific=frozenset({1}))
    try:
        manager.apply([ModelEntry(MODEL, base_path, "specific", specific=frozenset({1}), labels={contract.STABLE_LABEL: 1})])
        assert manager.servable(MODEL, label=contract.STABLE_LABEL).version == 1
        # Version 2 is listed but not loaded when the labels are checked: the config is refused whole.
        with pytest.raises(RequestFailed) as refused:
            manager.apply([ModelEntry(MODEL, base_path, "specific", specific=frozenset({1, 2}),
                                      labels={contract.STABLE_LABEL: 1, contract.CANARY_LABEL: 2})])
        assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.message == "Request to assign label to version 2 of model recommend, which is not currently available for inference"
        assert _available(manager) == [1]  # nothing changed: version 2 was not loaded either
        with pytest.raises(RequestFailed, match="Unrecognized servable version label: canary"):
            manager.servable(MODEL, label=contract.CANARY_LABEL)
    finally:
        manager.stop()


def test_with_the_flag_a_new_label_may_wait_for_its_version_but_a_moved_one_may_not(base_path):
    manager = _manager(base_path, "specific", {contract.STABLE_LABEL: 1, contract.CANARY_LABEL: 9}, specific=frozenset({1, 9}))
    try:
        # A new label to a version that is not loaded is accepted; requests to it are NOT_FOUND.
        with pytest.raises(RequestFailed) as missing:
            manager.servable(MODEL, label=contract.CANARY_LABEL)
        assert (missing.value.code, missing.value.message) == (grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(recommend, 9)")
        # Moving stable to a version not loaded yet would drop its traffic while it loads: refused.
        moved = ModelEntry(MODEL, base_path, "specific", specific=frozenset({1, 2}), labels={contract.STABLE_LABEL: 2})
        with pytest.raises(RequestFailed, match="label to version 2 of model recommend") as refused:
            manager.apply([moved])
        assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
        assert manager.servable(MODEL, label=contract.STABLE_LABEL).version == 1
        # The recipe: load version 2 first, then move the label to it and drop version 1.
        manager.apply([ModelEntry(MODEL, base_path, "specific", specific=frozenset({1, 2}), labels={contract.STABLE_LABEL: 1})])
        manager.apply([ModelEntry(MODEL, base_path, "specific", specific=frozenset({2}), labels={contract.STABLE_LABEL: 2})])
        assert manager.servable(MODEL, label=contract.STABLE_LABEL).version == 2
        assert _available(manager) == [2]
    finally:
        manager.stop()


def test_a_label_left_on_an_unloaded_version_answers_not_found(base_path):
    # What 'latest' does to a label: a newer export unloads the labelled version.
    manager = _manager(base_path, "latest", {contract.STABLE_LABEL: 3})
    try:
        assert manager.servable(MODEL, label=contract.STABLE_LABEL).version == 3
        shutil.copytree(base_path / "3", base_path / "4")
        manager.poll()
        with pytest.raises(RequestFailed, match=r"Servable not found for request: Specific\(recommend, 3\)"):
            manager.servable(MODEL, label=contract.STABLE_LABEL)
        with pytest.raises(RequestFailed, match=r"Servable not found for request: Specific\(recommend, 2\)"):
            manager.servable(MODEL, version=2)
    finally:
        manager.stop()
