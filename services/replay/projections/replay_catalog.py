"""Every Space the replay service knows of, and its replay: from the room's topic and its own.

A durable view (`libs/projection/durable.py`) in the `replay` schema, written in
the same transaction as the log position it reflects, so a restart resumes:

- `replay.replay_catalog_v1`, one row per Space: from the room's events
  (`domain.space_facts`: host, title, recorded, started, ended, and the join
  policy that governs its audience), and from the replay topic (finalized:
  duration, size, speakers, origin; deleted; listens);
- `replay.replay_audience_v1`, one row per user the Space admitted or made a
  co-host (`domain.audience`), so a reader asks about one user, not the whole
  audience.

The fold needs a Space's facts before each room event: a bounded cache holds
the Spaces being applied now (live ones, in practice); on a miss they are read
back from the rows. A Space's room events may be on several streams, its own
and its listener shards (ADR 0012), each numbered from 1 and interleaved in the
partition; the cache notes the version applied of each. A Space that is over
leaves the cache once its end is committed, so memory follows live Spaces, not
history. The rows hold no version: read-your-writes (`room_version`, the
Space's own stream's) is answered from the runner's tracking of each stream.

When a recorded Space ends, `on_recorded_end(conn, space_id, ended_at)` queues
its finalizing job in the same transaction: the job exists exactly when the
catalog has seen the end, and a restart, which resumes after it, does not queue
it again (a rebuild does, and the job's key makes that a no-op). When a replay
is deleted, `on_deleted` removes its files and its recorded chunks (again after
a crash before the commit, which changes nothing).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from libs.domain.streams import is_space_stream
from libs.events.envelope import occurred_at
from libs.events.topics import REPLAY_EVENTS, ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from podium.replay.v1 import replay_events_pb2 as rpe
from services.replay.domain import audience as aud
from services.replay.domain import space_facts as facts_
from services.replay.domain.space_facts import SpaceFacts


@dataclass(frozen=True)
class SpaceReplay:
    """A Space's row, as a reader sees it. `audience` holds the reader's own entry only
    (admitted, co-host), which is all `audience.visible` asks about."""

    space_id: str
    host_user_id: str = ""
    title: str = ""
    recording_enabled: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cancelled: bool = False
    finalized_at: datetime | None = None
    recording_started_at: datetime | None = None
    duration: timedelta = timedelta(0)
    size_bytes: int = 0
    speaker_ids: tuple[str, ...] = ()
    deleted: int = rpe.DELETION_REASON_UNSPECIFIED
    listens: int = 0
    audience: aud.Audience = aud.INITIAL

    @property
    def ready(self) -> bool:
        return self.finalized_at is not None and not self.deleted

    @property
    def recorded(self) -> bool:
        """Recording was on when the Space started (or is on now, before it starts)."""
        return self.recording_enabled


OnRecordedEnd = Callable[[asyncpg.Connection, str, datetime], Awaitable[None]]

_COLUMNS = """c.space_id, c.host_user_id, c.title, c.recording_enabled, c.started_at, c.ended_at,
    c.cancelled, c.join_policy, c.invite_only, c.finalized_at, c.recording_started_at, c.duration,
    c.size_bytes, c.speaker_ids, c.deleted, c.listens"""


class ReplayCatalog:
    name = "replay-catalog"
    version = 1
    topics = (ROOM_EVENTS, REPLAY_EVENTS)
    tables = ("replay_catalog_v1", "replay_audience_v1")

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str = "replay",
        *,
        on_recorded_end: OnRecordedEnd | None = None,
        on_deleted: Callable[[str], Awaitable[None]] | None = None,
        cache_spaces: int = 10_000,
    ):
        self.pool = pool
        self.table = f"{schema}.replay_catalog_v1"
        self.audience_table = f"{schema}.replay_audience_v1"
        self.on_recorded_end = on_recorded_end
        self.on_deleted = on_deleted
        self.cache_spaces = cache_spaces
        # Per Space: the version applied of each of its room streams since the facts were read or
        # started, and the facts.
        self._states: OrderedDict[str, tuple[dict[str, int], SpaceFacts]] = OrderedDict()
        self._over: list[str] = []  # Spaces over in the batch being applied
        self.loaded = 0  # cache misses read back from the rows, for tests and metrics

    # The view's writes

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        changed: dict[str, SpaceFacts] = {}
        audience_before: dict[str, aud.Audience] = {}
        finalized, deleted, listens = {}, {}, {}
        states = self._states
        for event in events:
            envelope, payload = event.envelope, event.payload
            space_id = envelope.space_id
            if not space_id:
                continue
            at = occurred_at(envelope)
            if event.topic == ROOM_EVENTS.name:
                stream, version = envelope.stream_id, envelope.stream_version
                cached = states.get(space_id)
                # The runner gives each stream's events once and in order: a version past the one
                # applied follows it (by more than one where the runner skipped a type this build
                # does not know); one at or below it means the cache ran ahead of a rolled-back batch.
                if cached is not None and version > cached[0].get(stream, 0):
                    versions, before = cached
                elif version == 1 and is_space_stream(stream, space_id):  # SpaceCreated: from nothing
                    versions, before = {}, facts_.INITIAL
                else:  # not in memory (evicted, a restart) or ran ahead: the rows say, even for a shard's 1
                    versions, before = {}, await self._load(conn, space_id)
                versions[stream] = version
                audience_before.setdefault(space_id, before.audience)
                after = facts_.evolve(before, payload, at)
                states[space_id] = (versions, after)
                changed[space_id] = after
                if facts_.recorded_end(before, after) and self.on_recorded_end is not None:
                    await self.on_recorded_end(conn, space_id, at)
                if after.over:
                    self._over.append(space_id)
            elif isinstance(payload, rpe.ReplayFinalized):
                finalized[space_id] = (
                    space_id,
                    at,
                    payload.recording_started_at.ToDatetime(tzinfo=UTC),
                    payload.duration.ToTimedelta(),
                    payload.size_bytes,
                    list(payload.speaker_ids),
                )
            elif isinstance(payload, rpe.ReplayDeleted):
                deleted[space_id] = payload.reason or rpe.DELETION_REASON_HOST_DELETED
                if self.on_deleted is not None:
                    await self.on_deleted(space_id)
            elif isinstance(payload, rpe.ReplayListened):
                listens[space_id] = listens.get(space_id, 0) + 1
        for space_id in changed:
            states.move_to_end(space_id)
        await self._write_facts(conn, changed, audience_before)
        await self._write_replays(conn, finalized, deleted, listens)

    def committed(self, events: Sequence[ConsumedEvent]) -> None:
        """After the commit: Spaces that are over leave memory (their rows stay), and the cache
        keeps at most `cache_spaces`, the least recently applied going first."""
        for space_id in self._over:
            self._states.pop(space_id, None)
        self._over = []
        while len(self._states) > self.cache_spaces:
            self._states.popitem(last=False)

    def reset(self) -> None:
        """A transaction failed: the cache may be ahead of the rows; Spaces are read again."""
        self._states.clear()
        self._over = []

    async def _write_facts(
        self,
        conn: asyncpg.Connection,
        changed: dict[str, SpaceFacts],
        audience_before: dict[str, aud.Audience],
    ) -> None:
        if not changed:
            return
        await conn.executemany(
            f"""INSERT INTO {self.table} AS c (space_id, host_user_id, title, recording_enabled, started_at,
                    ended_at, cancelled, join_policy, invite_only)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (space_id) DO UPDATE SET host_user_id = excluded.host_user_id,
                    title = excluded.title, recording_enabled = excluded.recording_enabled,
                    started_at = excluded.started_at, ended_at = excluded.ended_at,
                    cancelled = excluded.cancelled, join_policy = excluded.join_policy,
                    invite_only = excluded.invite_only""",
            [
                (
                    space_id,
                    f.host_user_id,
                    f.title,
                    f.recording_enabled,
                    f.started_at,
                    f.ended_at,
                    f.cancelled,
                    f.audience.join_policy,
                    f.audience.invite_only,
                )
                for space_id, f in changed.items()
            ],
        )
        upserts, removals = [], []
        for space_id, f in changed.items():
            before, after = audience_before[space_id], f.audience
            if before.admitted is after.admitted and before.co_hosts is after.co_hosts:
                continue
            for user_id in (before.admitted ^ after.admitted) | (before.co_hosts ^ after.co_hosts):
                admitted, co_host = user_id in after.admitted, user_id in after.co_hosts
                if admitted or co_host:
                    upserts.append((space_id, user_id, admitted, co_host))
                else:
                    removals.append((space_id, user_id))
        if upserts:
            await conn.executemany(
                f"INSERT INTO {self.audience_table} (space_id, user_id, admitted, co_host) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (space_id, user_id) "
                "DO UPDATE SET admitted = excluded.admitted, co_host = excluded.co_host",
                upserts,
            )
        if removals:
            await conn.executemany(
                f"DELETE FROM {self.audience_table} WHERE space_id = $1 AND user_id = $2", removals
            )

    async def _write_replays(
        self, conn: asyncpg.Connection, finalized: dict, deleted: dict, listens: dict
    ) -> None:
        """The replay topic's facts; each an upsert, since a rebuild may read them before the room's."""
        if finalized:
            await conn.executemany(
                f"""INSERT INTO {self.table} (space_id, finalized_at, recording_started_at, duration,
                        size_bytes, speaker_ids)
                    VALUES ($1, $2, $3, $4, $5, $6)
                    ON CONFLICT (space_id) DO UPDATE SET finalized_at = excluded.finalized_at,
                        recording_started_at = excluded.recording_started_at,
                        duration = excluded.duration, size_bytes = excluded.size_bytes,
                        speaker_ids = excluded.speaker_ids""",
                list(finalized.values()),
            )
        if deleted:
            await conn.executemany(
                f"INSERT INTO {self.table} (space_id, deleted) VALUES ($1, $2) "
                "ON CONFLICT (space_id) DO UPDATE SET deleted = excluded.deleted",
                list(deleted.items()),
            )
        if listens:
            await conn.executemany(
                f"INSERT INTO {self.table} AS c (space_id, listens) VALUES ($1, $2) "
                "ON CONFLICT (space_id) DO UPDATE SET listens = c.listens + excluded.listens",
                list(listens.items()),
            )

    async def _load(self, conn: asyncpg.Connection, space_id: str) -> SpaceFacts:
        """A Space's facts as its rows hold them (the cache missed: evicted, or a restart)."""
        self.loaded += 1
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM {self.table} c WHERE c.space_id = $1", space_id)
        if row is None:
            return facts_.INITIAL
        members = await conn.fetch(
            f"SELECT user_id, admitted, co_host FROM {self.audience_table} WHERE space_id = $1", space_id
        )
        audience = _audience(
            row,
            admitted=frozenset(m["user_id"] for m in members if m["admitted"]),
            co_hosts=frozenset(m["user_id"] for m in members if m["co_host"]),
        )
        return SpaceFacts(
            host_user_id=row["host_user_id"],
            title=row["title"],
            recording_enabled=row["recording_enabled"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            cancelled=row["cancelled"],
            audience=audience,
        )

    # Queries

    async def get(self, space_id: str, reader: str = "") -> SpaceReplay | None:
        """The Space (None if the room has not told of it), with `reader`'s entry in its audience."""
        row = await self.pool.fetchrow(
            f"""SELECT {_COLUMNS}, a.admitted, a.co_host FROM {self.table} c
                LEFT JOIN {self.audience_table} a ON a.space_id = c.space_id AND a.user_id = $2
                WHERE c.space_id = $1 AND c.host_user_id <> ''""",
            space_id,
            reader,
        )
        return _replay(row, reader) if row is not None else None

    async def by_host(self, host_user_id: str, reader: str = "") -> list[SpaceReplay]:
        """The host's recorded Spaces that ended and were not deleted, newest first."""
        rows = await self.pool.fetch(
            f"""SELECT {_COLUMNS}, a.admitted, a.co_host FROM {self.table} c
                LEFT JOIN {self.audience_table} a ON a.space_id = c.space_id AND a.user_id = $2
                WHERE c.host_user_id = $1 AND c.recording_enabled AND c.ended_at IS NOT NULL
                  AND c.deleted = 0
                ORDER BY c.ended_at DESC, c.space_id DESC""",
            host_user_id,
            reader,
        )
        return [_replay(row, reader) for row in rows]

    async def expired(self, now: datetime, retention: timedelta) -> list[SpaceReplay]:
        """Finalized replays, not deleted, older than the retention."""
        rows = await self.pool.fetch(
            f"""SELECT {_COLUMNS}, NULL AS admitted, NULL AS co_host FROM {self.table} c
                WHERE c.finalized_at IS NOT NULL AND c.deleted = 0 AND c.finalized_at <= $1
                ORDER BY c.finalized_at""",
            now - retention,
        )
        return [_replay(row, "") for row in rows]


def _audience(row, *, admitted: frozenset[str], co_hosts: frozenset[str]) -> aud.Audience:
    return aud.Audience(
        host_user_id=row["host_user_id"],
        join_policy=row["join_policy"] or aud.INITIAL.join_policy,
        invite_only=row["invite_only"],
        started=row["started_at"] is not None,
        co_hosts=co_hosts,
        admitted=admitted,
    )


def _replay(row, reader: str) -> SpaceReplay:
    mine = frozenset({reader})
    audience = _audience(
        row,
        admitted=mine if row["admitted"] else frozenset(),
        co_hosts=mine if row["co_host"] else frozenset(),
    )
    return SpaceReplay(
        space_id=row["space_id"],
        host_user_id=row["host_user_id"],
        title=row["title"],
        recording_enabled=row["recording_enabled"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        cancelled=row["cancelled"],
        finalized_at=row["finalized_at"],
        recording_started_at=row["recording_started_at"],
        duration=row["duration"],
        size_bytes=row["size_bytes"],
        speaker_ids=tuple(row["speaker_ids"]),
        deleted=row["deleted"],
        listens=row["listens"],
        audience=audience,
    )
