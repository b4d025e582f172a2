"""The relay's admission view in PostgreSQL: each Space's media state and its members' entries.

A durable view (`libs/projection/durable.py`), written by one relay replica at a time:

- `media_relay.space_media_v1`: one row per Space, its `Roster` (lifecycle, host, co-hosts,
  speakers, counts), whether its audio is recorded, and the event streams it was folded from
  (so a snapshot can say where each of them stands);
- `media_relay.space_media_members_v1`: one row per member entry that says something (the
  entries of `libs.domain.membership.SpaceMembers`), for Spaces that are not over. Ending a
  Space deletes its entries; its row stays, so "ended" is told apart from "unknown".

Both are the one membership fold over the room and moderation topics, folded per batch from the
rows the batch touches, stored the way every view stores that fold (`libs.projection.member_rows`). The relay does not read them per frame: every replica keeps the live
Spaces in memory (`space_media.SpaceMediaView`), loaded from here at start (`snapshot`), and
asks here only about a Space it does not hold (`state_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from libs.domain.membership import SpaceMembers
from libs.events.envelope import occurred_at
from libs.events.topics import MODERATION_EVENTS, ROOM_EVENTS
from libs.projection.member_rows import (
    OPEN,
    ROSTER_NAMES,
    STREAM_NAMES,
    MemberTable,
    fold_batch,
    roster_of,
    roster_values,
    stream_values,
    streams_of,
    upsert,
)
from libs.projection.runner import ConsumedEvent
from libs.projection.tracking import Stream
from services.media_relay.domain.admission import recording_after


@dataclass
class StoredSpace:
    """One Space as its rows hold it."""

    members: SpaceMembers
    recording: bool = False
    streams: set[Stream] = field(default_factory=set)


class SpaceMediaRows:
    name = "media-relay-spaces"
    version = 1
    topics = (ROOM_EVENTS, MODERATION_EVENTS)
    tables = ("space_media_v1", "space_media_members_v1")

    def __init__(self, pool: asyncpg.Pool | None, schema: str = "media_relay"):
        self.pool = pool
        self.spaces = f"{schema}.space_media_v1"
        self.members = MemberTable(f"{schema}.space_media_members_v1")

    # The view's writes

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        spaces, users = await fold_batch(conn, events, self._load, _fold)
        if not spaces:
            return
        await conn.executemany(
            upsert(self.spaces, ("space_id", *ROSTER_NAMES, "recording", *STREAM_NAMES)),
            [_space_row(space_id, space) for space_id, space in spaces.items()],
        )
        await self.members.store(conn, {s: space.members for s, space in spaces.items()}, users)

    async def _load(
        self, conn: asyncpg.Connection, ids: set[str], users: set[tuple[str, str]]
    ) -> dict[str, StoredSpace]:
        """The batch's Spaces as stored, with the entries of the users its events are about."""
        rows = await conn.fetch(f"SELECT * FROM {self.spaces} WHERE space_id = ANY($1::text[])", list(ids))
        spaces = {space_id: StoredSpace(SpaceMembers()) for space_id in ids}
        for row in rows:
            spaces[row["space_id"]] = _stored(row)
        await self.members.of_users(conn, {s: space.members for s, space in spaces.items()}, users)
        return spaces

    # Reads

    async def snapshot(self, conn: asyncpg.Connection) -> dict[str, StoredSpace]:
        """Every Space not over, with all its entries (call inside the snapshot's transaction)."""
        spaces = {
            row["space_id"]: _stored(row)
            for row in await conn.fetch(f"SELECT * FROM {self.spaces} WHERE {OPEN}")
        }
        await self.members.of_open_spaces(
            conn, {s: space.members for s, space in spaces.items()}, self.spaces
        )
        return spaces

    async def state_of(self, space_id: str) -> int | None:
        """The Space's lifecycle state as stored (podium.room.v1.SpaceState), None if unknown."""
        if self.pool is None:
            return None
        return await self.pool.fetchval(f"SELECT state FROM {self.spaces} WHERE space_id = $1", space_id)


def _fold(space: StoredSpace, event: ConsumedEvent) -> None:
    space.recording = recording_after(space.recording, event.payload)
    space.members.apply(event.payload, occurred_at(event.envelope))


def _space_row(space_id: str, space: StoredSpace) -> tuple:
    return (space_id, *roster_values(space.members.roster), space.recording, *stream_values(space.streams))


def _stored(row) -> StoredSpace:
    members = SpaceMembers()
    members.roster = roster_of(row)
    return StoredSpace(members, row["recording"], streams_of(row))
