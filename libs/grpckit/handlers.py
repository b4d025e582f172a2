"""Decorators for servicer methods: authenticate, run, map errors.

    class RoomApi(room_service_pb2_grpc.RoomServiceServicer):
        @unary
        async def GetSpace(self, request, caller: Caller) -> GetSpaceResponse: ...

The servicer must have an `authenticator` attribute. The caller's identity comes
only from the verified bearer token, never from the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc

from libs.auth.tokens import Identity, InvalidToken, TokenVerifier
from libs.domain.errors import DomainError, Unauthenticated
from libs.grpckit.errors import abort
from libs.telemetry.logging import set_space
from libs.telemetry.metrics import COMMAND_SECONDS, COMMANDS
from libs.telemetry.tracing import current_traceparent


@dataclass(frozen=True)
class Caller:
    identity: Identity
    correlation_id: str
    traceparent: str
    tracestate: str
    metadata: dict[str, str]

    @property
    def user_id(self) -> str:
        return self.identity.user_id


class Authenticator:
    def __init__(self, verifier: TokenVerifier):
        self.verifier = verifier

    def authenticate(self, context: grpc.aio.ServicerContext) -> Caller:
        metadata = {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        header = metadata.get("authorization", "")
        if not header:
            raise Unauthenticated(
                "missing bearer token: send metadata 'authorization: Bearer <jwt>'", reason="TOKEN_MISSING"
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "the authorization metadata must be 'Bearer <jwt>'", reason="TOKEN_MALFORMED"
            )
        try:
            identity = self.verifier.verify(token.strip())
        except InvalidToken as e:
            raise Unauthenticated(str(e), reason="TOKEN_INVALID") from e
        # The server span (opened by the gRPC instrumentation from the caller's `traceparent`) is
        # what the command's events carry on; without tracing, the caller's own context.
        traceparent, tracestate = current_traceparent()
        return Caller(
            identity=identity,
            correlation_id=metadata.get("x-correlation-id", ""),
            traceparent=traceparent or metadata.get("traceparent", ""),
            tracestate=tracestate if traceparent else metadata.get("tracestate", ""),
            metadata=metadata,
        )


def unary(method: Callable[..., Awaitable]):
    name = method.__name__

    @functools.wraps(method)
    async def handler(self, request, context: grpc.aio.ServicerContext):
        set_space(getattr(request, "space_id", ""))
        with _measured(name, context):
            try:
                caller = self.authenticator.authenticate(context)
                return await method(self, request, caller)
            except grpc.aio.AbortError:
                raise
            except (DomainError, Exception) as e:
                await abort(context, e, name)

    return handler


def server_stream(method: Callable[..., AsyncIterator]):
    name = method.__name__

    @functools.wraps(method)
    async def handler(self, request, context: grpc.aio.ServicerContext):
        set_space(getattr(request, "space_id", ""))
        task = asyncio.current_task()
        _open_streams.add(task)
        with _measured(name, context):
            try:
                caller = self.authenticator.authenticate(context)
                async for item in method(self, request, caller):
                    yield item
            except grpc.aio.AbortError:
                raise
            except asyncio.CancelledError:
                if not _draining.is_set():
                    raise
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE, "the server is shutting down; reconnect (to another replica)"
                )
            except (DomainError, Exception) as e:
                await abort(context, e, name)
            finally:
                _open_streams.discard(task)

    return handler


_open_streams: set[asyncio.Task] = set()
_draining = asyncio.Event()


def end_streams() -> int:
    """Ends every open server stream with UNAVAILABLE, so its client reconnects elsewhere.

    Called on shutdown, before the server drains its unary calls: a stream (a
    gateway's WatchSpace or Subscribe) would otherwise hold the drain for the
    whole grace period. Returns how many it ended.
    """
    _draining.set()
    streams = [t for t in _open_streams if not t.done()]
    for task in streams:
        task.cancel()
    return len(streams)


@contextlib.contextmanager
def _measured(method: str, context: grpc.aio.ServicerContext):
    """Counts the call by its final status code and times it."""
    started = time.perf_counter()
    code = "OK"
    try:
        yield
    except grpc.aio.AbortError:
        code = _code_name(context.code())
        raise
    except asyncio.CancelledError:
        code = "CANCELLED"
        raise
    finally:
        COMMANDS.labels(method, code).inc()
        COMMAND_SECONDS.labels(method).observe(time.perf_counter() - started)


def _code_name(code) -> str:
    if isinstance(code, grpc.StatusCode):
        return code.name
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return "UNKNOWN"
