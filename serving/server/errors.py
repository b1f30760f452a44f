"""The error a request handler raises to answer with a gRPC status and a message."""

from __future__ import annotations

import re

import grpc


class RequestFailed(Exception):
    """Answer the current RPC with ``code`` and ``message`` (which names what is wrong).

    Usage::

        raise RequestFailed(grpc.StatusCode.NOT_FOUND, "model 'foo' is not served")
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


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
