"""gRPC channels and the TF Serving method paths, shared by the sync and async clients."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from serving.client import messages

PREDICT = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_METADATA = "/tensorflow.serving.PredictionService/GetModelMetadata"
GET_MODEL_STATUS = "/tensorflow.serving.ModelService/GetModelStatus"
RESPONSE_CLASS = {
    PREDICT: messages.PredictResponse,
    GET_MODEL_METADATA: messages.GetModelMetadataResponse,
    GET_MODEL_STATUS: messages.GetModelStatusResponse,
}


@dataclass(frozen=True)
class TlsConfig:
    """TLS for the client: PEM bytes of the CA to trust and, for mutual TLS, a client key pair.

    Usage::

        TlsConfig(root_certificates=open("ca.pem", "rb").read(), server_name="recsys.internal")
    """

    root_certificates: bytes | None = None
    private_key: bytes | None = None
    certificate_chain: bytes | None = None
    server_name: str | None = None  # overrides the name checked against the server certificate

    def validate(self) -> TlsConfig:
        """Checked where it enters, the client's constructor (ValueError: the client has no recsys_base)."""
        if (self.private_key is None) != (self.certificate_chain is None):
            raise ValueError("TLS: give both private_key and certificate_chain for a client certificate, or neither")
        return self


def channel_options(max_message_bytes: int, tls: TlsConfig | None) -> list[tuple[str, object]]:
    """Options for a channel: message size limits and fast reconnects for failover."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # gRPC's default first reconnect waits 1 s; a replica that comes back should be
        # usable again well within a client deadline.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
        ("grpc.enable_retries", 0),  # retries are ours, with failover across targets
    ]
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return options


def credentials(tls: TlsConfig) -> grpc.ChannelCredentials:
    """Channel credentials for ``tls``."""
    return grpc.ssl_channel_credentials(tls.root_certificates, tls.private_key, tls.certificate_chain)


def open_channel(target: str, max_message_bytes: int, tls: TlsConfig | None, aio: bool = False):
    """A (secure if ``tls``) channel to ``target``; ``aio`` for a grpc.aio channel."""
    module = grpc.aio if aio else grpc
    options = channel_options(max_message_bytes, tls)
    if tls is None:
        return module.insecure_channel(target, options=options)
    return module.secure_channel(target, credentials(tls), options=options)


def unary(channel, method: str):
    """A callable for one TF Serving method on ``channel``."""
    return channel.unary_unary(
        method,
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=RESPONSE_CLASS[method].FromString,
    )
