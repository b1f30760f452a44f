"""The thin client's own suite in a virtualenv holding only grpcio, protobuf, numpy, pytest.

The virtualenv is created once (pip reuses its cache) under ~/.cache/shop-recsys or
$RECSYS_THIN_VENV; the server runs here, in the main environment, with TensorFlow.
"""

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from serving.testing import start_toy_server

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("grpcio", "protobuf", "numpy", "pytest")


def _thin_venv() -> Path:
    venv = Path(os.environ.get("RECSYS_THIN_VENV", Path.home() / ".cache" / "shop-recsys" / "thin-client-venv"))
    python = venv / "bin" / "python"
    # The same versions as the main environment, so pip can install them from its cache.
    wanted = [f"{name}=={metadata.version(name)}" for name in PACKAGES]
    marker = venv / "installed.txt"
    if not python.exists() or not marker.exists() or marker.read_text().split() != wanted:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *wanted], check=True, timeout=900)
        marker.write_text("\n".join(wanted))
    return python


@pytest.fixture(scope="module")
def thin_python():
    return _thin_venv()


def test_the_thin_venv_has_no_tensorflow(thin_python):
    result = subprocess.run([str(thin_python), "-c", "import tensorflow"], capture_output=True, text=True)
    assert result.returncode != 0 and "No module named 'tensorflow'" in result.stderr


def test_client_suite_passes_in_the_thin_venv_against_a_main_env_server(thin_python, tmp_path):
    handle = start_toy_server(tmp_path)
    try:
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))},
            "PYTHONPATH": str(REPO),
            "RECSYS_SERVING_TARGET": f"127.0.0.1:{handle.port}",
        }
        result = subprocess.run(
            [str(thin_python), "-m", "pytest", "tests/serving/client", "-q", "-p", "no:cacheprovider", "--confcutdir", "tests/serving/client"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        handle.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
