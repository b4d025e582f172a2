"""Who holds which role in each Space, as the room service's events tell it.

Moderation authorizes with this view: only hosts and co-hosts mute others or
remove people, only speakers can be muted, only participants report. It lags
the room service by the relay and consumer delay (milliseconds); a request that
carries the `room_version` it saw waits for the view to reach it
(`ModerationApi._roles`). The roles are the one membership fold every service
shares (`libs.domain.membership`).

A durable view (`libs/projection/durable.py`): each Space's roster is a row of
`moderation.room_rosters_v1` and each member entry that says something a row
of `moderation.room_members_v1`, written in the same transaction as the log
position they reflect, so a restart resumes from there. The rows are the
shared codec of the membership fold (`libs.projection.member_rows`).

- The writer keeps the Spaces it applies in a bounded cache (live ones, in
  practice), updated as it applies, and answers their roles from memory. A
  Space not cached is loaded from the rows when its next event comes. An
  ended Space leaves the cache once its end is committed; its roster row
  stays (it says the Space is over), its member rows go.
- A follower replica applies nothing, so it caches nothing: it answers from
  the rows, one indexed query per request. So does the writer for a Space it
  does not hold.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

import asyncpg

from libs.domain.membership import NOBODY, Change, Member, Roster, SpaceMembers, role_of, subject
from libs.domain.streams import is_space_stream
from libs.events.envelope import occurred_at
from libs.events.topics import ROOM_EVENTS
from libs.projection.member_rows import (
    ROSTER_NAMES,
    MemberTable,
    roster_of,
    roster_values,
)
from libs.projection.runner import ConsumedEvent
from podium.room.v1 import room_types_pb2 as rt
from services.moderation.domain.commands import Roles

UNKNOWN = Roles(actor=rt.ROLE_UNSPECIFIED, target=rt.ROLE_UNSPECIFIED, host_user_id="")


def roles_in(space: SpaceMembers, actor: str, target: str = "") -> Roles:
    """The actor's and target's roles in a Space held in memory (host_user_id '' if unknown)."""
    return Roles(
        actor=space.role_of(actor),
        target=space.role_of(target) if target else rt.ROLE_UNSPECIFIED,
        host_user_id=space.roster.host_user_id,
    )


class RoomRoles:
    name = "moderation-room-roles"
    version = 1
    topics = (ROOM_EVENTS,)
    tables = ("room_rosters_v1", "room_members_v1")

    def __init__(self, pool: asyncpg.Pool | None, schema: str = "moderation", cache_spaces: int = 10_000):
        self.pool = pool
        self.rosters = f"{schema}.room_rosters_v1"
        # A roster row's version is its Space's own stream's: events on listener shards leave it.
        columns = ("space_id", "version", *ROSTER_NAMES)
        self._upsert_roster = (
            f"INSERT INTO {self.rosters} AS r ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'${i}' for i in range(1, len(columns) + 1))}) "
            "ON CONFLICT (space_id) DO UPDATE SET version = greatest(r.version, excluded.version), "
            + ", ".join(f"{c} = excluded.{c}" for c in ROSTER_NAMES)
        )
        self.members = MemberTable(f"{schema}.room_members_v1")
        self.cache_spaces = cache_spaces
        self._spaces: OrderedDict[str, SpaceMembers] = OrderedDict()
        self._over: list[str] = []  # Spaces over in the batch being applied
        self.loaded = 0  # Spaces loaded from the rows on a miss, for tests and metrics

    # The view's writes

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        spaces = self._spaces
        # Only the Space's first event on its own stream starts it from nothing: a listener shard's
        # first event (ADR 0012) comes to a Space that may already have rows.
        missing = {
            e.envelope.space_id
            for e in events
            if e.envelope.space_id not in spaces
            and not (
                e.envelope.stream_version == 1 and is_space_stream(e.envelope.stream_id, e.envelope.space_id)
            )
        }
        if missing:
            spaces.update(await self._load(conn, missing))
        versions: dict[str, int] = {}  # the Space's own stream's version, 0 if only shards moved
        touched: set[tuple[str, str]] = set()
        cleared: set[str] = set()
        for event in events:
            envelope = event.envelope
            space_id = envelope.space_id
            change = self.fold(event)
            own = envelope.stream_version if is_space_stream(envelope.stream_id, space_id) else 0
            versions[space_id] = max(versions.get(space_id, 0), own)
            if change is not None:
                touched.add((space_id, change.user_id))
            elif subject(event.payload) is None and spaces[space_id].roster.is_over:
                cleared.add(space_id)  # an event about a Space that is over drops its entries
        await self._write(conn, versions, touched, cleared)
        self._over.extend(cleared)
        for space_id in versions:
            spaces.move_to_end(space_id)
        while len(spaces) > self.cache_spaces:
            spaces.popitem(last=False)

    def fold(self, event: ConsumedEvent) -> Change | None:
        """Folds one event into the cached Space (a Space not cached starts empty); its `Change`."""
        space_id = event.envelope.space_id
        space = self._spaces.get(space_id)
        if space is None:
            space = self._spaces[space_id] = SpaceMembers()
        return space.apply(event.payload, occurred_at(event.envelope))

    def cached(self, space_id: str) -> SpaceMembers | None:
        return self._spaces.get(space_id)

    def committed(self, events: Sequence[ConsumedEvent]) -> None:
        """After the commit: Spaces that are over leave memory (their roster rows stay)."""
        for space_id in set(self._over):
            self._spaces.pop(space_id, None)
        self._over = []

    def reset(self) -> None:
        """A transaction failed: the cache may be ahead of the rows; Spaces are loaded again."""
        self._spaces.clear()
        self._over = []

    async def _write(
        self,
        conn: asyncpg.Connection,
        versions: dict[str, int],
        touched: set[tuple[str, str]],
        cleared: set[str],
    ) -> None:
        spaces = self._spaces
        await conn.executemany(
            self._upsert_roster,
            [
                (space_id, version, *roster_values(spaces[space_id].roster))
                for space_id, version in versions.items()
            ],
        )
        await self.members.drop_spaces(conn, cleared)
        await self.members.write(conn, {(s, u): spaces[s].member(u) for s, u in touched})

    async def _load(self, conn: asyncpg.Connection, space_ids: Iterable[str]) -> dict[str, SpaceMembers]:
        """The Spaces as their rows hold them (one not in the rows starts empty)."""
        space_ids = list(space_ids)
        self.loaded += len(space_ids)
        loaded = {space_id: SpaceMembers() for space_id in space_ids}
        for row in await conn.fetch(
            f"SELECT * FROM {self.rosters} WHERE space_id = ANY($1::text[])", space_ids
        ):
            loaded[row["space_id"]].roster = roster_of(row)
        await self.members.of_spaces(conn, loaded)
        return loaded

    # Queries

    async def roles(self, space_id: str, actor: str, target: str = "") -> Roles:
        """The actor's and the target's roles in the Space; host_user_id is '' for a Space this view
        does not know. From memory for a Space the writer holds, else one indexed query."""
        space = self._spaces.get(space_id)
        if space is not None:
            return roles_in(space, actor, target)
        assert self.pool is not None
        row = await self.pool.fetchrow(
            f"""SELECT r.host_user_id, r.state, a.role AS actor, t.role AS target
                FROM {self.rosters} r
                LEFT JOIN {self.members.table} a ON a.space_id = r.space_id AND a.user_id = $2
                LEFT JOIN {self.members.table} t ON t.space_id = r.space_id AND t.user_id = $3
                WHERE r.space_id = $1""",
            space_id,
            actor,
            target,
        )
        if row is None:
            return UNKNOWN
        roster = Roster(host_user_id=row["host_user_id"], state=row["state"])
        return Roles(
            actor=_role(roster, row["actor"]),
            target=_role(roster, row["target"]) if target else rt.ROLE_UNSPECIFIED,
            host_user_id=row["host_user_id"],
        )

    async def room_bars(self, space_id: str, user_id: str) -> bool:
        """Whether the room has barred the user from the Space, as far as this view has read: it
        took them out (ParticipantLeft, REMOVED) or recorded ParticipantBarred (ADR 0014). Only the
        room's events say so; moderation's own ParticipantRemoved is `barred`, not this."""
        space = self._spaces.get(space_id)
        if space is not None:
            return space.member(user_id).removed
        assert self.pool is not None
        return bool(
            await self.pool.fetchval(
                f"SELECT removed FROM {self.members.table} WHERE space_id = $1 AND user_id = $2",
                space_id,
                user_id,
            )
        )


def _role(roster: Roster, role: int | None) -> int:
    return role_of(roster, Member(role=role) if role else NOBODY)
