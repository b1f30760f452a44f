"""``recsys serve`` and ``recsys serve-config``: run TF Serving (or the embedded server), write its configs.

With ``tensorflow_model_server`` on PATH, ``recsys serve`` replaces itself with it
(``os.execvp``), so SIGTERM from docker or the kubelet reaches the server itself; it
passes only flags tensorflow_serving/model_servers/main.cc defines and refuses options the
binary cannot honour (it has no address flag, and reads port 0 as "off": server.cc).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from recsys.cli.flags import field_flag, field_values
from recsys_base.errors import ConfigError
from serving import contract
from serving.deployment import POLICIES, DeploymentConfig
from serving.server.app import ServerConfig

MIB = 1024 * 1024

MODEL_SERVER_BINARY = "tensorflow_model_server"
# The only address the binary listens on (server.cc builds "0.0.0.0:<port>"; no flag changes it).
MODEL_SERVER_HOST = "0.0.0.0"


def register(subparsers) -> None:
    """Adds ``serve`` and ``serve-config`` to the ``recsys`` parser."""
    serve = subparsers.add_parser(
        "serve",
        help="serve exported models over gRPC (tensorflow_model_server if on PATH, else the embedded server)",
        description="Runs tensorflow_model_server with the generated flags when it is on PATH; otherwise starts the "
        "embedded TF-Serving-compatible server on the same directory and config. The first line says which.",
    )
    serve.add_argument("--model-base", type=Path, required=True, help="directory holding <model>/<version>/ SavedModels")
    serve.add_argument("--config", type=Path, help="models.config (text ModelServerConfig); default: generated for the models found")
    serve.add_argument("--host", help=f"address to bind (embedded server only, default {ServerConfig.host}; "
                       f"{MODEL_SERVER_BINARY} always binds {MODEL_SERVER_HOST})")
    serve.add_argument("--port", type=int, default=contract.GRPC_PORT,
                       help="gRPC port (0: pick a free one, embedded server only; default: %(default)s)")
    serve.add_argument("--rest-port", type=int, default=contract.REST_PORT,
                       help="REST/metrics port (0: pick a free one, embedded server only; default: %(default)s)")
    serve.add_argument("--batching-config", type=Path, help="BatchingParameters file; enables batching")
    serve.add_argument("--monitoring-config", type=Path, help="MonitoringConfig file (Prometheus path); default: generated")
    serve.add_argument("--poll-seconds", type=float, default=ServerConfig.poll_seconds,
                       help="how often to look for new model versions (default: %(default)s)")
    # TF Serving's cadence, as in the generated deployment (the embedded server's own default is never).
    serve.add_argument("--config-poll-seconds", type=float, default=DeploymentConfig.model_config_file_poll_wait_seconds,
                       help="how often to re-read --config (0: never; default: %(default)s)")
    serve.add_argument("--max-message-mb", type=int, default=ServerConfig.max_message_bytes // MIB,
                       help="largest gRPC message accepted, in MiB (default: %(default)s)")
    serve.add_argument("--ssl-cert", type=Path, help="PEM certificate chain: serve gRPC over TLS (with --ssl-key)")
    serve.add_argument("--ssl-key", type=Path, help="PEM private key of --ssl-cert")
    serve.add_argument("--ssl-client-ca", type=Path,
                       help="PEM CA certificates: require client certificates signed by them (mutual TLS)")
    serve.add_argument("--allow-config-reload", action="store_true",
                       help="answer HandleReloadConfigRequest (embedded server only, and only on loopback or over mutual TLS; "
                       f"{MODEL_SERVER_BINARY} always answers it: keep its port off the shop network, deploy/README.md)")
    serve.add_argument("--embedded", action="store_true", help="use the embedded server even if tensorflow_model_server is on PATH")
    serve.set_defaults(func=_serve)

    config = subparsers.add_parser(
        "serve-config",
        help="write models.config, batching and monitoring configs, docker-compose.yml and kubernetes.yaml",
        description="Generates TF Serving deployment files for the retrieval, ranking and recommend models.",
    )
    config.add_argument("--out", type=Path, required=True, help="directory to write into")
    config.add_argument("--model-base", default=DeploymentConfig.model_base,
                        help="model base path as the server sees it (default: %(default)s in the container)")
    config.add_argument("--models", nargs="+", default=list(DeploymentConfig.models), help="models to serve")
    config.add_argument("--policy", choices=POLICIES, default=DeploymentConfig.version_policy,
                        help="model version policy (default: specific, serving exactly the labelled versions, when "
                        "--stable/--canary are given; else latest)")
    field_flag(config, DeploymentConfig, "num_versions", "versions kept loaded with --policy latest")
    config.add_argument("--versions", type=int, nargs="+", default=(),
                        help="versions served with --policy specific (default: the labelled ones)")
    config.add_argument("--stable", type=int, help=f"version labelled {contract.STABLE_LABEL!r}")
    config.add_argument("--canary", type=int, help=f"version labelled {contract.CANARY_LABEL!r}")
    for field, text in (
        ("max_batch_size", "largest server-side batch, in rows"),
        ("batch_timeout_micros", "longest a batch waits to fill"),
        ("replicas", "server replicas in docker-compose/Kubernetes"),
        ("image", "TF Serving image for docker-compose/Kubernetes"),
        ("startup_seconds", "time a replica may take to load and warm up the models before liveness checks count"),
    ):
        field_flag(config, DeploymentConfig, field, text)
    config.add_argument("--configs-only", action="store_true", help="write only the three TF Serving config files")
    config.set_defaults(func=_serve_config)


def _serve_config(args: argparse.Namespace) -> int:
    from serving.deployment import write_configs, write_deployment

    deployment = DeploymentConfig(**{
        **field_values(args, DeploymentConfig),  # --model-base, --num-versions, batching, --replicas, --image
        "models": tuple(args.models),
        "version_policy": args.policy,
        "specific_versions": tuple(args.versions),
        "stable_version": args.stable,
        "canary_version": args.canary,
    })
    written = (write_configs if args.configs_only else write_deployment)(deployment, args.out)
    for path in written.values():
        print(path)
    return 0


def _local_configs(model_base: Path, out_dir: Path) -> dict[str, Path]:
    from serving.deployment import write_configs

    models = tuple(model for model in contract.MODELS if (model_base / model).is_dir())
    if not models:
        raise ConfigError(f"--model-base {model_base} holds none of the models {list(contract.MODELS)}; export them first")
    return write_configs(DeploymentConfig(model_base=str(model_base.resolve()), models=models), out_dir)


def _config_paths(args: argparse.Namespace, generated: Path) -> tuple[Path, Path]:
    """(models config, monitoring config): the given ones, else generated into ``generated``."""
    defaults = _local_configs(args.model_base, generated) if args.config is None or args.monitoring_config is None else {}
    return args.config or defaults["models.config"], args.monitoring_config or defaults["monitoring.config"]


def _serve(args: argparse.Namespace) -> int:
    if not args.model_base.is_dir():
        raise ConfigError(f"--model-base {args.model_base} is not a directory")
    for flag, path in (("--config", args.config), ("--batching-config", args.batching_config), ("--monitoring-config", args.monitoring_config)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{flag} {path} does not exist")
    tls = _server_tls(args)
    binary = None if args.embedded else shutil.which(MODEL_SERVER_BINARY)
    if binary is not None:
        return _exec_model_server(binary, args, tls)
    with tempfile.TemporaryDirectory(prefix="recsys-serve-") as generated:
        return _run_embedded(args, tls, *_config_paths(args, Path(generated)))


def _server_tls(args: argparse.Namespace):
    """The --ssl-* files as :class:`ServerTls` (None without --ssl-cert), or a ConfigError naming the flag."""
    from serving.server.app import ServerTls

    if args.ssl_cert is None and args.ssl_key is None and args.ssl_client_ca is None:
        return None
    if args.ssl_cert is None or args.ssl_key is None:
        raise ConfigError("--ssl-cert and --ssl-key go together (--ssl-client-ca needs both)")
    pem = {}
    for flag, path in (("--ssl-cert", args.ssl_cert), ("--ssl-key", args.ssl_key), ("--ssl-client-ca", args.ssl_client_ca)):
        if path is None:
            continue
        try:
            pem[flag] = path.read_bytes()
        except OSError as error:
            raise ConfigError(f"{flag} {path}: {error.strerror or error}") from None
        if b"-----BEGIN " not in pem[flag]:
            raise ConfigError(f"{flag} {path} is not a PEM file (no -----BEGIN line)")
    return ServerTls(pem["--ssl-key"], pem["--ssl-cert"], pem.get("--ssl-client-ca"))


def _whole_seconds(seconds: float) -> int:
    """TF Serving's poll flags take whole seconds; 0 keeps meaning 'no periodic polling'."""
    return 0 if seconds == 0 else max(1, round(seconds))


