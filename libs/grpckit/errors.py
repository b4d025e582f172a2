"""Turning rejections into canonical gRPC statuses with `google.rpc` details.

A DomainError becomes its status code, its message, an `ErrorInfo` (stable
reason, domain `podium.dev`, metadata) and, where it applies, `BadRequest`
field violations or `RetryInfo`. Losing the database is UNAVAILABLE (retry);
anything unexpected is INTERNAL and logged with its stack trace.
"""

from __future__ import annotations

import logging

import asyncpg
import grpc
from aiokafka.errors import KafkaError
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from libs.domain.errors import DomainError, InvalidArgument, ResourceExhausted, Unavailable
from libs.domain.reasons import Reason

log = logging.getLogger(__name__)

ERROR_DOMAIN = "podium.dev"


def to_status(error: DomainError) -> grpc.Status:
    code = getattr(code_pb2, error.code, code_pb2.UNKNOWN)
    details = [
        error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata),
    ]
    if isinstance(error, InvalidArgument) and error.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in error.violations
                ]
            )
        )
    if isinstance(error, ResourceExhausted | Unavailable) and getattr(error, "retry_after_seconds", None):
        seconds = float(error.retry_after_seconds)  # type: ignore[attr-defined]
        details.append(
            error_details_pb2.RetryInfo(
                retry_delay=duration_pb2.Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))
            )
        )
    packed = []
    for detail in details:
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    return rpc_status.to_status(status_pb2.Status(code=code, message=error.message, details=packed))


def classify(exc: BaseException) -> DomainError | None:
    """The DomainError to report for `exc`, or None when it is a bug (INTERNAL)."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, OSError | asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError):
        return Unavailable(
            "the event store is unreachable; retry with backoff", reason=Reason.STORE_UNAVAILABLE
        )
    if isinstance(exc, asyncpg.exceptions.InterfaceError | asyncpg.exceptions.ConnectionDoesNotExistError):
        return Unavailable(
            "the event store connection was lost; retry with backoff", reason=Reason.STORE_UNAVAILABLE
        )
    if isinstance(exc, KafkaError):  # a write straight to the log (presence's heartbeats) refused
        return Unavailable(
            "the event log did not take the write; retry with backoff",
            reason=Reason.LOG_UNAVAILABLE,
            retry_after_seconds=1.0,
        )
    return None


async def abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    error = classify(exc)
    if error is None:
        log.error("%s failed", method, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}; it has been logged")
    else:
        await context.abort_with_status(to_status(error))
