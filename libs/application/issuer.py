"""Issuing commands on behalf of a caller or of the service itself.

Builds what the executor needs from who is asking: the decide Context (user,
time, token roles), the Causation carried in every envelope (correlation,
causation, W3C trace context) and the idempotency key of the request.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.empty_pb2 import Empty
from google.protobuf.message import Message

from libs.application.executor import CommandExecutor, RequestKey
from libs.domain.decider import SYSTEM_CLAIM, Context
from libs.events.envelope import Causation
from libs.events.ids import new_id
from libs.grpckit.handlers import Caller

R = TypeVar("R", bound=Message)


class CommandIssuer:
    def __init__(
        self, executor: CommandExecutor, system_actor: str, clock: Callable[[], datetime] | None = None
    ):
        self.executor = executor
        self.system_actor = system_actor
        self.clock = clock or (lambda: datetime.now(UTC))

    async def for_caller(
        self,
        caller: Caller,
        *,
        stream_id: str,
        space_id: str,
        command: object,
        method: str,
        request: Message,
        request_id: str,
        respond: Callable[..., R],
        response_type: type[R],
        key: str | None = None,
        remember: bool = True,
    ) -> R:
        """Runs the caller's command. Its response is stored under `request_id` unless not to
        `remember` it (a command one request runs on several streams, which changes nothing twice);
        `request_id` is the causation of its events either way."""
        correlation = caller.correlation_id or new_id()
        return await self.executor.execute(
            stream_id=stream_id,
            space_id=space_id,
            command=command,
            context=Context(caller.user_id, self.clock(), caller.identity.roles),
            causation=Causation(
                actor_user_id=caller.user_id,
                correlation_id=correlation,
                causation_id=request_id or correlation,
                traceparent=caller.traceparent,
                tracestate=caller.tracestate,
            ),
            respond=respond,
            response_type=response_type,
            request_key=RequestKey.of(caller.user_id, method, request_id, request) if remember else None,
            key=key,
        )

    async def as_system(
        self,
        *,
        stream_id: str,
        space_id: str,
        command: object,
        causation_id: str,
        correlation_id: str = "",
        key: str | None = None,
        once_per_cause: bool = False,
        once_key: str = "",
    ) -> list[Message]:
        """Runs a command the service issues itself; returns the events it produced.

        `causation_id` names what caused it (an event id, or a sweep), so the
        envelope links the reaction to its cause. With `once_per_cause`, the
        cause is also the idempotency key: reacting to the same event again
        (a consumer reading its topic from the beginning) changes nothing. A cause
        that runs a command on several streams names each run (`once_key`).
        Returns only what this call appended: nothing when an earlier run of the
        same cause had already answered it.
        """
        emitted: list[Message] = []
        answered: list[Message] = []

        def respond(_state, events: list[Message]) -> Message:
            # Called once per decision: a decision made again after a conflict replaces the first.
            emitted[:] = events
            answered[:] = [Empty()]
            return answered[0]

        result = await self.executor.execute(
            stream_id=stream_id,
            space_id=space_id,
            command=command,
            context=Context(self.system_actor, self.clock(), frozenset({SYSTEM_CLAIM})),
            causation=Causation(self.system_actor, correlation_id or new_id(), causation_id),
            respond=respond,
            response_type=Empty,
            key=key,
            # Kept for ever: the cause is read again on every start, however old it is.
            request_key=RequestKey(f"{self.system_actor}:{once_key or causation_id}", "system", expires=False)
            if once_per_cause
            else None,
        )
        # Answered from the record of an earlier run of the same cause: nothing was appended now.
        return list(emitted) if answered and result is answered[0] else []
