"""Every ``>>>`` example in the project's docstrings runs, and shows what it really prints.

Each module of the project packages that has docstring examples is one test case: its
examples run with the standard library :mod:`doctest` (``ELLIPSIS`` and
``NORMALIZE_WHITESPACE``), and a failing example fails the case with doctest's report.
A module whose docstrings contain ``>>>`` but none of whose examples ran fails too, and
so does a ``+SKIP`` example: usage that cannot run in a unit test (a data directory, a
trained run, a server, the network) belongs in a ``Usage::`` literal block.
"""

from __future__ import annotations

import doctest
import importlib
import io
from pathlib import Path

import pytest

import recsys_base  # noqa: F401  (selects Keras 2 before anything imports TensorFlow)

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("recsys_base", "recommenders", "serving", "tuning", "drills", "recsys")
OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Found by reading the source, so collecting the tests imports nothing (and no TensorFlow).
MODULES = sorted(module_name(path) for package in PACKAGES for path in (ROOT / package).rglob("*.py") if ">>>" in path.read_text())


def test_some_modules_have_examples():
    assert MODULES, "no module of the project packages has a docstring example"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    # The finder keeps to objects defined in the module: a re-export is tested where it is defined.
    tests = doctest.DocTestFinder().find(module, name)
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    for test in sorted(tests, key=lambda test: test.name):
        runner.run(test, out=report.write)
    assert runner.failures == 0, f"{runner.failures} of {runner.tries} examples of {name} failed:\n{report.getvalue()}"
    assert runner.tries > 0, f"{name} has '>>>' in its source but none of its examples ran (all skipped, or not in a docstring)"
    skipped = [f"{test.name} line {(test.lineno or 0) + example.lineno + 1}" for test in tests for example in test.examples
               if example.options.get(doctest.SKIP)]
    assert not skipped, f"{name} skips examples ({', '.join(skipped)}): make them run, or show them in a 'Usage::' block"

