"""What the room service does about presence's events: a timed-out connection is a leave.

`ParticipantTimedOut` becomes the room's own TimeOutParticipant command, so
the room's events say `ParticipantLeft(TIMED_OUT)` (with `mass_time_out` when
presence's brake held it first: then a host leaving this way does not make the
Space abandoned on evidence). A durable view with no
rows of its own: its log position is stored as each batch is acted on, so a
restart goes on from there instead of issuing every past timeout again. Each
timeout is acted on once, keyed by its event id, so one applied again after a
crash does not take out a user who has since come back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

from libs.domain.errors import DomainError
from libs.events.topics import PRESENCE_EVENTS
from libs.projection.runner import ConsumedEvent
from podium.presence.v1 import presence_events_pb2 as pev
from services.room.application.space_commands import SpaceCommands
from services.room.domain.commands import TimeOutParticipant

log = logging.getLogger(__name__)


class PresenceReactions:
    name = "room-presence-reactions"
    version = 1
    topics = (PRESENCE_EVENTS,)
    tables = ()

    def __init__(self, commands: SpaceCommands):
        self.commands = commands

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        for event in events:
            e = event.payload
            if not isinstance(e, pev.ParticipantTimedOut):
                continue
            try:
                await self.commands.react(
                    e.space_id,
                    TimeOutParticipant(e.space_id, e.user_id, mass_time_out=e.mass_time_out),
                    event.envelope.event_id,
                )
            except DomainError as rejected:  # a Space the room does not know, for instance
                log.info("timeout of %s in %s not applied: %s", e.user_id, e.space_id, rejected.message)
