"""Each Space's events from the room, moderation and media topics, for time travel and timelines.

A durable view (`libs/projection/durable.py`): every event about a Space is a
row of `replay.space_history_v1` (its time, its topic, its type and payload),
written in the same transaction as the log position it reflects, so a restart
resumes. It holds nothing in memory: a Space's history, live or ended, is read
from PostgreSQL when asked for.

`events(space_id, until)` returns the Space's events in the order
`space_at.merge_by_time` gives them (by occurred-at; on equal times room, then
moderation, then media; each topic in log order), read in one index range scan
(the table's key is that order), and only up to `until`: GetSpaceStateAt folds
what happened before its moment, a timeline what happened before the end.
Folding them is the pure `space_at` / `timeline`. Blocks (moderation records
keyed by host, not Space) are not about a Space and are skipped.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

import asyncpg
from google.protobuf.message import Message

from libs.events.envelope import occurred_at
from libs.events.registry import message_class
from libs.events.topics import MEDIA_EVENTS, MODERATION_EVENTS, ROOM_EVENTS
from libs.projection.runner import ConsumedEvent

TOPIC_ORDER = (ROOM_EVENTS.name, MODERATION_EVENTS.name, MEDIA_EVENTS.name)
_RANK = {name: rank for rank, name in enumerate(TOPIC_ORDER)}


class SpaceHistory:
    name = "replay-space-history"
    version = 1
    topics = (ROOM_EVENTS, MODERATION_EVENTS, MEDIA_EVENTS)
    tables = ("space_history_v1",)

    def __init__(self, pool: asyncpg.Pool, schema: str = "replay"):
        self.pool = pool
        self.table = f"{schema}.space_history_v1"

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        rows = [
            (
                e.envelope.space_id,
                occurred_at(e.envelope),
                _RANK[e.topic],
                e.envelope.event_type,
                e.envelope.payload.value,
            )
            for e in events
            if e.envelope.space_id
        ]
        if not rows:
            return
        # In the order given, so `seq` follows the log.
        await conn.execute(
            f"""INSERT INTO {self.table} (space_id, occurred_at, topic, event_type, payload)
                SELECT space_id, at, topic, event_type, payload
                FROM unnest($1::text[], $2::timestamptz[], $3::smallint[], $4::text[], $5::bytea[])
                     WITH ORDINALITY AS r(space_id, at, topic, event_type, payload, n)
                ORDER BY n""",
            *(list(column) for column in zip(*rows, strict=True)),
        )

    async def known(self, space_id: str) -> bool:
        """Whether the room has told of the Space."""
        return await self.pool.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {self.table} WHERE space_id = $1 AND topic = 0)", space_id
        )

    async def events(self, space_id: str, until: datetime | None = None) -> list[tuple[Message, datetime]]:
        """The Space's events that occurred at or before `until` (all, without it), in time order."""
        rows = await self.pool.fetch(
            f"""SELECT occurred_at, event_type, payload FROM {self.table}
                WHERE space_id = $1 AND occurred_at <= coalesce($2::timestamptz, 'infinity')
                ORDER BY occurred_at, topic, seq""",
            space_id,
            until,
        )
        return [(_decode(r["event_type"], r["payload"]), r["occurred_at"]) for r in rows]


@functools.lru_cache(maxsize=256)
def _payload_class(event_type: str) -> type[Message]:
    return message_class(event_type)


def _decode(event_type: str, payload: bytes) -> Message:
    return _payload_class(event_type).FromString(payload)
