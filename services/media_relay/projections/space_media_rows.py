"""The relay's admission view in PostgreSQL: each Space's media state and its members' entries.

A durable view (`libs/projection/durable.py`), written by one relay replica at a time:

- `media_relay.space_media_v1`: one row per Space, its `Roster` (lifecycle, host, co-hosts,
  speakers, counts), whether its audio is recorded, and the event streams it was folded from
  (so a snapshot can say where each of them stands);
- `media_relay.space_media_members_v1`: one row per member entry that says something (the
  entries of `libs.domain.membership.SpaceMembers`), for Spaces that are not over. Ending a
  Space deletes its entries; its row stays, so "ended" is told apart from "unknown".

Both are the one membership fold over the room and moderation topics, folded per batch from the
rows the batch touches. The relay does not read them per frame: every replica keeps the live
Spaces in memory (`space_media.SpaceMediaView`), loaded from here at start (`snapshot`), and
asks here only about a Space it does not hold (`state_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from libs.domain.membership import NOBODY, OVER, Member, Roster, SpaceMembers, subject
from libs.events.envelope import occurred_at
from libs.events.topics import MODERATION_EVENTS, ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from libs.projection.tracking import Stream
from services.media_relay.domain.admission import recording_after

_OVER = ", ".join(str(state) for state in sorted(OVER))


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
    steps = (
        f"""
        CREATE TABLE {{s}}.space_media_v1 (
            space_id text PRIMARY KEY,
            state int NOT NULL,
            host_user_id text NOT NULL,
            co_hosts text[] NOT NULL,
            speakers text[] NOT NULL,
            present int NOT NULL,
            listeners int NOT NULL,
            recording boolean NOT NULL,
            stream_producers text[] NOT NULL,
            stream_ids text[] NOT NULL
        );
        CREATE INDEX space_media_v1_open ON {{s}}.space_media_v1 (space_id) WHERE state NOT IN ({_OVER});
        CREATE TABLE {{s}}.space_media_members_v1 (
            space_id text NOT NULL,
            user_id text NOT NULL,
            role int NOT NULL,
            joined_at timestamptz,
            muted boolean NOT NULL,
            mute_kind int NOT NULL,
            hand_raised_at timestamptz,
            removed boolean NOT NULL,
            barred boolean NOT NULL,
            PRIMARY KEY (space_id, user_id)
        );
        """,
    )

    def __init__(self, pool: asyncpg.Pool | None, schema: str = "media_relay"):
        self.pool = pool
        self.spaces = f"{schema}.space_media_v1"
        self.members = f"{schema}.space_media_members_v1"

    # The view's writes

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        ids = {e.envelope.space_id for e in events if e.envelope.space_id}
        if not ids:
            return  # blocks are keyed by host, not by Space
        users = {(e.envelope.space_id, u) for e in events if (u := subject(e.payload)) is not None}
        spaces = await self._load(conn, ids, users)
        changed: dict[tuple[str, str], Member] = {}
        for event in events:
            envelope = event.envelope
            space = spaces.get(envelope.space_id)
            if space is None:
                continue
            space.streams.add((envelope.producer, envelope.stream_id))
            space.recording = recording_after(space.recording, event.payload)
            change = space.members.apply(event.payload, occurred_at(envelope))
            if change is not None:
                changed[envelope.space_id, change.user_id] = change.after
        await conn.executemany(
            f"""INSERT INTO {self.spaces} AS s (space_id, state, host_user_id, co_hosts, speakers,
                    present, listeners, recording, stream_producers, stream_ids)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                ON CONFLICT (space_id) DO UPDATE SET state = excluded.state,
                    host_user_id = excluded.host_user_id, co_hosts = excluded.co_hosts,
                    speakers = excluded.speakers, present = excluded.present,
                    listeners = excluded.listeners, recording = excluded.recording,
                    stream_producers = excluded.stream_producers, stream_ids = excluded.stream_ids""",
            [_space_row(space_id, space) for space_id, space in spaces.items()],
        )
        over = [space_id for space_id, space in spaces.items() if space.members.roster.is_over]
        if over:
            await conn.execute(f"DELETE FROM {self.members} WHERE space_id = ANY($1::text[])", over)
        kept = [(key, m) for key, m in changed.items() if not spaces[key[0]].members.roster.is_over]
        gone = [key for key, member in kept if member == NOBODY]
        if gone:
            await conn.execute(
                f"""DELETE FROM {self.members} m USING unnest($1::text[], $2::text[]) AS q(space_id, user_id)
                    WHERE m.space_id = q.space_id AND m.user_id = q.user_id""",
                [s for s, _ in gone],
                [u for _, u in gone],
            )
        written = [(s, u, *_member_values(m)) for (s, u), m in kept if m != NOBODY]
        if not written:
            return
        await conn.executemany(
            f"""INSERT INTO {self.members} (space_id, user_id, role, joined_at, muted, mute_kind,
                    hand_raised_at, removed, barred)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (space_id, user_id) DO UPDATE SET role = excluded.role,
                    joined_at = excluded.joined_at, muted = excluded.muted, mute_kind = excluded.mute_kind,
                    hand_raised_at = excluded.hand_raised_at, removed = excluded.removed,
                    barred = excluded.barred""",
            written,
        )

    async def _load(
        self, conn: asyncpg.Connection, ids: set[str], users: set[tuple[str, str]]
    ) -> dict[str, StoredSpace]:
        """The batch's Spaces as stored, with the entries of the users its events are about."""
        rows = await conn.fetch(f"SELECT * FROM {self.spaces} WHERE space_id = ANY($1::text[])", list(ids))
        spaces = {space_id: StoredSpace(SpaceMembers()) for space_id in ids}
        for row in rows:
            spaces[row["space_id"]] = _stored(row)
        if users:
            members = await conn.fetch(
                f"""SELECT m.* FROM unnest($1::text[], $2::text[]) AS q(space_id, user_id)
                    JOIN {self.members} m ON m.space_id = q.space_id AND m.user_id = q.user_id""",
                [s for s, _ in users],
                [u for _, u in users],
            )
            for row in members:
                spaces[row["space_id"]].members.entries[row["user_id"]] = _member(row)
        return spaces

    # Reads

    async def snapshot(self, conn: asyncpg.Connection) -> dict[str, StoredSpace]:
        """Every Space not over, with all its entries (call inside the snapshot's transaction)."""
        spaces = {
            row["space_id"]: _stored(row)
            for row in await conn.fetch(f"SELECT * FROM {self.spaces} WHERE state NOT IN ({_OVER})")
        }
        for row in await conn.fetch(
            f"""SELECT m.* FROM {self.members} m JOIN {self.spaces} s USING (space_id)
                WHERE s.state NOT IN ({_OVER})"""
        ):
            spaces[row["space_id"]].members.entries[row["user_id"]] = _member(row)
        return spaces

    async def state_of(self, space_id: str) -> int | None:
        """The Space's lifecycle state as stored (podium.room.v1.SpaceState), None if unknown."""
        if self.pool is None:
            return None
        return await self.pool.fetchval(f"SELECT state FROM {self.spaces} WHERE space_id = $1", space_id)


