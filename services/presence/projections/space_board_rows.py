"""Presence's "who's here" boards in PostgreSQL: each Space's lifecycle, details, members and flags.

A durable view (`libs/projection/durable.py`), written by one presence replica at a time:

- `presence.space_boards_v2`: one row per Space, its `Roster` (lifecycle, host, co-hosts,
  speakers, counts), its own details (`libs.domain.space_details`: title, settings, times) and
  the event streams it was folded from (so a snapshot can say where each of them stands), and
  how many parts its presence is split into (ADR 0015: revision presence_0003);
- `presence.space_board_members_v2`: one row per member entry that says something (the
  membership fold's rows, `libs.projection.member_rows`);
- `presence.space_board_flags_v2`: presence's own flags, one row per user connected or talking.

Ending a Space deletes its entries and flags; its row stays, so "ended" is told apart from
"unknown" after the Space has left every replica's memory. All of it is the board's one fold
(`services.presence.domain.board.fold`), with the details' fold beside it, over the room,
moderation, presence and media topics, folded per batch from the rows the batch touches. Presence answers from memory
(`space_board.SpaceBoard`, loaded from here at start: `snapshot`) and asks here only about a
Space it does not hold (`states_of`, `details_of`). Version 2 added the details.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import asyncpg

from libs.domain import space_details as sd
from libs.domain.membership import Roster
from libs.events.envelope import occurred_at
from libs.events.topics import MEDIA_EVENTS, MODERATION_EVENTS, PRESENCE_EVENTS, ROOM_EVENTS
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
from services.presence.domain.board import Board, about, fold

DETAILS_COLUMNS = """
            title text NOT NULL,
            description text NOT NULL,
            join_policy int NOT NULL,
            scheduled_start timestamptz,
            recording_enabled boolean NOT NULL,
            started_at timestamptz,
            ended_at timestamptz,
            end_reason int NOT NULL"""
DETAILS_NAMES = sd.SpaceDetails._fields
_COLUMNS = ("space_id", *ROSTER_NAMES, *DETAILS_NAMES, *STREAM_NAMES, "presence_parts")


@dataclass
class StoredBoard:
    """One Space's board as its rows hold it, and the streams it was folded from."""

    board: Board = field(default_factory=Board)
    details: sd.SpaceDetails = sd.EMPTY
    streams: set[Stream] = field(default_factory=set)


