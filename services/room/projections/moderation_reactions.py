"""What the room service takes from moderation's events, and does about them.

- `ParticipantRemoved`: the user is barred from the Space; if they are in it,
  the room takes them out (a RemoveParticipant command of its own, so the
  room's events say `ParticipantLeft(REMOVED)`).
- `UserBlocked` / `UserUnblocked`: who has blocked whom, so JoinSpace can
  refuse a user blocked by the Space's host or one of its co-hosts.

Reactions are commands, and commands are idempotent: reading moderation's
topic again from the beginning (every start) changes nothing twice.
"""

from __future__ import annotations

import logging

from libs.domain.errors import DomainError
from libs.events.topics import MODERATION_EVENTS
from libs.projection.runner import ConsumedEvent
from podium.moderation.v1 import moderation_events_pb2 as mev
from services.room.application.space_commands import SpaceCommands
from services.room.domain.commands import RemoveParticipant

log = logging.getLogger(__name__)


class ModerationReactions:
    name = "room-moderation-reactions"
    topics = (MODERATION_EVENTS,)

    def __init__(self, commands: SpaceCommands):
        self.commands = commands
        self.barred: dict[str, set[str]] = {}  # space -> users moderation removed
        self.blockers: dict[str, set[str]] = {}  # user -> hosts who blocked them

    async def apply(self, event: ConsumedEvent) -> None:
        e = event.payload
        if isinstance(e, mev.ParticipantRemoved):
            self.barred.setdefault(e.space_id, set()).add(e.user_id)
            try:
                await self.commands.react(
                    e.space_id, RemoveParticipant(e.space_id, e.user_id), event.envelope.event_id
                )
            except DomainError as rejected:  # e.g. a Space the room does not know; the bar still holds
                log.warning("could not remove %s from %s: %s", e.user_id, e.space_id, rejected.message)
        elif isinstance(e, mev.UserBlocked):
            self.blockers.setdefault(e.user_id, set()).add(e.host_user_id)
        elif isinstance(e, mev.UserUnblocked):
            self.blockers.get(e.user_id, set()).discard(e.host_user_id)

    def is_barred(self, space_id: str, user_id: str) -> bool:
        return user_id in self.barred.get(space_id, ())

    def blocked_by(self, user_id: str) -> frozenset[str]:
        return frozenset(self.blockers.get(user_id, ()))
