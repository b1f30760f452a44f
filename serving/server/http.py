"""The embedded server's HTTP side: TF Serving's REST API and its Prometheus page.

Clients, probes and scrapers written against tensorflow_model_server's REST port must work
unchanged against the embedded server, so URLs, methods, status codes, JSON bodies and
metrics follow TF Serving. Predict, metadata and status go through the same request paths
as gRPC (:func:`serving.server.service.predict` and friends); only the JSON conversion
(:mod:`serving.server.json_tensor`) and the HTTP framing live here.

Where each behaviour is defined in TF Serving (paths under tensorflow_serving/):

- URLs ``/v1/models/NAME[/versions/V|/labels/L]:predict`` (POST), ``.../metadata`` and status (GET): model_servers/http_rest_api_util.cc
- URL matching case-insensitive, NAME and L percent-decoded, a version beyond int64 refused: model_servers/http_rest_api_util.cc
- other /v1 paths 400 ``Malformed request: <method> <path>``, ``GET /v1/models`` 400: model_servers/http_rest_api_handler.cc
- predict reads the signature's inputs first (unknown signature: 400), answers in the request's format: model_servers/http_rest_api_handler.cc
- status and metadata JSON (proto3 JSON, defaults printed; metadata with proto field names): model_servers/http_rest_api_util.cc
- the gRPC/absl status code -> HTTP status mapping: model_servers/http_server.cc
- ``Content-Type: application/json`` on every /v1 answer, errors included; ``text/plain`` for metrics: model_servers/http_server.cc
- OPTIONS (CORS preflight) 200 with an http(s):// ``Origin`` header, else 400, no body: model_servers/http_server.cc
- every /v1 call counted in request_count, successes timed (``API`` = URL method, ``entrypoint="REST"``): model_servers/http_server.cc
- the metrics page at the MonitoringConfig path (default ``/monitoring/prometheus/metrics``): util/prometheus_exporter.cc

Model, version and label resolution is the manager's, shared with gRPC, and so are its
messages. One known difference from TF Serving comes from there, not from HTTP: an unknown
label is 404 (TF Serving: 400 ``Unrecognized servable version label``). A status URL with a
label reports every version, as TF Serving's GetModelStatus ignores the label
(model_servers/get_model_status_impl.cc); the gRPC GetModelStatus still resolves it. The
fidelity table in serving/README.md lists every difference.

The embedded server adds what a development server shared by tests needs and TF Serving
gets from libevent: a request body limit (413, the connection closed unread; chunked bodies
are decoded as libevent does, within the same limit) and a socket timeout so an idle or
stalled client does not hold its thread forever.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import grpc
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from serving import contract
from serving.server import json_tensor
from serving.server.errors import RequestFailed
from serving.server.metrics import REST, micros_since, model_label
from serving.server.service import model_metadata, model_status, predict

# Seconds a connection may sit idle (or stall mid-request) before the server closes it.
SOCKET_TIMEOUT_S = 30.0

_V1 = re.compile(r"/v1/.*", re.IGNORECASE)
_SPEC = r"(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
_PREDICTION_URL = re.compile(rf"/v1/models/([^/:]+){_SPEC}:(classify|regress|predict)", re.IGNORECASE)
_MODEL_URL = re.compile(rf"/v1/models(?:/([^/:]+))?{_SPEC}(?:/(metadata))?", re.IGNORECASE)
_INT64_MAX = 2**63 - 1

HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def _invalid(message: str) -> RequestFailed:
    return RequestFailed(grpc.StatusCode.INVALID_ARGUMENT, message)


class _Call:
    """What one /v1 request named: its model (a metric label) and its API (``predict``, or '' for GETs)."""

    def __init__(self):
        self.model = ""
        self.api = ""


class RestApi:
    """TF Serving's REST handler over the manager: ``answer(method, path, body)`` -> (code, JSON).

    Usage::

        api = RestApi(manager, metrics)
        code, body = api.answer("POST", "/v1/models/recommend:predict", b'{"inputs": {...}}')
    """

    def __init__(self, manager, metrics):
        self._manager = manager
        self._metrics = metrics

    def answer(self, method: str, path: str, body: bytes, origin: str = "") -> tuple[int, str]:
        """Answers one /v1 request (``origin``: its Origin header) and records its metrics as
        TF Serving's HTTP server does. A CORS preflight (OPTIONS) gets no body either way."""
        start = time.perf_counter()
        call = _Call()
        try:
            if method == "OPTIONS":
                if not re.search(r"https?://", origin):
                    raise RequestFailed(grpc.StatusCode.FAILED_PRECONDITION, "Origin header is missing in CORS preflight")
                text = ""
            else:
                text = self._process(method, path, body, call)
            code = grpc.StatusCode.OK
        except RequestFailed as failure:
            text, code = ("" if method == "OPTIONS" else json_tensor.error_answer(failure.message)), failure.code
        model = model_label(call.model, self._manager.model_names())
        if code is grpc.StatusCode.OK:
            self._metrics.request_latency.add(model, call.api, REST, value=micros_since(start))
        self._metrics.request_count.increment(model, code.name)
        return HTTP_STATUS.get(code, 500), text

    def _process(self, method: str, path: str, body: bytes, call: _Call) -> str:
        parsed = _PREDICTION_URL.fullmatch(path) if method == "POST" else _MODEL_URL.fullmatch(path) if method == "GET" else None
        if parsed is None:
            raise _invalid(f"Malformed request: {method} {path}")
        name, version, label, verb = (group or "" for group in parsed.groups())
        call.model = unquote(name)
        if version and int(version) > _INT64_MAX:
            raise _invalid(f"Failed to convert version: {version} to numeric.")
        spec = {"name": call.model, "version": int(version) if version else None, "label": unquote(label) or None}
        if method == "POST":
            call.api = verb
            if verb == "predict":
                return self._predict(spec, body)
            if verb in ("classify", "regress"):
                raise RequestFailed(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{verb} is not implemented: the recommendation models export Predict signatures only; call predict",
                )
            raise _invalid(f"Malformed request: {method} {path}")  # e.g. ':PREDICT', which the URL pattern lets through
        if not call.model:
            raise _invalid("Missing model name in request.")
        if verb == "metadata":
            request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            _fill_spec(request.model_spec, spec)
            response = model_metadata(self._manager, request)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(signatures)
            return json.dumps({"model_spec": _proto_json(response.model_spec), "metadata": {"signature_def": _proto_json(signatures)}}, indent=1)
        request = get_model_status_pb2.GetModelStatusRequest()
        # TF Serving's GetModelStatus reads only the version, so a label, known or not, changes nothing.
        _fill_spec(request.model_spec, {**spec, "label": None})
        return json_format.MessageToJson(model_status(self._manager, request), indent=1, always_print_fields_with_no_presence=True)

    def _predict(self, spec: dict, body: bytes) -> str:
        request = predict_pb2.PredictRequest()
        _fill_spec(request.model_spec, spec)

        def input_dtypes(signature_name: str) -> dict[str, int]:
            servable = self._manager.servable(spec["name"], spec["version"], spec["label"])
            signature = signature_name or contract.DEFAULT_SIGNATURE
            if signature not in servable.signature_defs:
                raise _invalid(f'Serving signature name: "{signature}" not found in signature def')
            return {name: info.dtype for name, info in servable.signature_defs[signature].inputs.items()}

        request_format = json_tensor.fill_predict_request(body, input_dtypes, request)
        response = predict(self._manager, self._metrics, request)
        return json_tensor.predict_answer(response.outputs, request_format)


