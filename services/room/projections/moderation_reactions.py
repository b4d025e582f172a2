"""What the room service takes from moderation's events, and does about them.

- `ParticipantRemoved`: the user is barred from the Space. The room takes them
  out if they are in (`ParticipantLeft(REMOVED)`), and records the bar where
  joins are decided if they are not (`ParticipantBarred`, ADR 0014): a
  RemoveParticipant command of its own. Moderation answers the removal once
  its view of the room shows the bar, so no join after that answer gets in.
- `UserBlocked` / `UserUnblocked`: who has blocked whom, so JoinSpace can
  refuse a user blocked by the Space's host or one of its co-hosts.

A durable view: the bars and blocks are rows (`room.barred_v1`,
`room.blocks_v1`) written with the log position they reflect, so a restart
resumes after the last event applied instead of reading moderation's whole
history and re-issuing every past removal. Reactions are commands, and
commands are idempotent per cause: an event applied again after a crash
between the command and the commit changes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg

from libs.application.batched_lookup import BatchedLookup
from libs.domain.errors import DomainError
from libs.events.envelope import occurred_at
from libs.events.topics import MODERATION_EVENTS
from libs.projection.runner import ConsumedEvent
from libs.telemetry.metrics import observe_eviction
from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.room.v1 import room_events_pb2 as ev
from services.room.application.space_commands import SpaceCommands
from services.room.domain.commands import RemoveParticipant

log = logging.getLogger(__name__)


class ModerationReactions:
    name = "room-moderation-reactions"
    version = 1
    topics = (MODERATION_EVENTS,)
    tables = ("barred_v1", "blocks_v1")

    def __init__(self, pool: asyncpg.Pool, commands: SpaceCommands, schema: str = "room"):
        self.pool = pool
        self.commands = commands
        self.barred_table = f"{schema}.barred_v1"
        self.blocks_table = f"{schema}.blocks_v1"
        self._bars: BatchedLookup[tuple[str, str], tuple[bool, frozenset[str]]] = BatchedLookup(
            self._bars_of, (False, frozenset())
        )

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        removals: list[ConsumedEvent] = []
        for event in events:
            e = event.payload
            if isinstance(e, mev.ParticipantRemoved):
                await conn.execute(
                    f"INSERT INTO {self.barred_table} VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    e.space_id,
                    e.user_id,
                )
                removals.append(event)
            elif isinstance(e, mev.UserBlocked):
                await conn.execute(
                    f"INSERT INTO {self.blocks_table} VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    e.user_id,
                    e.host_user_id,
                )
            elif isinstance(e, mev.UserUnblocked):
                await conn.execute(
                    f"DELETE FROM {self.blocks_table} WHERE user_id = $1 AND host_user_id = $2",
                    e.user_id,
                    e.host_user_id,
                )
        # A batch's removals at once: each is a few appends (the user's shards, the Space's own
        # stream), and in turn a burst of bans queued behind one another for seconds while joins
        # kept the room busy. Each is idempotent per cause, and removals of different users commute.
        await asyncio.gather(*(self._remove(event) for event in removals))

    async def _remove(self, event: ConsumedEvent) -> None:
        e = event.payload
        try:
            left = await self.commands.react(
                e.space_id, RemoveParticipant(e.space_id, e.user_id), event.envelope.event_id
            )
            if any(isinstance(out, ev.ParticipantLeft) for out in left):
                observe_eviction("ban", occurred_at(event.envelope).timestamp())
        except DomainError as rejected:  # e.g. a Space the room does not know; the bar still holds
            log.warning("could not remove %s from %s: %s", e.user_id, e.space_id, rejected.message)

    async def bars(self, space_id: str, user_id: str) -> tuple[bool, frozenset[str]]:
        """For a join: is the user barred from the Space, and which hosts have blocked them. On the
        path of every join, so the joins that ask at once share one round trip."""
        return await self._bars.get((space_id, user_id))

    async def _bars_of(
        self, pairs: list[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[bool, frozenset[str]]]:
        rows = await self.pool.fetch(
            f"SELECT q.space_id, q.user_id, "
            f"EXISTS (SELECT 1 FROM {self.barred_table} b WHERE b.space_id = q.space_id AND b.user_id = q.user_id)"
            f" AS barred, ARRAY(SELECT host_user_id FROM {self.blocks_table} k WHERE k.user_id = q.user_id)"
            f" AS blockers FROM unnest($1::text[], $2::text[]) AS q(space_id, user_id)",
            [space for space, _ in pairs],
            [user for _, user in pairs],
        )
        return {(r["space_id"], r["user_id"]): (r["barred"], frozenset(r["blockers"])) for r in rows}
