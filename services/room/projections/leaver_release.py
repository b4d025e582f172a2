"""The room's tidy-up after listener shards (ADR 0012): what a leaver held on the Space's stream goes.

A Space with listener shards records a leave on the user's shard stream, while their voice (a
co-host's or speaker's slot) and their raised hand are on the Space's own stream. The room
releases them at once when it carries out the leave (`SpaceCommands`); this view makes that
certain. It follows the room topic, and for every leave on a shard stream whose leaver the own
stream still holds something for, it issues `ReleaseLeaver`, once per leave event, however often
the event is read: a replica that died between the leave and the release, or a promotion decided
while the leave was on its way, is tidied here. A release that finds nothing held changes
nothing, and one that finds the leaver back in changes nothing either: what they hold then is
theirs since (a re-promotion this view, lagging, must not undo). It runs in the room's one view
of its own topic, beside the evictor (`own_reactions.py`), and goes on from its stored position.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

from libs.domain.errors import DomainError
from libs.domain.streams import is_space_stream
from libs.projection.runner import ConsumedEvent
from podium.room.v1 import room_events_pb2 as ev
from services.room.application.space_commands import SpaceCommands
from services.room.domain.commands import ReleaseLeaver
from services.room.domain.state import Space

log = logging.getLogger(__name__)


class LeaverRelease:
    def __init__(self, commands: SpaceCommands):
        self.commands = commands
        self.released = 0  # events appended, for tests

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        leaves = [
            event
            for event in events
            if isinstance(event.payload, ev.ParticipantLeft)
            and not is_space_stream(event.envelope.stream_id, event.envelope.space_id)
        ]
        # Most leavers are plain listeners who hold nothing on the own stream: the Space is read once
        # a batch (one query), and only a leaver it holds something for costs a command. Skipping the
        # others is what the command would decide (nothing), minus its idempotency record: a view
        # that runs one command per leave, in turn, falls behind a storm of leaves.
        spaces: dict[str, Space] = {}
        for event in leaves:
            e, envelope = event.payload, event.envelope
            if e.space_id not in spaces:
                spaces[e.space_id] = await self.commands.current(e.space_id)
            if not spaces[e.space_id].holds_anything(e.user_id):
                continue
            try:
                released = await self.commands.react(
                    e.space_id, ReleaseLeaver(e.space_id, e.user_id, unless_back=True), envelope.event_id
                )
            except DomainError as refused:  # a Space the room does not know, for instance
                log.info("release of %s in %s not applied: %s", e.user_id, e.space_id, refused.message)
                continue
            self.released += len(released)