def _space_row(space_id: str, space: StoredSpace) -> tuple:
    r = space.members.roster
    streams = sorted(space.streams)
    return (
        space_id,
        r.state,
        r.host_user_id,
        list(r.co_hosts),
        list(r.speakers),
        r.present,
        r.listeners,
        space.recording,
        [p for p, _ in streams],
        [s for _, s in streams],
    )


def _stored(row) -> StoredSpace:
    members = SpaceMembers()
    members.roster = Roster(
        space_id=row["space_id"] if row["state"] else "",
        host_user_id=row["host_user_id"],
        state=row["state"],
        co_hosts=tuple(row["co_hosts"]),
        speakers=tuple(row["speakers"]),
        present=row["present"],
        listeners=row["listeners"],
    )
    streams = set(zip(row["stream_producers"], row["stream_ids"], strict=True))
    return StoredSpace(members, row["recording"], streams)


def _member_values(m: Member) -> tuple:
    return (m.role, m.joined_at, m.muted, m.mute_kind, m.hand_raised_at, m.removed, m.barred)


def _member(row) -> Member:
    return Member(
        role=row["role"],
        joined_at=row["joined_at"],
        muted=row["muted"],
        mute_kind=row["mute_kind"],
        hand_raised_at=row["hand_raised_at"],
        removed=row["removed"],
        barred=row["barred"],
    )
