"""The one membership fold (`libs.domain.membership`) as PostgreSQL rows, for the views that store it.

Moderation's roles, the media relay's admission view and presence's board each keep the fold in
their own schema, beside columns of their own. How a `Roster` and the member entries become rows,
and back, is written here once:

- a Space's row (written with `upsert`) holds its `Roster` in the columns `ROSTER_NAMES`
  (`roster_values`, `roster_of`) and, for a view an in-memory cache is loaded from, the event
  streams it was folded from in `STREAM_NAMES` (`stream_values`, `streams_of`): the cache's
  snapshot says where each stands;
- `MemberTable` is a table of the entries that say something (`SpaceMembers.entries`), one row
  per (Space, user; its service's migrations create it): `write` stores changed entries (NOBODY
  deletes the row),
  `drop_spaces` deletes every entry of Spaces that are over, and `of_users` / `of_spaces` /
  `of_open_spaces` read them back into `SpaceMembers`.

`fold_batch` is how such a view applies a batch: it loads the Spaces the batch is about and the
entries of the users its events name, and folds each event in; `MemberTable.store` then writes
what changed.

`OPEN` is the SQL condition on a Space's `state` column for a Space not over (what a cache holds).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

import asyncpg
from google.protobuf.message import Message

from libs.domain.membership import NOBODY, OVER, Member, Roster, SpaceMembers, subject
from libs.projection.runner import ConsumedEvent
from libs.projection.tracking import Stream

OPEN = f"state NOT IN ({', '.join(str(state) for state in sorted(OVER))})"

ROSTER_NAMES = ("host_user_id", "state", "co_hosts", "speakers", "present", "listeners")

STREAM_NAMES = ("stream_producers", "stream_ids")


def upsert(table: str, columns: Sequence[str]) -> str:
    """An INSERT of one row of `columns` (the key first) that overwrites the row with that key."""
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join(f'${i}' for i in range(1, len(columns) + 1))}) "
        f"ON CONFLICT ({columns[0]}) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in columns[1:])}"
    )


def roster_values(roster: Roster) -> tuple:
    """The roster's values, in the order of `ROSTER_NAMES`."""
    return (
        roster.host_user_id,
        roster.state,
        list(roster.co_hosts),
        list(roster.speakers),
        roster.present,
        roster.listeners,
    )


def roster_of(row) -> Roster:
    """The roster a row holds (a Space never created has no space id, as the fold leaves it)."""
    return Roster(
        space_id=row["space_id"] if row["state"] else "",
        host_user_id=row["host_user_id"],
        state=row["state"],
        co_hosts=tuple(row["co_hosts"]),
        speakers=tuple(row["speakers"]),
        present=row["present"],
        listeners=row["listeners"],
    )


def stream_values(streams: Iterable[Stream]) -> tuple[list[str], list[str]]:
    """The streams' values, in the order of `STREAM_NAMES`."""
    ordered = sorted(streams)
    return [p for p, _ in ordered], [s for _, s in ordered]


def streams_of(row) -> set[Stream]:
    return set(zip(row["stream_producers"], row["stream_ids"], strict=True))


class StoredSpace(Protocol):
    """A view's value for one Space, as its rows hold it: it notes the streams folded into it."""

    streams: set[Stream]


S = TypeVar("S", bound=StoredSpace)
Users = set[tuple[str, str]]  # (Space id, user id)


async def fold_batch(
    conn: asyncpg.Connection,
    events: Sequence[ConsumedEvent],
    load: Callable[[asyncpg.Connection, set[str], Users], Awaitable[dict[str, S]]],
    fold: Callable[[S, ConsumedEvent], object],
    about: Callable[[Message], str | None] = subject,
) -> tuple[dict[str, S], Users]:
    """The batch's Spaces, loaded (`load`: with the entries of the users the events are `about`)
    and with each event folded in (`fold`); and those (Space, user) pairs, whose entries it may
    have changed. Events that name no Space (blocks are keyed by host) change nothing here."""
    ids = {e.envelope.space_id for e in events if e.envelope.space_id}
    if not ids:
        return {}, set()
    users = {(e.envelope.space_id, u) for e in events if (u := about(e.payload)) is not None}
    spaces = await load(conn, ids, users)
    for event in events:
        space = spaces.get(event.envelope.space_id)
        if space is not None:
            space.streams.add((event.envelope.producer, event.envelope.stream_id))
            fold(space, event)
    return spaces, users


def member_of(row) -> Member:
    return Member(
        role=row["role"],
        joined_at=row["joined_at"],
        muted=row["muted"],
        mute_kind=row["mute_kind"],
        hand_raised_at=row["hand_raised_at"],
        removed=row["removed"],
        barred=row["barred"],
    )


