"""Running room commands: the one path every Space mutation takes.

The API turns a request into a domain command; this runs it on the Space's
stream through the shared executor (decide, append with the outbox, idempotent
retries) and answers with a view of the Space after the command.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from google.protobuf.message import Message

from libs.application.executor import CommandExecutor
from libs.application.issuer import CommandIssuer
from libs.events.topics import ROOM_EVENTS
from libs.eventstore.store import EventStore
from libs.grpckit.handlers import Caller
from services.room.domain.decide import make_decider
from services.room.domain.limits import RoomLimits
from services.room.domain.state import Space

R = TypeVar("R", bound=Message)

SYSTEM_ACTOR = "system:room"


def stream_of(space_id: str) -> str:
    return f"space-{space_id}"


class SpaceCommands:
    def __init__(self, store: EventStore, limits: RoomLimits, clock: Callable[[], datetime] | None = None):
        self.executor: CommandExecutor = CommandExecutor(store, make_decider(limits), ROOM_EVENTS)
        self.issuer = CommandIssuer(self.executor, SYSTEM_ACTOR, clock)
        self.limits = limits
        self.clock = self.issuer.clock

    async def run(
        self,
        space_id: str,
        command: object,
        caller: Caller,
        *,
        method: str,
        request: Message,
        request_id: str,
        respond: Callable[[Space, list[Message]], R],
        response_type: type[R],
    ) -> R:
        return await self.issuer.for_caller(
            caller,
            stream_id=stream_of(space_id),
            space_id=space_id,
            command=command,
            method=method,
            request=request,
            request_id=request_id,
            respond=respond,
            response_type=response_type,
        )

    async def run_as_system(self, space_id: str, command: object, reason: str) -> list[Message]:
        """Runs a command the service issues itself (ending an abandoned Space)."""
        return await self.issuer.as_system(
            stream_id=stream_of(space_id), space_id=space_id, command=command, causation_id=reason
        )

    async def react(self, space_id: str, command: object, cause_event_id: str) -> list[Message]:
        """Runs a command in reaction to another service's event, once per event however often it is read."""
        return await self.issuer.as_system(
            stream_id=stream_of(space_id),
            space_id=space_id,
            command=command,
            causation_id=cause_event_id,
            once_per_cause=True,
        )

    async def current(self, space_id: str) -> Space:
        """The Space as its stream says now (read-your-writes)."""
        state, _ = await self.executor.load(stream_of(space_id))
        return state
