"""Security defaults the serving engineer's TLS/mTLS and message-size tests
(tests/serving/server/test_security.py) do not cover: loopback binding and base paths
that try to leave the model base."""

import os
import socket

import grpc
import pytest
from tensorflow_serving.config import model_server_config_pb2

from recsys_base.errors import ConfigError
from serving.server import ServerConfig
from serving.server.manager import model_entries


def _non_loopback_address() -> str | None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent; this only picks the outgoing interface
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_server_binds_loopback_by_default(workspace):
    from serving.server import serve

    assert ServerConfig(workspace.config_file).host == "127.0.0.1"
    handle = serve(ServerConfig(workspace.config_file, model_base=workspace.models_dir, port=0, poll_seconds=0))
    try:
        with socket.create_connection(("127.0.0.1", handle.port), timeout=2):
            pass
        address = _non_loopback_address()
        if address is not None:  # a machine with only loopback has nothing else to refuse on
            with pytest.raises(OSError):
                socket.create_connection((address, handle.port), timeout=2).close()
    finally:
        handle.stop(0)


def _config(base_path: str, name: str = "recommend"):
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name=name, base_path=base_path)
    return config


@pytest.mark.parametrize("base_path", ["../outside", "recommend/../../outside", "/etc"])
def test_base_paths_outside_the_model_base_are_refused(tmp_path, base_path):
    (tmp_path / "base").mkdir()
    with pytest.raises(ConfigError, match=f"base_path '{base_path}' of model 'recommend' is outside the model base"):
        model_entries(_config(base_path), tmp_path / "base")


def test_a_symlink_out_of_the_model_base_is_refused(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "base" / "recommend")
    with pytest.raises(ConfigError, match="is outside the model base .* resolves to"):
        model_entries(_config("recommend"), tmp_path / "base")
    # A path that stays inside (even spelled with '..') is fine.
    (tmp_path / "base" / "ranking").mkdir()
    assert model_entries(_config("recommend/../ranking", "ranking"), tmp_path / "base")[0].base_path == tmp_path / "base" / "ranking"


def test_a_version_directory_symlinked_out_of_the_model_is_never_loaded(tmp_path):
    from serving.server.manager import ModelManager
    from serving.testing import export_toy_models

    export_toy_models(tmp_path / "base", version=1, models=("recommend",), warmup=False)
    export_toy_models(tmp_path / "outside", version=2, models=("recommend",), warmup=False)
    os.symlink(tmp_path / "outside" / "recommend" / "2", tmp_path / "base" / "recommend" / "2")
    manager = ModelManager(model_entries(_config("recommend"), tmp_path / "base"), None)
    try:
        manager.poll()
        manager.poll()  # the refused newest version does not block the next one down
        states = {state.version: state for state in manager.statuses("recommend")}
        assert states[2].state == "END" and states[2].error_code is grpc.StatusCode.FAILED_PRECONDITION
        assert "outside the model's base path" in states[2].error_message
        assert states[1].state == "AVAILABLE"
    finally:
        manager.stop()


@pytest.mark.parametrize("name", ["../recommend", "a/b", "", ".hidden", "x" * 200])
def test_model_names_that_could_name_paths_are_refused(tmp_path, name):
    with pytest.raises(ConfigError, match="model name"):
        model_entries(_config("recommend", name), tmp_path)


def test_tls_server_serves_tls_clients_and_refuses_plaintext(workspace, tls_certificates):
    from serving.client import RecommenderClient, ServingError, TlsConfig
    from serving.server import ServerTls, serve

    handle = serve(ServerConfig(workspace.config_file, model_base=workspace.models_dir, port=0, poll_seconds=0,
                                tls=ServerTls(tls_certificates["server.key"], tls_certificates["server.pem"])))
    try:
        tls = TlsConfig(root_certificates=tls_certificates["ca.pem"])
        with RecommenderClient([f"127.0.0.1:{handle.port}"], tls=tls, deadline_s=10.0) as client:
            assert [s.state for s in client.status("recommend")] == ["AVAILABLE"]
        with RecommenderClient([f"127.0.0.1:{handle.port}"], deadline_s=1.0, retries=1) as client:
            with pytest.raises(ServingError) as caught:
                client.status("recommend")
        assert caught.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        handle.stop(0)
