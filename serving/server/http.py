"""The embedded server's HTTP side: Prometheus metrics and TF Serving's model status URL.

``GET <prometheus path>`` answers the metrics; ``GET /v1/models/<name>`` answers the
model's version states in TF Serving's REST JSON shape (what readiness probes poll).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from serving.server.errors import RequestFailed


def start_http(host: str, port: int, manager, metrics, metrics_path: str | None) -> ThreadingHTTPServer:
    """Starts serving on (host, port) in a daemon thread; returns the server (``.server_port``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # http.server's naming
            if metrics_path and self.path == metrics_path:
                self._send(200, metrics.exposition(), "text/plain; version=0.0.4")
            elif self.path.startswith("/v1/models/"):
                self._model_status(self.path[len("/v1/models/") :])
            else:
                self._json(404, {"error": f"no such path {self.path!r}"})

        def _model_status(self, rest: str):
            name, _, version = rest.partition("/versions/")
            try:
                states = manager.statuses(name, int(version) if version.isdigit() else None)
            except RequestFailed as failure:
                self._json(404, {"error": failure.message})
                return
            self._json(
                200,
                {
                    "model_version_status": [
                        {
                            "version": str(state.version),
                            "state": state.state,
                            "status": {"error_code": state.error_code.name, "error_message": state.error_message},
                        }
                        for state in states
                    ]
                },
            )

        def _json(self, code: int, body: dict):
            self._send(code, json.dumps(body).encode(), "application/json")

        def _send(self, code: int, body: bytes, content_type: str):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # scrapes every few seconds would flood the log
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
