"""The client's one gRPC channel: targets, the service config and channel options.

Retries, load balancing across replicas, waiting for a replica and dead-connection
detection are grpcio's, configured here once for the sync and asyncio clients:
:func:`service_config` turns the typed :class:`ClientConfig` into gRPC's service-config
JSON (round_robin, a retryPolicy on UNAVAILABLE, waitForReady) and
:func:`channel_options` adds keepalive, message limits and reconnect backoff; each call
carries the deadline. What gRPC
cannot know, which model version a call is for, stays in the client (version or label
pinning and the A/B label split, :mod:`serving.client.routing`).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

import grpc

from serving import contract
from serving.client import messages

PREDICT = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_METADATA = "/tensorflow.serving.PredictionService/GetModelMetadata"
GET_MODEL_STATUS = "/tensorflow.serving.ModelService/GetModelStatus"
RESPONSE_CLASS = {
    PREDICT: messages.PredictResponse,
    GET_MODEL_METADATA: messages.GetModelMetadataResponse,
    GET_MODEL_STATUS: messages.GetModelStatusResponse,
}
# The gRPC services the client calls, which the service config's methodConfig names.
SERVICES = tuple(sorted({method.split("/")[1] for method in RESPONSE_CLASS}))
# gRPC caps retryPolicy.maxAttempts (first attempt included) at 5.
MAX_RETRIES = 4
# Target schemes passed to gRPC's resolvers as they are: each names every replica itself.
URI_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:")
# Protobuf durations in the service config are "<seconds>s"; shorter than this rounds badly.
MIN_DURATION_S = 0.001


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


@dataclass(frozen=True)
class RetryThrottling:
    """gRPC's retry throttling: a token bucket per target, so retries stop amplifying an outage.

    Each failed attempt takes a token, each success returns ``token_ratio``; retries are
    made only while more than half of ``max_tokens`` remain (gRFC A6).
    """

    max_tokens: int = 100
    token_ratio: float = 0.1

    def validate(self) -> RetryThrottling:
        """Checks both fields against gRPC's limits; returns ``self``."""
        if not isinstance(self.max_tokens, int) or not 0 < self.max_tokens <= 1000:
            raise ValueError(f"retry_throttling.max_tokens must be an integer in 1..1000, got {self.max_tokens!r}")
        if not self.token_ratio > 0:
            raise ValueError(f"retry_throttling.token_ratio must be > 0, got {self.token_ratio!r}")
        return self


@dataclass(frozen=True)
class ClientConfig:
    """How the client calls the replicas; the keyword options of both clients.

    ``deadline_s`` bounds a whole call, retries included. A call failing with a code in
    ``retry_on`` is retried up to ``retries`` times (at most 4, gRPC's cap) after a
    jittered backoff, uniform in [0, min(``backoff_cap_s``, ``backoff_base_s`` *
    ``backoff_multiplier`` ** (retry - 1))]; round_robin sends each attempt to the next
    ready replica. With ``wait_for_ready`` a call made while no replica is connected waits
    for one (until the deadline) instead of failing at once. ``keepalive_s`` (None: off)
    pings a connection with calls in flight after that long without traffic and drops it
    if no answer comes within ``keepalive_timeout_s``, so a replica that vanished without
    closing its connections stops receiving calls.
    """

    deadline_s: float = 1.0
    retries: int = 3
    backoff_base_s: float = 0.02
    backoff_cap_s: float = 0.5
    backoff_multiplier: float = 2.0
    retry_on: tuple[grpc.StatusCode, ...] = (grpc.StatusCode.UNAVAILABLE,)
    retry_throttling: RetryThrottling | None = None
    wait_for_ready: bool = True
    keepalive_s: float | None = 20.0
    keepalive_timeout_s: float = 5.0
    max_message_bytes: int = contract.DEFAULT_MAX_MESSAGE_BYTES

    def validate(self) -> ClientConfig:
        """Checks every field, naming the bad one; returns ``self``."""
        durations = ["deadline_s", "backoff_base_s", "backoff_cap_s", "keepalive_timeout_s"]
        durations += ["keepalive_s"] if self.keepalive_s is not None else []
        for name in durations:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= MIN_DURATION_S:
                raise ValueError(f"{name} must be a number of seconds >= {MIN_DURATION_S}, got {value!r}")
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError(f"backoff_cap_s ({self.backoff_cap_s}) must be >= backoff_base_s ({self.backoff_base_s})")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or not 0 <= self.retries <= MAX_RETRIES:
            raise ValueError(f"retries must be an integer in 0..{MAX_RETRIES} (gRPC caps a call at 5 attempts), got {self.retries!r}")
        if not self.backoff_multiplier > 0:
            raise ValueError(f"backoff_multiplier must be > 0, got {self.backoff_multiplier!r}")
        codes = self.retry_on
        if not isinstance(codes, tuple) or not codes or not all(isinstance(c, grpc.StatusCode) and c is not grpc.StatusCode.OK for c in codes):
            raise ValueError(f"retry_on must be a non-empty tuple of grpc.StatusCode other than OK, got {codes!r}")
        if self.retry_throttling is not None:
            self.retry_throttling.validate()
        if not isinstance(self.wait_for_ready, bool):
            raise ValueError(f"wait_for_ready must be True or False, got {self.wait_for_ready!r}")
        if isinstance(self.max_message_bytes, bool) or not isinstance(self.max_message_bytes, int) or self.max_message_bytes < 1:
            raise ValueError(f"max_message_bytes must be a positive integer, got {self.max_message_bytes!r}")
        return self


