"""The one exception the thin client raises for a failed call."""

from __future__ import annotations

import grpc


class ServingError(Exception):
    """A call failed: ``code`` is the gRPC status, the message says what and where.

    Usage::

        try:
            client.recommend(["item-1"], k=10)
        except ServingError as error:
            if error.code is grpc.StatusCode.INVALID_ARGUMENT:
                ...
    """

    def __init__(self, code: grpc.StatusCode, message: str, target: str | None = None):
        super().__init__(f"{code.name}: {message}" + (f" (target {target})" if target else ""))
        self.code = code
        self.details = message
        self.target = target

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, target: str) -> ServingError:
        """The error for a call on ``target`` that gRPC failed, retries included (sync or asyncio)."""
        return cls(error.code(), error.details() or "", target)
