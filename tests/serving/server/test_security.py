"""TLS (certificates made here with openssl), mutual TLS, and the message size limit."""

import subprocess

import grpc
import numpy as np
import pytest

from serving import contract
from serving.client import RecommenderClient, ServingError, TlsConfig
from serving.server import ServerTls
from serving.testing import expected_top_k, start_toy_server, toy_request

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _certificates(directory):
    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", *EC, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=test-ca")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        run("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "1", "-extfile", "san.ext")  # fmt: skip
    return {path.stem + path.suffix: path.read_bytes() for path in directory.iterdir() if path.suffix in (".pem", ".key")}


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    certs = _certificates(tmp_path_factory.mktemp("certs"))
    tls = ServerTls(certs["server.key"], certs["server.pem"], client_ca=certs["ca.pem"])
    handle = start_toy_server(tmp_path_factory.mktemp("tls"), models=(contract.RECOMMEND_MODEL,), tls=tls, max_message_bytes=64 * 1024)
    yield handle, certs
    handle.stop()


def test_mutual_tls_client_is_served(tls_server):
    handle, certs = tls_server
    tls = TlsConfig(root_certificates=certs["ca.pem"], private_key=certs["client.key"], certificate_chain=certs["client.pem"])
    with RecommenderClient([f"localhost:{handle.port}"], tls=tls, deadline_s=10.0) as client:
        assert client.recommend(["item-001"], k=3) == expected_top_k(50, 1, 3)


@pytest.mark.parametrize("client_tls", ["no-client-cert", "plaintext"])
def test_clients_without_a_certificate_are_refused(tls_server, client_tls):
    handle, certs = tls_server
    tls = TlsConfig(root_certificates=certs["ca.pem"]) if client_tls == "no-client-cert" else None
    with RecommenderClient([f"localhost:{handle.port}"], tls=tls, deadline_s=1.0, retries=1) as client:
        with pytest.raises(ServingError) as caught:
            client.recommend(["item-001"], k=3)
    assert caught.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_oversized_requests_are_resource_exhausted(tls_server):
    handle, certs = tls_server
    tls = TlsConfig(root_certificates=certs["ca.pem"], private_key=certs["client.key"], certificate_chain=certs["client.pem"])
    inputs = toy_request(contract.RECOMMEND_MODEL)
    inputs[contract.EXCLUDE_ITEM_IDS] = np.array([[f"item-{i:06d}" for i in range(20_000)]], dtype=object)
    with RecommenderClient([f"localhost:{handle.port}"], tls=tls, deadline_s=10.0) as client:
        with pytest.raises(ServingError) as caught:
            client.predict(contract.RECOMMEND_MODEL, inputs)
    assert caught.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_half_a_client_key_pair_is_refused():
    with pytest.raises(ValueError, match="both private_key and certificate_chain"):
        RecommenderClient(["127.0.0.1:1"], tls=TlsConfig(private_key=b"key"))