def _exec_model_server(binary: str, args, tls) -> NoReturn:
    """Replaces this process with ``binary``, or raises ConfigError."""
    from serving.deployment import server_flags, ssl_config_text

    if args.allow_config_reload:
        raise ConfigError(f"--allow-config-reload: {MODEL_SERVER_BINARY} always answers HandleReloadConfigRequest and has no "
                          "flag to refuse it; drop the flag and keep its gRPC port off the shop network (deploy/README.md)")
    if args.host is not None and args.host != MODEL_SERVER_HOST:
        raise ConfigError(f"--host {args.host}: {MODEL_SERVER_BINARY} has no flag to choose its address and always binds "
                          f"{MODEL_SERVER_HOST}; drop --host, or use --embedded")
    deployment = DeploymentConfig(
        file_system_poll_wait_seconds=_whole_seconds(args.poll_seconds),
        model_config_file_poll_wait_seconds=_whole_seconds(args.config_poll_seconds),
        max_message_bytes=args.max_message_mb * MIB,
    ).validate()
    # The server re-reads models.config while it runs, so generated configs outlive this
    # process (exec leaves no one to delete them; they are small).
    generated = Path(tempfile.mkdtemp(prefix="recsys-serve-"))
    try:
        models_config, monitoring_config = _config_paths(args, generated)
        batching_config = None if args.batching_config is None else str(args.batching_config)
        ssl_config = None
        if tls is not None:
            ssl_config = generated / "ssl.config"
            ssl_config.write_text(ssl_config_text(tls.private_key, tls.certificate_chain, tls.client_ca))
            ssl_config.chmod(0o600)  # it holds the private key
        flags = server_flags(deployment, str(models_config), batching_config, str(monitoring_config), port=args.port,
                             rest_port=args.rest_port, ssl_config=None if ssl_config is None else str(ssl_config))
    except ConfigError:
        shutil.rmtree(generated)
        raise
    print(f"recsys serve: running {binary} {' '.join(flags)}", flush=True)
    sys.stderr.flush()
    try:
        os.execvp(binary, [binary, *flags])
    except OSError as error:
        raise ConfigError(f"cannot run {binary}: {error.strerror or error}") from None


