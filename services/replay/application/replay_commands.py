"""Running replay commands on a Space's replay stream (`replay-<space_id>`), by callers or the service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from google.protobuf.empty_pb2 import Empty
from google.protobuf.message import Message

from libs.application.executor import CommandExecutor
from libs.application.issuer import CommandIssuer
from libs.events.topics import REPLAY_EVENTS
from libs.eventstore.store import EventStore
from libs.grpckit.handlers import Caller
from services.replay.domain.replay import REPLAY_DECIDER, ReplayStream

SYSTEM_ACTOR = "system:replay"


def stream_of(space_id: str) -> str:
    return f"replay-{space_id}"


class ReplayCommands:
    def __init__(self, store: EventStore, clock: Callable[[], datetime] | None = None):
        self.executor: CommandExecutor = CommandExecutor(store, REPLAY_DECIDER, REPLAY_EVENTS)
        self.issuer = CommandIssuer(self.executor, SYSTEM_ACTOR, clock)
        self.clock = self.issuer.clock

    async def by_caller(self, space_id: str, command: object, caller: Caller, method: str, request: Message):
        return await self.issuer.for_caller(
            caller,
            stream_id=stream_of(space_id),
            space_id=space_id,
            command=command,
            method=method,
            request=request,
            request_id=getattr(request, "request_id", ""),
            respond=lambda _s, _e: Empty(),
            response_type=Empty,
        )

    async def as_system(self, space_id: str, command: object, cause: str) -> list[Message]:
        return await self.issuer.as_system(
            stream_id=stream_of(space_id), space_id=space_id, command=command, causation_id=cause
        )

    async def state(self, space_id: str) -> ReplayStream:
        state, _ = await self.executor.load(stream_of(space_id))
        return state