class MemberTable:
    """One row per member entry that says something: `table` is schema-qualified (`{s}` in `ddl`)."""

    def __init__(self, table: str):
        self.table = table

    # Writes (inside the view's transaction)

    async def write(self, conn: asyncpg.Connection, entries: Mapping[tuple[str, str], Member]) -> None:
        """Stores each (Space, user)'s entry as it is now: an entry back to NOBODY loses its row."""
        gone = [key for key, member in entries.items() if member == NOBODY]
        if gone:
            await conn.execute(
                f"DELETE FROM {self.table} m USING unnest($1::text[], $2::text[]) AS d(space_id, user_id) "
                "WHERE m.space_id = d.space_id AND m.user_id = d.user_id",
                [s for s, _ in gone],
                [u for _, u in gone],
            )
        kept = [(s, u, m) for (s, u), m in entries.items() if m != NOBODY]
        if not kept:
            return
        await conn.execute(
            f"""INSERT INTO {self.table} (space_id, user_id, role, joined_at, muted, mute_kind,
                    hand_raised_at, removed, barred)
                SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[],
                    $5::boolean[], $6::int[], $7::timestamptz[], $8::boolean[], $9::boolean[])
                ON CONFLICT (space_id, user_id) DO UPDATE SET role = excluded.role,
                    joined_at = excluded.joined_at, muted = excluded.muted,
                    mute_kind = excluded.mute_kind, hand_raised_at = excluded.hand_raised_at,
                    removed = excluded.removed, barred = excluded.barred""",
            [s for s, _, _ in kept],
            [u for _, u, _ in kept],
            [m.role for _, _, m in kept],
            [m.joined_at for _, _, m in kept],
            [m.muted for _, _, m in kept],
            [m.mute_kind for _, _, m in kept],
            [m.hand_raised_at for _, _, m in kept],
            [m.removed for _, _, m in kept],
            [m.barred for _, _, m in kept],
        )

    async def store(
        self, conn: asyncpg.Connection, spaces: Mapping[str, SpaceMembers], users: Users
    ) -> set[str]:
        """After a batch: the entries of Spaces now over go, and these users' entries are stored as
        they are now. Returns the Spaces over."""
        over = {space_id for space_id, members in spaces.items() if members.roster.is_over}
        await self.drop_spaces(conn, over)
        await self.write(conn, {(s, u): spaces[s].member(u) for s, u in users if s not in over})
        return over

    async def drop_spaces(self, conn: asyncpg.Connection, space_ids: Iterable[str]) -> None:
        """Every entry of these Spaces goes (they are over: the fold says nobody is in)."""
        space_ids = list(space_ids)
        if space_ids:
            await conn.execute(f"DELETE FROM {self.table} WHERE space_id = ANY($1::text[])", space_ids)

    # Reads, into `SpaceMembers` the caller holds (a row of a Space not in `spaces` is skipped)

    async def of_users(
        self, conn: asyncpg.Connection, spaces: Mapping[str, SpaceMembers], users: Iterable[tuple[str, str]]
    ) -> None:
        """The entries of these (Space, user) pairs."""
        users = list(users)
        if not users:
            return
        rows = await conn.fetch(
            f"""SELECT m.* FROM unnest($1::text[], $2::text[]) AS q(space_id, user_id)
                JOIN {self.table} m ON m.space_id = q.space_id AND m.user_id = q.user_id""",
            [s for s, _ in users],
            [u for _, u in users],
        )
        _fill(spaces, rows)

    async def of_spaces(self, conn: asyncpg.Connection, spaces: Mapping[str, SpaceMembers]) -> None:
        """Every entry of these Spaces."""
        if spaces:
            rows = await conn.fetch(
                f"SELECT * FROM {self.table} WHERE space_id = ANY($1::text[])", list(spaces)
            )
            _fill(spaces, rows)

    async def of_open_spaces(
        self, conn: asyncpg.Connection, spaces: Mapping[str, SpaceMembers], space_table: str
    ) -> None:
        """Every entry of the Spaces `space_table` (its rows' `state`) says are not over."""
        rows = await conn.fetch(
            f"SELECT m.* FROM {self.table} m JOIN {space_table} s USING (space_id) WHERE s.{OPEN}"
        )
        _fill(spaces, rows)


def _fill(spaces: Mapping[str, SpaceMembers], rows) -> None:
    for row in rows:
        space = spaces.get(row["space_id"])
        if space is not None:
            space.entries[row["user_id"]] = member_of(row)
