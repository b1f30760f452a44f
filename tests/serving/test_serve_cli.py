"""``recsys serve`` and ``recsys serve-config`` as a user runs them."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

import recsys_base  # noqa: F401 - Keras 2 before the official protos pull in TensorFlow
from recsys.cli import main
from serving import contract
from serving.client import RecommenderClient
from serving.testing import expected_top_k, export_toy_models


def test_serve_config_writes_every_deployment_file(tmp_path, capsys):
    assert main(["serve-config", "--out", str(tmp_path), "--stable", "2", "--canary", "3", "--replicas", "1"]) == 0
    names = {Path(line).name for line in capsys.readouterr().out.split()}
    assert names == {"models.config", "batching_parameters.txt", "monitoring.config", "docker-compose.yml", "kubernetes.yaml"}
    config = text_format.Parse((tmp_path / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    assert {dict(entry.version_labels)["canary"] for entry in config.model_config_list.config} == {3}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["serve", "--model-base", "/no/such/dir"], "--model-base /no/such/dir is not a directory"),
        (["serve-config", "--out", "x", "--policy", "specific"], "needs specific_versions"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_an_empty_model_base_is_refused(tmp_path, capsys):
    assert main(["serve", "--model-base", str(tmp_path), "--embedded"]) == 2
    assert "holds none of the models" in capsys.readouterr().err


def _fake_model_server(tmp_path) -> Path:
    """A ``tensorflow_model_server`` that records its argv and pid, then exits."""
    fake = tmp_path / "bin" / "tensorflow_model_server"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'pid'}\nprintf '%s\\n' \"$@\" > {tmp_path / 'argv'}\n")
    fake.chmod(0o755)
    return fake


def test_tensorflow_model_server_on_path_replaces_recsys_serve_with_the_generated_flags(tmp_path):
    export_toy_models(tmp_path / "models", models=(contract.RECOMMEND_MODEL,), warmup=False)
    fake = _fake_model_server(tmp_path)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    batching = tmp_path / "batching.txt"
    batching.write_text("max_batch_size { value: 8 }\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "recsys", "serve", "--model-base", str(tmp_path / "models"), "--batching-config", str(batching),
         "--max-message-mb", "32", "--poll-seconds", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert stdout.splitlines()[0].startswith(f"recsys serve: running {fake}")
    # exec'd, not a child: SIGTERM to the container's process reaches the server itself.
    assert int((tmp_path / "pid").read_text()) == process.pid
    flags = dict(line.lstrip("-").split("=", 1) for line in (tmp_path / "argv").read_text().split())
    assert flags["port"] == "8500" and flags["rest_api_port"] == "8501"
    assert flags["enable_batching"] == "true" and flags["batching_parameters_file"] == str(batching)
    assert "monitoring_config_file" in flags and "model_config_file_poll_wait_seconds" in flags
    assert flags["file_system_poll_wait_seconds"] == "1"  # whole seconds, never 0 (= poll once) for a positive interval
    assert f"grpc.max_receive_message_length={32 * 2**20}" in flags["grpc_channel_arguments"].split(",")
    # The generated models.config stays for the server to re-read.
    assert Path(flags["model_config_file"]).is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--port", "0"], "gRPC port 0: tensorflow_model_server cannot pick a free port"),
        (["--rest-port", "0"], "REST port 0: tensorflow_model_server would silently run without REST API and metrics"),
        (["--rest-port", "8500"], "other than the gRPC port"),
        (["--host", "127.0.0.1"], "--host 127.0.0.1: tensorflow_model_server has no flag to choose its address"),
        (["--max-message-mb", "4096"], "TF Serving reads it as an int32"),
    ],
)
def test_options_tensorflow_model_server_would_misread_are_refused(argv, message, tmp_path, monkeypatch, capsys):
    export_toy_models(tmp_path / "models", models=(contract.RECOMMEND_MODEL,), warmup=False)
    fake = _fake_model_server(tmp_path)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(os, "execvp", lambda *args: pytest.fail(f"execvp{args} despite a refused option"))
    assert main(["serve", "--model-base", str(tmp_path / "models"), *argv]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_without_tensorflow_model_server_the_embedded_server_answers(tmp_path):
    export_toy_models(tmp_path / "models", models=(contract.RECOMMEND_MODEL,))
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}
    process = subprocess.Popen(
        [sys.executable, "-m", "recsys", "serve", "--model-base", str(tmp_path / "models"), "--port", "0", "--rest-port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        first = process.stdout.readline()
        assert "not on PATH" in first and "embedded server" in first
        address = process.stdout.readline().split("gRPC on ")[1].split(",")[0]
        with RecommenderClient([address], deadline_s=10.0) as client:
            assert client.recommend(["item-001"], k=3) == expected_top_k(50, 1, 3)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0


def _tls_flags(certs, mutual=True) -> list[str]:
    flags = ["--ssl-cert", str(certs["dir"] / "server.pem"), "--ssl-key", str(certs["dir"] / "server.key")]
    return flags + (["--ssl-client-ca", str(certs["dir"] / "ca.pem")] if mutual else [])


def test_tls_flags_reach_tensorflow_model_server_as_its_ssl_config(tmp_path, tls_certificates):
    from serving.config_files import SSLConfig

    export_toy_models(tmp_path / "models", models=(contract.RECOMMEND_MODEL,), warmup=False)
    fake = _fake_model_server(tmp_path)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.run([sys.executable, "-m", "recsys", "serve", "--model-base", str(tmp_path / "models"),
                              *_tls_flags(tls_certificates)], env=env, capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr
    flags = dict(line.lstrip("-").split("=", 1) for line in (tmp_path / "argv").read_text().split())
    ssl = text_format.Parse(Path(flags["ssl_config_file"]).read_text(), SSLConfig())
    assert ssl.server_cert.encode() == tls_certificates["server.pem"] and ssl.server_key.encode() == tls_certificates["server.key"]
    assert ssl.custom_ca.encode() == tls_certificates["ca.pem"] and ssl.client_verify


def test_embedded_server_serves_mutual_tls_from_the_flags(tmp_path, tls_certificates):
    from serving.client import ServingError, TlsConfig

    export_toy_models(tmp_path / "models", models=(contract.RECOMMEND_MODEL,))
    process = subprocess.Popen(
        [sys.executable, "-m", "recsys", "serve", "--embedded", "--model-base", str(tmp_path / "models"), "--port", "0",
         "--rest-port", "0", *_tls_flags(tls_certificates)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        process.stdout.readline()
        port = process.stdout.readline().split("gRPC on ")[1].split(",")[0].rsplit(":", 1)[1]
        certs = tls_certificates
        mutual = TlsConfig(root_certificates=certs["ca.pem"], private_key=certs["client.key"], certificate_chain=certs["client.pem"])
        with RecommenderClient([f"localhost:{port}"], tls=mutual, deadline_s=10.0) as client:
            assert client.recommend(["item-001"], k=3) == expected_top_k(50, 1, 3)
        with RecommenderClient([f"localhost:{port}"], tls=TlsConfig(root_certificates=certs["ca.pem"]), deadline_s=1.0) as client:
            with pytest.raises(ServingError):  # no client certificate
                client.recommend(["item-001"], k=3)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0


@pytest.mark.parametrize(
    "flags, message",
    [
        (lambda certs: ["--ssl-cert", str(certs["dir"] / "server.pem")], "--ssl-cert and --ssl-key go together"),
        (lambda certs: ["--ssl-cert", str(certs["dir"] / "san.ext"), "--ssl-key", str(certs["dir"] / "server.key")],
         "is not a PEM file"),
        (lambda certs: [*_tls_flags(certs, mutual=False)[:3], str(certs["dir"] / "missing.key")], "missing.key: No such file"),
    ],
)
def test_bad_tls_flags_exit_2_with_one_line(flags, message, tmp_path, tls_certificates, capsys):
    export_toy_models(tmp_path / "models", models=(contract.RECOMMEND_MODEL,), warmup=False)
    assert main(["serve", "--embedded", "--model-base", str(tmp_path / "models"), *flags(tls_certificates)]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_config_reload_cannot_be_allowed_on_tensorflow_model_server(tmp_path, monkeypatch, capsys):
    export_toy_models(tmp_path / "models", models=(contract.RECOMMEND_MODEL,), warmup=False)
    fake = _fake_model_server(tmp_path)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(os, "execvp", lambda *args: pytest.fail("execvp despite a refused option"))
    assert main(["serve", "--model-base", str(tmp_path / "models"), "--allow-config-reload"]) == 2
    assert "always answers HandleReloadConfigRequest" in capsys.readouterr().err
