"""Servers for the thin client's tests: the toy model server and replicas that only fail.

With RECSYS_SERVING_TARGET set (host:port of a toy server started by
serving.testing.start_toy_server, as tests/serving/test_thin_client_venv.py does), the
tests run against it and this directory needs no TensorFlow; otherwise a toy server is
started in-process.
"""

import os
import socket
from concurrent import futures

import grpc
import pytest

from serving.client import channels

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


class StatusServer:
    """A gRPC server answering every TF Serving method the client calls with one error status.

    A replica that is up but cannot take calls, or (``code`` NOT_FOUND) a wrong answer
    that must not be retried; ``calls`` counts the attempts it received.
    """

    def __init__(self, code: grpc.StatusCode):
        self.calls = 0

        def answer(request, context):
            self.calls += 1
            context.abort(code, f"status server answers {code.name}")

        handlers = {}
        for method in channels.RESPONSE_CLASS:
            service, name = method.strip("/").split("/")
            handlers.setdefault(service, {})[name] = grpc.unary_unary_rpc_method_handler(answer)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(s, h) for s, h in handlers.items()])
        self.target = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._server.start()

    def stop(self) -> None:
        self._server.stop(0)


@pytest.fixture
def unavailable_replica():
    server = StatusServer(grpc.StatusCode.UNAVAILABLE)
    yield server
    server.stop()


@pytest.fixture
def not_found_replica():
    server = StatusServer(grpc.StatusCode.NOT_FOUND)
    yield server
    server.stop()


@pytest.fixture
def dead_target():
    """A function returning ``127.0.0.1:<port>`` where nothing listens (connections are refused)."""

    def make() -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return f"127.0.0.1:{sock.getsockname()[1]}"

    return make
