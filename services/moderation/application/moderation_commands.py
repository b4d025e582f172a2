"""Running moderation commands: on a Space's stream, or on a host's block list."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from google.protobuf.message import Message

from libs.application.executor import CommandExecutor
from libs.application.issuer import CommandIssuer
from libs.events.topics import MODERATION_EVENTS
from libs.eventstore.store import EventStore, RecordedEvent
from libs.grpckit.handlers import Caller
from services.moderation.domain.commands import AutoMute
from services.moderation.domain.decide import BLOCKS_DECIDER, space_decider
from services.moderation.domain.limits import ModerationLimits
from services.moderation.domain.state import BlockList, SpaceModeration

R = TypeVar("R", bound=Message)

SYSTEM_ACTOR = "system:moderation"


def space_stream(space_id: str) -> str:
    return f"space-{space_id}"


def blocks_stream(host_user_id: str) -> str:
    return f"blocks-{host_user_id}"


class ModerationCommands:
    def __init__(
        self, store: EventStore, limits: ModerationLimits, clock: Callable[[], datetime] | None = None
    ):
        self.store = store
        self.spaces: CommandExecutor = CommandExecutor(store, space_decider(limits), MODERATION_EVENTS)
        self.blocks: CommandExecutor = CommandExecutor(store, BLOCKS_DECIDER, MODERATION_EVENTS)
        self.space_issuer = CommandIssuer(self.spaces, SYSTEM_ACTOR, clock)
        self.block_issuer = CommandIssuer(self.blocks, SYSTEM_ACTOR, clock)
        self.clock = self.space_issuer.clock

    async def on_space(
        self, space_id: str, command: object, caller: Caller, request: Message, method: str,
        respond: Callable[[SpaceModeration, list[Message]], R], response_type: type[R],
    ) -> R:  # fmt: skip
        return await self.space_issuer.for_caller(
            caller,
            stream_id=space_stream(space_id),
            space_id=space_id,
            command=command,
            method=method,
            request=request,
            request_id=getattr(request, "request_id", ""),
            respond=respond,
            response_type=response_type,
        )

    async def on_blocks(
        self, command: object, caller: Caller, request: Message, method: str, response_type: type[R]
    ) -> R:
        # Blocks have no Space: the host's records are keyed by the host's user id.
        return await self.block_issuer.for_caller(
            caller,
            stream_id=blocks_stream(caller.user_id),
            space_id="",
            key=caller.user_id,
            command=command,
            method=method,
            request=request,
            request_id=getattr(request, "request_id", ""),
            respond=lambda _state, _events: response_type(),
            response_type=response_type,
        )

    async def auto_mute(self, space_id: str, command: AutoMute, cause_event_id: str) -> list[Message]:
        """Issued by the report-window stream; once per triggering report event."""
        return await self.space_issuer.as_system(
            stream_id=space_stream(space_id),
            space_id=space_id,
            command=command,
            causation_id=cause_event_id,
            once_per_cause=True,
        )

    async def space_state(self, space_id: str) -> SpaceModeration:
        state, _ = await self.spaces.load(space_stream(space_id))
        return state

    async def block_list(self, host_user_id: str) -> BlockList:
        state, _ = await self.blocks.load(blocks_stream(host_user_id))
        return state

    async def space_log(self, space_id: str) -> list[RecordedEvent]:
        return await self.store.load(space_stream(space_id))
