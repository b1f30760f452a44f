"""The error a request handler raises to answer with a gRPC status and a message."""

from __future__ import annotations

import re

import grpc

# gRPC sends the status message as a header, and a client refuses headers past its limit
# (8 KiB by default), so a message echoing a request's 1 MB model name would turn a clear
# NOT_FOUND into an unreadable error on the client.
MAX_MESSAGE_CHARS = 2000


class RequestFailed(Exception):
    """Answer the current RPC with ``code`` and ``message`` (which names what is wrong).

    Messages longer than ``MAX_MESSAGE_CHARS`` are cut, saying how much was left out.

    Usage::

        raise RequestFailed(grpc.StatusCode.NOT_FOUND, "model 'foo' is not served")

    >>> len(RequestFailed(grpc.StatusCode.NOT_FOUND, "x" * 10**6).message) <= MAX_MESSAGE_CHARS
    True
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        if len(message) > MAX_MESSAGE_CHARS:
            kept = MAX_MESSAGE_CHARS - 40  # room for the note, which is shorter
            message = f"{message[:kept]}... ({len(message) - kept} more characters)"
        super().__init__(message)
        self.code = code
        self.message = message


def shown(value: str, limit: int = 100) -> str:
    """``repr(value)``, cut to about ``limit`` characters: for echoing a request's field in a message.

    >>> shown("recommend"), shown("m" * 1000, limit=10)
    ("'recommend'", "'mmmmmmmmmm'... (990 more characters)")
    """
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value) - limit} more characters)"


# TensorFlow's error codes are gRPC's numbers.
_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
# Lines of a TF error message that locate the failing graph node rather than say what failed.
_NODE_CONTEXT = re.compile(r"^(Graph execution error:|Detected at node|<stack traces unavailable>|\s)")
_NODE_SUFFIX = re.compile(r"\s*\[\[\{\{node .*$")


def tf_error_summary(message: str) -> str:
    """The part of a TensorFlow error message a client can act on, on one line."""
    lines = [line for line in message.splitlines() if line.strip() and not _NODE_CONTEXT.match(line)]
    summary = _NODE_SUFFIX.sub("", " ".join(lines)).strip()
    return summary or message.strip().replace("\n", " ")


def from_tf_error(error) -> RequestFailed:
    """A RequestFailed for a ``tf.errors.OpError`` with the same code and a one-line message."""
    code = _CODES_BY_NUMBER.get(error.error_code, grpc.StatusCode.INTERNAL)
    return RequestFailed(code, tf_error_summary(error.message or str(error)))


class _Unparsable:
    """What the lenient deserializer hands on instead of a request that does not parse."""

    def __init__(self, error: Exception):
        self.error = error


class ParseErrorsAsInvalidArgument(grpc.ServerInterceptor):
    """Answers a request whose bytes do not parse (corrupt wire format, non-UTF-8 strings)
    with INVALID_ARGUMENT naming the message type, where grpcio would say INTERNAL.

    Usage::

        grpc.server(executor, interceptors=[ParseErrorsAsInvalidArgument()])
    """

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        parse, behaviour = handler.request_deserializer, handler.unary_unary

        def deserialize(data: bytes):
            try:
                return parse(data)
            except Exception as error:  # noqa: BLE001 - protobuf raises DecodeError and friends
                return _Unparsable(error)

        def answer(request, context):
            if isinstance(request, _Unparsable):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"{handler_call_details.method}: the request does not parse: {request.error}")
            return behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(answer, request_deserializer=deserialize,
                                                   response_serializer=handler.response_serializer)
