"""Decorators for servicer methods: authenticate, check the kind of caller, run, map errors.

    class RoomApi(room_service_pb2_grpc.RoomServiceServicer):
        @unary
        async def GetSpace(self, request, caller: Caller) -> GetSpaceResponse: ...

        @unary(callers=GATEWAYS)
        async def ReportPresence(self, request, caller: Caller) -> ReportPresenceResponse: ...

The servicer must have an `authenticator` attribute. The caller's identity comes
only from the verified bearer token, never from the request. A call is for
users unless it says otherwise: a gateway acts for a user with that user's own
token, so a gateway token is accepted only where the call is the gateway's own
(docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc

from libs.auth.tokens import Identity, InvalidToken, TokenVerifier
from libs.domain.errors import DomainError, PermissionDenied, Unauthenticated
from libs.domain.reasons import Reason
from libs.grpckit.errors import abort
from libs.telemetry.logging import set_space
from libs.telemetry.metrics import COMMAND_SECONDS, COMMANDS
from libs.telemetry.tracing import current_traceparent


class Callers(enum.Flag):
    """The kinds of token a call accepts."""

    USERS = enum.auto()
    GATEWAYS = enum.auto()


USERS, GATEWAYS = Callers.USERS, Callers.GATEWAYS
USERS_AND_GATEWAYS = USERS | GATEWAYS


@dataclass(frozen=True)
class Caller:
    identity: Identity
    correlation_id: str
    traceparent: str
    tracestate: str
    metadata: dict[str, str]

    @property
    def user_id(self) -> str:
        """The user's id, or for a gateway token the gateway's id (both are the token's `sub`)."""
        return self.identity.user_id

    @property
    def is_gateway(self) -> bool:
        return self.identity.is_gateway


class Authenticator:
    def __init__(self, verifier: TokenVerifier):
        self.verifier = verifier

    def authenticate(self, context: grpc.aio.ServicerContext, callers: Callers = USERS) -> Caller:
        metadata = {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        header = metadata.get("authorization", "")
        if not header:
            raise Unauthenticated(
                "missing bearer token: send metadata 'authorization: Bearer <jwt>'",
                reason=Reason.TOKEN_MISSING,
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "the authorization metadata must be 'Bearer <jwt>'", reason=Reason.TOKEN_MALFORMED
            )
        try:
            identity = self.verifier.verify(token.strip())
        except InvalidToken as e:
            raise Unauthenticated(str(e), reason=Reason.TOKEN_INVALID) from e
        _check_kind(identity, callers)
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


def _check_kind(identity: Identity, callers: Callers) -> None:
    if identity.is_gateway and GATEWAYS not in callers:
        raise PermissionDenied(
            "this call takes the user's own token; a gateway acts for a user with that user's token",
            reason=Reason.USER_TOKEN_REQUIRED,
        )
    if not identity.is_gateway and USERS not in callers:
        raise PermissionDenied(
            "only a client gateway may make this call: send a gateway token (role 'gateway')",
            reason=Reason.GATEWAY_TOKEN_REQUIRED,
        )


def unary(method: Callable[..., Awaitable] | None = None, *, callers: Callers = USERS):
    """`@unary` for calls users make, `@unary(callers=...)` for others."""
    if method is None:
        return functools.partial(unary, callers=callers)
    name = method.__name__

    @functools.wraps(method)
    async def handler(self, request, context: grpc.aio.ServicerContext):
        set_space(getattr(request, "space_id", ""))
        with _measured(name, context):
            try:
                caller = self.authenticator.authenticate(context, callers)
                return await method(self, request, caller)
            except grpc.aio.AbortError:
                raise
            except (DomainError, Exception) as e:
                await abort(context, e, name)

    return handler


def server_stream(method: Callable[..., AsyncIterator] | None = None, *, callers: Callers = USERS):
    """A server stream that ends with UNAVAILABLE when the server drains (see `end_streams`)."""
    if method is None:
        return functools.partial(server_stream, callers=callers)
    name = method.__name__

    @functools.wraps(method)
    async def handler(self, request, context: grpc.aio.ServicerContext):
        set_space(getattr(request, "space_id", ""))
        task = asyncio.current_task()
        items = None
        with _measured(name, context):
            try:
                caller = self.authenticator.authenticate(context, callers)
                items = aiter(method(self, request, caller))
                while not _draining.is_set():
                    # Cancellable only while waiting on our own source: a cancel that lands while
                    # grpc sends an item leaves the call open until the server's grace ends.
                    _waiting_streams.add(task)
                    try:
                        item = await anext(items)
                    except StopAsyncIteration:
                        return
                    finally:
                        _waiting_streams.discard(task)
                    yield item
                await _shutting_down(context)
            except grpc.aio.AbortError:
                raise
            except asyncio.CancelledError:
                if not _draining.is_set():
                    raise
                await _shutting_down(context)
            except (DomainError, Exception) as e:
                await abort(context, e, name)
            finally:
                if items is not None:
                    await items.aclose()  # runs the source's cleanup (a watcher leaves its board)

    return handler


async def _shutting_down(context: grpc.aio.ServicerContext) -> None:
    await context.abort(
        grpc.StatusCode.UNAVAILABLE, "the server is shutting down; reconnect (to another replica)"
    )


#: Stream handlers parked on their source (a queue of changes or frames), safe to cancel.
_waiting_streams: set[asyncio.Task] = set()
_draining = asyncio.Event()


def end_streams() -> int:
    """Ends every open server stream with UNAVAILABLE, so its client reconnects elsewhere.

    Called on shutdown, before the server drains its unary calls: a stream (a
    gateway's WatchSpace or Subscribe) would otherwise hold the drain for the
    whole grace period. A stream waiting for its next item is cancelled at once; one
    whose item grpc is sending ends as soon as the send completes. Returns how many
    were waiting.
    """
    _draining.set()
    waiting = [t for t in _waiting_streams if not t.done()]
    for task in waiting:
        task.cancel()
    return len(waiting)


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
