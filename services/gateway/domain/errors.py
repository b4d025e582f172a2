"""How a gRPC status from a Podium service reaches the browser: an HTTP status, the message and its
stable reason (the `ErrorInfo` detail, e.g. REMOVED_FROM_SPACE), which the page branches on."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status a gRPC status maps to (Google's HTTP mapping); anything else is 500."""
    return _HTTP.get(code, 500)


def error_reason(error: grpc.aio.AioRpcError) -> str:
    """The `ErrorInfo` reason a Podium service attached to `error`, or "" when there is none."""
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # a status whose details disagree with its code or message
        return ""
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""
