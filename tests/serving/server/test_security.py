"""TLS (certificates from the tls_certificates fixture), mutual TLS, and the message size limit."""

import grpc
import numpy as np
import pytest

from serving import contract
from serving.client import RecommenderClient, ServingError, TlsConfig
from serving.server import ServerTls
from serving.testing import expected_top_k, start_toy_server, toy_request


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, tls_certificates):
    certs = tls_certificates
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