def _duration(seconds: float) -> str:
    """``seconds`` as a protobuf Duration in JSON: ``"0.02s"``."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def service_config(config: ClientConfig) -> str:
    """The gRPC service-config JSON for ``config`` (validated by the caller).

    >>> import json
    >>> document = json.loads(service_config(ClientConfig(deadline_s=0.3, retries=2)))
    >>> document["loadBalancingConfig"]
    [{'round_robin': {}}]
    >>> method = document["methodConfig"][0]
    >>> method["waitForReady"], method["retryPolicy"]["maxAttempts"]
    (True, 3)
    >>> method["retryPolicy"]["retryableStatusCodes"], method["retryPolicy"]["initialBackoff"]
    (['UNAVAILABLE'], '0.02s')
    """
    # No "timeout": grpcio applies a service-config timeout about a second early on a new
    # channel (grpc/grpc#34547, #40633), so each call carries ``deadline_s`` itself; a
    # call's deadline covers all its attempts either way.
    method: dict = {"name": [{"service": service} for service in SERVICES], "waitForReady": config.wait_for_ready}
    if config.retries:  # gRPC rejects a retryPolicy of one attempt
        method["retryPolicy"] = {
            "maxAttempts": config.retries + 1,
            "initialBackoff": _duration(config.backoff_base_s),
            "maxBackoff": _duration(config.backoff_cap_s),
            "backoffMultiplier": config.backoff_multiplier,
            "retryableStatusCodes": [code.name for code in config.retry_on],
        }
    document: dict = {"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [method]}
    if config.retry_throttling is not None:
        document["retryThrottling"] = {
            "maxTokens": config.retry_throttling.max_tokens,
            "tokenRatio": config.retry_throttling.token_ratio,
        }
    return json.dumps(document)


def channel_target(targets: str | list[str] | tuple[str, ...]) -> str:
    """The gRPC target naming every replica in ``targets``.

    One ``host:port`` (any host name) or one URI (``dns:///name:port``, ``ipv4:...``) is
    used as it is; several ``host:port`` entries must be IP addresses of one family and
    become one ``ipv4:``/``ipv6:`` target, which round_robin spreads calls over.

    >>> channel_target(["10.0.0.1:8500", "10.0.0.2:8500"])
    'ipv4:10.0.0.1:8500,10.0.0.2:8500'
    >>> channel_target("dns:///recsys-serving.shop.svc.cluster.local:8500")
    'dns:///recsys-serving.shop.svc.cluster.local:8500'
    >>> channel_target(["[::1]:8500", "[::1]:8510"])
    'ipv6:[::1]:8500,[::1]:8510'
    """
    entries = [targets] if isinstance(targets, str) else list(targets)
    if not entries or not all(isinstance(entry, str) and entry for entry in entries):
        raise ValueError(f"targets: give host:port replicas or one dns:///name:port target, got {targets!r}")
    schemed = [entry for entry in entries if entry.startswith(URI_SCHEMES)]
    if schemed:
        if len(entries) > 1:
            raise ValueError(f"targets: {schemed[0]!r} names its replicas itself; give it alone, not with {len(entries) - 1} more")
        return entries[0]
    hosts = [_host_of(entry) for entry in entries]
    if len(entries) == 1:
        return entries[0]
    families = set()
    for entry, host in zip(entries, hosts):
        try:
            families.add(ipaddress.ip_address(host).version)
        except ValueError:
            raise ValueError(
                f"targets: {entry!r}: several replicas must be IP addresses (host names: one dns:///name:port target "
                "resolving to every replica, e.g. a headless Kubernetes Service)"
            ) from None
    if len(families) > 1:
        raise ValueError(f"targets mix IPv4 and IPv6 addresses ({entries}); gRPC takes one family per target")
    return f"ipv{families.pop()}:" + ",".join(entries)


def _host_of(entry: str) -> str:
    """The host of ``host:port`` (brackets stripped from an IPv6 address); ValueError naming a bad entry."""
    host, colon, port = entry.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"targets: {entry!r} is not host:port (IPv6 as [address]:port) nor a dns:///name:port target")
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def channel_options(config: ClientConfig, tls: TlsConfig | None) -> list[tuple[str, object]]:
    """Channel options for ``config``: the service config, keepalive, limits and reconnect backoff."""
    options = [
        ("grpc.service_config", service_config(config)),
        # The policy is the client's: a DNS TXT record must not replace it.
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # A request larger than the per-call retry buffer (256 KiB by default) is committed
        # when sent and never retried; every request the client may send stays retryable.
        ("grpc.per_rpc_retry_buffer_size", config.max_message_bytes),
        # gRPC's default first reconnect waits 1 s; a replica that comes back should be
        # usable again well within a client deadline.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]
    if config.keepalive_s is not None:
        options += [
            ("grpc.keepalive_time_ms", round(config.keepalive_s * 1000)),
            ("grpc.keepalive_timeout_ms", round(config.keepalive_timeout_s * 1000)),
            # Only connections with calls in flight are pinged: servers (TF Serving's
            # default policy) answer pings on idle connections more often than every
            # 5 minutes with GOAWAY "too_many_pings".
            ("grpc.keepalive_permit_without_calls", 0),
        ]
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return options


def open_channel(target: str, config: ClientConfig, tls: TlsConfig | None, aio: bool = False):
    """A (secure if ``tls``) channel to ``target``; ``aio`` for a grpc.aio channel."""
    module = grpc.aio if aio else grpc
    options = channel_options(config, tls)
    if tls is None:
        return module.insecure_channel(target, options=options)
    return module.secure_channel(target, grpc.ssl_channel_credentials(tls.root_certificates, tls.private_key, tls.certificate_chain),
                                 options=options)


def stubs(channel) -> dict[str, object]:
    """Method path -> callable for every TF Serving method the client uses, on ``channel``."""
    return {
        method: channel.unary_unary(
            method,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        for method, response_class in RESPONSE_CLASS.items()
    }
