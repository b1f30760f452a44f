"""A server replica in its own process, so a drill can SIGKILL it like a crashed machine.

Run as ``python -m drills.replica --config models.config --model-base DIR --port P``;
prints ``READY <port>`` (``READY <port> <rest port>`` with ``--rest-port``) once the models
are loaded and warmed up, stops cleanly on SIGTERM. The fuzz benchmark serves this way too,
so the server's memory is measured apart from the client's.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

READY = "READY"


def main(argv: list[str] | None = None) -> int:
    """Serves until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--model-base", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--poll-seconds", type=float, default=0.5)
    parser.add_argument("--rest-port", type=int, default=None, help="serve TF Serving's REST API too (0: a free port)")
    parser.add_argument("--enable-batching", action="store_true")
    parser.add_argument("--max-message-bytes", type=int, default=None)
    args = parser.parse_args(argv)

    from serving.server import ServerConfig, serve

    limits = {} if args.max_message_bytes is None else {"max_message_bytes": args.max_message_bytes}
    handle = serve(ServerConfig(args.config, model_base=args.model_base, port=args.port, poll_seconds=args.poll_seconds,
                                rest_port=args.rest_port, enable_batching=args.enable_batching, **limits,
                                allow_config_reload=True))  # the canary tooling reloads replicas (from loopback)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    print(" ".join(map(str, [READY, handle.port] + ([handle.rest_port] if handle.rest_port else []))), flush=True)
    stopped.wait()
    handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
