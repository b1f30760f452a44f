"""A server for the thin client's tests.

With RECSYS_SERVING_TARGET set (host:port of a toy server started by
serving.testing.start_toy_server, as tests/serving/test_thin_client_venv.py does), the
tests run against it and this directory needs no TensorFlow; otherwise a toy server is
started in-process.
"""

import os

import pytest

TARGET_ENV = "RECSYS_SERVING_TARGET"


@pytest.fixture(scope="session")
def target(tmp_path_factory):
    if os.environ.get(TARGET_ENV):
        yield os.environ[TARGET_ENV]
        return
    import recsys_base  # noqa: F401 - selects Keras 2 before TensorFlow loads
    from serving.testing import start_toy_server

    handle = start_toy_server(tmp_path_factory.mktemp("toy-server"))
    yield f"127.0.0.1:{handle.port}"
    handle.stop()
