"""The room's reactions to its own topic, in one durable view: the evictor and the release of what
a listener-shard leaver held.

Both read every room event to act on a few, so they share one consumer and one writer's lock
session (each durable view holds a connection of its own for its lock, and a room process already
keeps several). The view keeps the evictor's name, so the position it stored carries over: a
restart goes on from there, and nothing already acted on is read again.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from libs.events.topics import ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from services.room.projections.leaver_release import LeaverRelease
from services.room.projections.policy_evictor import PolicyEvictor


class OwnTopicReactions:
    name = PolicyEvictor.name
    version = PolicyEvictor.version
    topics = (ROOM_EVENTS,)
    tables = ()
    live_batch_ms = PolicyEvictor.live_batch_ms

    def __init__(self, evictor: PolicyEvictor, release: LeaverRelease):
        self.evictor = evictor
        self.release = release

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        await self.release.apply(conn, events)
        await self.evictor.apply(conn, events)
