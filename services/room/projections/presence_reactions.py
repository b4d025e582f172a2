"""What the room service does about presence's events: a timed-out connection is a leave.

`ParticipantTimedOut` becomes the room's own TimeOutParticipant command, so
the room's events say `ParticipantLeft(TIMED_OUT)`. Each timeout is acted on
once, keyed by its event id: reading the presence topic again from the
beginning (every start) does not take out a user who has since come back.
"""

from __future__ import annotations

import logging

from libs.domain.errors import DomainError
from libs.events.topics import PRESENCE_EVENTS
from libs.projection.runner import ConsumedEvent
from podium.presence.v1 import presence_events_pb2 as pev
from services.room.application.space_commands import SpaceCommands
from services.room.domain.commands import TimeOutParticipant

log = logging.getLogger(__name__)


class PresenceReactions:
    name = "room-presence-reactions"
    topics = (PRESENCE_EVENTS,)

    def __init__(self, commands: SpaceCommands):
        self.commands = commands

    async def apply(self, event: ConsumedEvent) -> None:
        e = event.payload
        if not isinstance(e, pev.ParticipantTimedOut):
            return
        try:
            await self.commands.react(
                e.space_id, TimeOutParticipant(e.space_id, e.user_id), event.envelope.event_id
            )
        except DomainError as rejected:  # a Space the room does not know, for instance
            log.info("timeout of %s in %s not applied: %s", e.user_id, e.space_id, rejected.message)
