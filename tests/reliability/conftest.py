"""Shared fixtures: the toy models exported once, fast drill settings."""

import pytest

import recsys_base  # noqa: F401 - selects Keras 2 before TensorFlow loads
from drills.scenarios import DrillSettings
from drills.workspace import new_workspace, pristine_models

# Short windows: enough requests to see a failure, cheap on a loaded 2-core machine.
FAST = DrillSettings(workers=2, rate_per_worker=20.0, warm_seconds=0.5, fault_seconds=1.0, poll_seconds=0.1, holdout_cases=40)


@pytest.fixture(scope="session")
def pristine(tmp_path_factory):
    """(models dir, stable version) of the toy recommend model, exported once."""
    return pristine_models(tmp_path_factory.mktemp("pristine"), None)


@pytest.fixture
def workspace(pristine, tmp_path, request):
    """A fresh drill workspace (models copy + models.config) for one test."""
    models, stable = pristine
    return new_workspace(tmp_path, request.node.name, models, stable, toy=True)


def pytest_terminal_summary(terminalreporter):
    """Prints how many cases the fuzz tests tried (reported through ``record_property``,
    which also reaches the summary from pytest-xdist workers)."""
    counts = {}
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        for name, value in getattr(report, "user_properties", ()):
            if name == "fuzz_cases" and report.when == "call":
                counts[report.nodeid.split("::", 1)[1]] = value
    if counts:
        terminalreporter.write_sep("-", f"fuzzing: {sum(counts.values())} cases tried")
        for test, value in sorted(counts.items()):
            terminalreporter.write_line(f"{value:5d}  {test}")
