"""The evictor: when a Space turns invite-only, the listeners it no longer admits go.

A switch to JOIN_POLICY_INVITED_ONLY applies to new joins at once (JoinSpace is decided on the
Space's stream). Listeners who came in while the Space was open, with neither an invitation nor an
invite link, are taken out here, after the fact, so the room's events say
`ParticipantLeft(POLICY)`. The host, co-hosts and speakers stay; so do the invited and link guests.
Doing it here, not in UpdateSpace's own append, keeps that append small whatever the Space's size:
the evictions go at most `chunk` listeners to an append, one stream's appends in turn. With listener
shards they are decided once, and every shard takes its share at the same time: with 128 shards,
9,400 listeners are 128 appends, not 128 for each thousand of them.

Each eviction is decided again on the Space as it is when it runs: a listener invited meanwhile,
or a Space opened again, is left alone, so an event applied twice (a crash between the commands
and the commit of the view's position) changes nothing twice. A durable view with no rows of its
own: a restart goes on from its stored position. How long eviction takes is the published bound,
`podium_room_eviction_seconds{cause="policy"}` (moderation's removals: `cause="ban"`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg

from libs.domain.errors import Aborted, DomainError
from libs.events.envelope import occurred_at
from libs.events.topics import ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from libs.telemetry.metrics import observe_eviction
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.application.space_commands import SpaceCommands

log = logging.getLogger(__name__)

ATTEMPTS = 5  # of one chunk that keeps meeting a busy stream, before the batch is read again


class PolicyEvictor:
    name = "room-policy-evictor"
    version = 1
    topics = (ROOM_EVENTS,)
    tables = ()
    # It reads every room event to act on a few: once live, each transaction (its position) waits
    # this long for more. A transaction per fetch cost a fifth of the room's CPU at 2,000 joins/s
    # offered; at most ~30 a second costs little, and the wait adds only as much to the bound.
    live_batch_ms = 30

    def __init__(self, commands: SpaceCommands, chunk: int = 1000):
        self.commands = commands
        self.chunk = chunk  # listeners to an append at most: bounded transactions, few round trips
        self.evicted = 0  # for tests and the benchmark

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        causes: dict[str, ConsumedEvent] = {}  # Space id -> its latest switch to invite-only
        for event in events:
            e = event.payload
            if isinstance(e, ev.SpaceUpdated) and _turned_invite_only(e):
                causes[e.space_id] = event
        for space_id, event in causes.items():
            await self.evict(space_id, event)

    async def evict(self, space_id: str, cause: ConsumedEvent) -> int:
        """Takes out every listener the Space's policy no longer admits; how many went."""
        since = occurred_at(cause.envelope).timestamp()
        for attempt in range(ATTEMPTS):
            try:
                left = await self.commands.evict(space_id, cause.envelope.event_id, per_append=self.chunk)
                break
            except Aborted:
                # Other replicas' joins kept a stream busy. The next attempt reads the Space again,
                # so those already out are not evicted twice; a failure after the last attempt fails
                # the batch, which is then read again from the view's stored position.
                if attempt == ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
            except DomainError as rejected:  # the Space is gone, say: nobody to evict
                log.info("evictions from %s not applied: %s", space_id, rejected.message)
                return 0
        if left:
            observe_eviction("policy", since, len(left))
            log.info("evicted %d listeners from %s, now invite-only", len(left), space_id)
        self.evicted += len(left)
        return len(left)


def _turned_invite_only(e: ev.SpaceUpdated) -> bool:
    return "join_policy" in e.changed_fields and e.join_policy == types.JOIN_POLICY_INVITED_ONLY