def _fill_spec(model_spec, spec: dict) -> None:
    model_spec.name = spec["name"]
    if spec["version"] is not None:
        model_spec.version.value = spec["version"]
    if spec["label"]:
        model_spec.version_label = spec["label"]


def _proto_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def start_http(host: str, port: int, manager, metrics, metrics_path: str | None, max_body_bytes: int) -> ThreadingHTTPServer:
    """Starts serving on (host, port) in a daemon thread; returns the server (``.server_port``)."""
    api = RestApi(manager, metrics)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving's libevent server
        timeout = SOCKET_TIMEOUT_S

        def _handle(self):
            path = urlsplit(self.path).path
            if metrics_path and path == metrics_path:
                self._send(200, metrics.exposition(), "text/plain")
                return
            if not _V1.fullmatch(path):
                self._send(404, b"", "text/plain")
                return
            body = self._body()
            if body is None:
                return
            code, text = api.answer(self.command, path, body, self.headers.get("Origin", ""))
            self._send(code, json_tensor.encode_answer(text), "application/json")

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle  # noqa: N815 - http.server's naming

        def _body(self) -> bytes | None:
            """The request body, or None when the request was refused (already answered)."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._chunked_body()
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > max_body_bytes:
                return self._refuse(413, f"request body of {self.headers.get('Content-Length')} bytes refused: the limit is {max_body_bytes} bytes")
            return self.rfile.read(length) if length else b""

        def _chunked_body(self) -> bytes | None:
            """A chunked body (RFC 9112 section 7.1), which TF Serving's libevent server decodes too."""
            body = bytearray()
            while True:
                try:
                    size = int(self.rfile.readline(1024).split(b";", 1)[0].strip(), 16)  # chunk extensions ignored
                except ValueError:
                    size = -1
                if size < 0:
                    return self._refuse(400, "malformed chunked request body: a chunk size is not a hexadecimal number")
                if len(body) + size > max_body_bytes:
                    return self._refuse(413, f"chunked request body of over {max_body_bytes} bytes refused: the limit is {max_body_bytes} bytes")
                if size == 0:
                    while self.rfile.readline(8192).strip():  # the trailer fields, up to an empty line
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline(8192)  # the CRLF closing the chunk

        def _refuse(self, code: int, message: str) -> None:
            self.close_connection = True  # the body stays unread: the connection cannot carry another request
            self._send(code, json_tensor.encode_answer(json_tensor.error_answer(message)), "application/json")

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