class SpaceBoardRows:
    name = "presence-space-board"
    version = 2
    topics = (ROOM_EVENTS, MODERATION_EVENTS, PRESENCE_EVENTS, MEDIA_EVENTS)
    tables = ("space_boards_v2", "space_board_members_v2", "space_board_flags_v2")

    def __init__(self, pool: asyncpg.Pool | None, schema: str = "presence"):
        self.pool = pool
        self.spaces = f"{schema}.space_boards_v2"
        self.members = MemberTable(f"{schema}.space_board_members_v2")
        self.flags = f"{schema}.space_board_flags_v2"

    # The view's writes

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        stored, users = await fold_batch(conn, events, self._load, _fold, about)
        if not stored:
            return
        await conn.executemany(
            upsert(self.spaces, _COLUMNS),
            [
                (
                    space_id,
                    *roster_values(s.board.space.roster),
                    *s.details,
                    *stream_values(s.streams),
                    s.board.parts,
                )
                for space_id, s in stored.items()
            ],
        )
        over = await self.members.store(conn, {s: b.board.space for s, b in stored.items()}, users)
        if over:
            await conn.execute(f"DELETE FROM {self.flags} WHERE space_id = ANY($1::text[])", list(over))
        await self._write_flags(conn, [(s, u, stored[s].board) for s, u in users if s not in over])

    async def _write_flags(self, conn: asyncpg.Connection, touched: list[tuple[str, str, Board]]) -> None:
        """Each touched user's flags as they are now: a user neither connected nor talking has no row."""
        flags = [(s, u, u in b.connected, u in b.speaking) for s, u, b in touched]
        cleared = [(s, u) for s, u, connected, speaking in flags if not (connected or speaking)]
        if cleared:
            await conn.execute(
                f"DELETE FROM {self.flags} f USING unnest($1::text[], $2::text[]) AS d(space_id, user_id) "
                "WHERE f.space_id = d.space_id AND f.user_id = d.user_id",
                [s for s, _ in cleared],
                [u for _, u in cleared],
            )
        kept = [f for f in flags if f[2] or f[3]]
        if kept:
            await conn.execute(
                f"""INSERT INTO {self.flags} (space_id, user_id, connected, speaking)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::boolean[])
                    ON CONFLICT (space_id, user_id) DO UPDATE
                    SET connected = excluded.connected, speaking = excluded.speaking""",
                [f[0] for f in kept],
                [f[1] for f in kept],
                [f[2] for f in kept],
                [f[3] for f in kept],
            )

    async def _load(
        self, conn: asyncpg.Connection, ids: set[str], users: set[tuple[str, str]]
    ) -> dict[str, StoredBoard]:
        """The batch's Spaces as stored, with the entries and flags of the users its events name."""
        rows = await conn.fetch(f"SELECT * FROM {self.spaces} WHERE space_id = ANY($1::text[])", list(ids))
        stored = {space_id: StoredBoard() for space_id in ids}
        for row in rows:
            stored[row["space_id"]] = _stored(row)
        await self.members.of_users(conn, {s: b.board.space for s, b in stored.items()}, users)
        if users:
            flags = await conn.fetch(
                f"""SELECT f.* FROM unnest($1::text[], $2::text[]) AS q(space_id, user_id)
                    JOIN {self.flags} f ON f.space_id = q.space_id AND f.user_id = q.user_id""",
                [s for s, _ in users],
                [u for _, u in users],
            )
            _fill_flags(stored, flags)
        return stored

    # Reads

    async def snapshot(self, conn: asyncpg.Connection) -> dict[str, StoredBoard]:
        """Every Space not over, with its entries and flags (call inside the snapshot's transaction)."""
        stored = {
            row["space_id"]: _stored(row)
            for row in await conn.fetch(f"SELECT * FROM {self.spaces} WHERE {OPEN}")
        }
        await self.members.of_open_spaces(conn, {s: b.board.space for s, b in stored.items()}, self.spaces)
        flags = await conn.fetch(
            f"SELECT f.* FROM {self.flags} f JOIN {self.spaces} s USING (space_id) WHERE s.{OPEN}"
        )
        _fill_flags(stored, flags)
        return stored

    async def states_of(self, space_ids: Iterable[str]) -> dict[str, int]:
        """The stored lifecycle state (podium.room.v1.SpaceState) of each Space the rows know."""
        space_ids = list(space_ids)
        if self.pool is None or not space_ids:
            return {}
        rows = await self.pool.fetch(
            f"SELECT space_id, state FROM {self.spaces} WHERE space_id = ANY($1::text[])", space_ids
        )
        return {r["space_id"]: r["state"] for r in rows}

    async def details_of(self, space_id: str) -> tuple[Roster, sd.SpaceDetails] | None:
        """The Space's roster and details as stored, or None for a Space the rows do not know."""
        if self.pool is None:
            return None
        row = await self.pool.fetchrow(f"SELECT * FROM {self.spaces} WHERE space_id = $1", space_id)
        return None if row is None else (roster_of(row), _details(row))


def _fold(stored: StoredBoard, event: ConsumedEvent) -> None:
    at = occurred_at(event.envelope)
    fold(stored.board, event.payload, at)
    stored.details = sd.evolve(stored.details, event.payload, at)


def _stored(row) -> StoredBoard:
    board = Board(parts=row["presence_parts"])
    board.space.roster = roster_of(row)
    return StoredBoard(board, _details(row), streams_of(row))


def _details(row) -> sd.SpaceDetails:
    return sd.SpaceDetails(*(row[name] for name in DETAILS_NAMES))


def _fill_flags(stored: dict[str, StoredBoard], rows) -> None:
    for row in rows:
        space = stored.get(row["space_id"])
        if space is None:
            continue
        if row["connected"]:
            space.board.connected.add(row["user_id"])
        if row["speaking"]:
            space.board.speaking.add(row["user_id"])