def _run_embedded(args, tls, models_config: Path, monitoring_config: Path) -> int:
    import logging

    print(f"recsys serve: {MODEL_SERVER_BINARY} not on PATH or --embedded given; starting the embedded server", flush=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from serving.server import serve

    handle = serve(
        ServerConfig(
            models_config,
            model_base=args.model_base,
            host=args.host or ServerConfig.host,
            port=args.port,
            rest_port=args.rest_port,
            poll_seconds=args.poll_seconds,
            config_poll_seconds=args.config_poll_seconds,
            enable_batching=args.batching_config is not None,
            batching_parameters_file=args.batching_config,
            monitoring_config_file=monitoring_config,
            max_message_bytes=args.max_message_mb * MIB,
            tls=tls,
            allow_config_reload=args.allow_config_reload,
            enable_grpc_healthcheck_service=True,  # as the generated deployment runs TF Serving
        )
    )
    host = args.host or ServerConfig.host
    print(f"recsys serve: gRPC on {host}:{handle.port}, REST/metrics on {host}:{handle.rest_port}", flush=True)

    def interrupt(signum, frame):
        raise KeyboardInterrupt  # SIGTERM (docker stop, kubelet) stops like Ctrl-C

    signal.signal(signal.SIGTERM, interrupt)
    try:
        handle.wait()
    except KeyboardInterrupt:
        print("recsys serve: stopping", flush=True)
    finally:
        handle.stop()
    return 0
