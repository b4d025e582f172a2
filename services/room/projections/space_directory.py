"""The directory of every Space, for ListSpaces, SearchSpaces, BatchGetSpaces, the abandoned-Space
sweeper and the live census.

A durable view (`libs/projection/durable.py`): one row per Space in
`room.space_directory_v2`, with the columns the queries filter and sort on and
the `podium.room.v1.Space` the lists return, written in the same transaction as
the log position it reflects. A restart resumes from there.

Search is PostgreSQL's full-text search over the title (weighted A) and the
description (B), with the `simple` configuration: Spaces are held in every
language, so words are matched as written (case-folded), never stemmed by one
language's rules. Every list pages by keyset (`libs.grpckit.pagination`).

Each row is the room domain's own `evolve` folded over the Space's events, so
the directory and the write side never disagree about what an event means.
The fold needs the Space's state before each event: a bounded cache holds the
Spaces being applied now (live ones, in practice); on a miss the state is
folded from the room's own event store, each of the Space's streams (its own
and its listener shards, ADR 0012) up to the version this view has applied.
The Space's version in a row is its own stream's, the `room_version` clients
pass on; shard events change its counts, not its version.
An ended Space leaves the cache at once; memory follows live Spaces, not
history.

It lags the write side by the relay and consumer delay (milliseconds);
GetSpace reads the write side instead.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from libs.domain.errors import FieldViolation, InvalidArgument
from libs.domain.streams import is_space_stream, listener_shard_stream, room_token, space_stream
from libs.events.envelope import occurred_at
from libs.events.topics import ROOM_EVENTS
from libs.eventstore.store import EventStore
from libs.grpckit.pagination import Page, from_micros, micros, next_page_token
from libs.projection.runner import ConsumedEvent
from libs.projection.tracking import Tracking
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain.evolve import evolve, replace
from services.room.domain.state import INITIAL, Space
from services.room.domain.view import space_view

LIVE = types.SPACE_STATE_LIVE
SCHEDULED = types.SPACE_STATE_SCHEDULED
ROLE_NAMES = {
    types.ROLE_HOST: "host",
    types.ROLE_CO_HOST: "co-host",
    types.ROLE_SPEAKER: "speaker",
    types.ROLE_LISTENER: "listener",
}


class SpaceDirectory:
    name = "room-space-directory"
    # 2: the title, description, topics, language and start time, for SearchSpaces
    version = 2
    topics = (ROOM_EVENTS,)
    tables = ("space_directory_v2",)

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        schema: str = "room",
        cache_spaces: int = 10_000,
        relevance_candidates: int = 2_000,
    ):
        self.pool = pool
        self.store = store
        self.table = f"{schema}.space_directory_v2"
        self.cache_spaces = cache_spaces
        self.relevance_candidates = relevance_candidates
        self._states: OrderedDict[str, Space] = OrderedDict()
        # Per cached Space, the version applied of each of its listener shard streams (ADR 0012).
        self._shard_versions: dict[str, dict[str, int]] = {}
        self._tracking = Tracking(schema, self.name, self.version)
        self.loaded_from_store = 0  # cache misses, for tests and metrics
        self._ended: list[str] = []  # Spaces over in the batch being applied

    # The view's writes

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        """Folds the batch into the Spaces' states, then writes each changed Space's row once."""
        changed: dict[str, Space] = {}
        states, shard_versions = self._states, self._shard_versions
        for event in events:
            envelope = event.envelope
            space_id, stream, version = envelope.space_id, envelope.stream_id, envelope.stream_version
            before = states.get(space_id)
            on_space_stream = is_space_stream(stream, space_id)
            if on_space_stream:
                follows = before is not None and before.version == version - 1
            else:
                follows = (
                    before is not None and shard_versions.get(space_id, {}).get(stream, 0) == version - 1
                )
            if not follows:
                # A Space's first event starts from nothing; any other miss (or a stream that skipped
                # versions the store holds) is folded from the store as far as this view has applied.
                if version == 1 and on_space_stream:
                    before, shard_versions[space_id] = INITIAL, {}
                else:
                    before, shard_versions[space_id] = await self._state_before(
                        conn, space_id, stream, version
                    )
            after = evolve(before, event.payload, occurred_at(envelope))
            if not on_space_stream:  # the Space's version stays its own stream's (clients' room_version)
                after = replace(after, version=before.version)
                shard_versions[space_id][stream] = version
            states[space_id] = changed[space_id] = after
        self._ended.extend(space_id for space_id, space in changed.items() if space.is_over)
        for space_id in changed:
            states.move_to_end(space_id)
        while len(states) > self.cache_spaces:
            evicted, _ = states.popitem(last=False)
            shard_versions.pop(evicted, None)
        await conn.executemany(
            f"""INSERT INTO {self.table} AS d (space_id, version, state, host_user_id, created_at,
                    starts_at, unattended_since, hosts, co_hosts, speakers, listeners, title,
                    description, topics, language, space)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                ON CONFLICT (space_id) DO UPDATE SET version = excluded.version, state = excluded.state,
                    host_user_id = excluded.host_user_id, created_at = excluded.created_at,
                    starts_at = excluded.starts_at, unattended_since = excluded.unattended_since,
                    hosts = excluded.hosts, co_hosts = excluded.co_hosts, speakers = excluded.speakers,
                    listeners = excluded.listeners, title = excluded.title,
                    description = excluded.description, topics = excluded.topics,
                    language = excluded.language, space = excluded.space
                WHERE d.version <= excluded.version""",
            [_row(space) for space in changed.values() if space.exists],
        )

    def committed(self, events: Sequence[ConsumedEvent]) -> None:
        """After the commit: Spaces that are over leave memory (their rows stay)."""
        for space_id in self._ended:
            self._states.pop(space_id, None)
            self._shard_versions.pop(space_id, None)
        self._ended = []

    def reset(self) -> None:
        """A transaction failed: the cached states may be ahead of the rows; they are folded again."""
        self._states.clear()
        self._shard_versions.clear()
        self._ended = []

    async def _state_before(
        self, conn: asyncpg.Connection, space_id: str, stream: str, version: int
    ) -> tuple[Space, dict[str, int]]:
        """The Space as this view has applied it, folded from the store, with its shard streams'
        versions: every stream up to the version the view's tracking records (`stream` up to the
        one before `version`). The Space's own stream, read whole, says how many shards it has had;
        then all its streams are folded merged by time, each in its own order (as the room wrote
        them)."""
        self.loaded_from_store += 1
        own = space_stream(space_id)
        reached = {own: version - 1} if stream == own else {stream: version - 1}
        if own not in reached:
            reached.update(await self._applied(conn, [own]))
        recorded = await self.store.load(own)
        events = [r for r in recorded if r.version <= reached[own]]
        # Every shard the Space has had, applied or not: the view may have applied a shard's events
        # before the growth that made the shard (the streams interleave in no set order).
        shards = max(
            (r.payload.shards for r in recorded if isinstance(r.payload, ev.ListenerShardsGrown)), default=1
        )
        shard_streams = [listener_shard_stream(space_id, k) for k in range(shards)]
        if stream != own and stream not in shard_streams:
            shard_streams.append(stream)  # written after the growth this load saw
        reached.update(await self._applied(conn, [s for s in shard_streams if s not in reached]))
        loaded = [[r for r in await self.store.load(s) if r.version <= reached[s]] for s in shard_streams]
        state = INITIAL
        for recorded in heapq.merge(events, *loaded, key=lambda r: r.occurred_at):
            after = evolve(state, recorded.payload, recorded.occurred_at)
            state = after if recorded.envelope.stream_id == own else replace(after, version=state.version)
        state = replace(state, version=reached[own])  # events this code skipped (an unknown type) still count
        return state, {s: reached[s] for s in shard_streams if reached[s]}

    async def _applied(self, conn: asyncpg.Connection, streams: list[str]) -> dict[str, int]:
        versions = await self._tracking.stream_versions(conn, [("room", s) for s in streams])
        return {s: versions.get(("room", s), 0) for s in streams}

    # Queries

    async def query(
        self, states: frozenset[int], host_user_id: str, page: Page
    ) -> tuple[list[types.Space], str]:
        """A page of Spaces matching the filters, newest first, and the next page's token."""
        after_at, after_id = _after(page)
        rows = await self.pool.fetch(
            f"""SELECT space_id, created_at, space FROM {self.table}
                WHERE (cardinality($1::int[]) = 0 OR state = ANY($1::int[]))
                  AND ($2 = '' OR host_user_id = $2)
                  AND ($3::timestamptz IS NULL OR (created_at, space_id) < ($3, $4))
                ORDER BY created_at DESC, space_id DESC
                LIMIT $5""",
            sorted(states),
            host_user_id,
            from_micros(after_at) if after_at is not None else None,
            after_id,
            page.size + 1,
        )
        return _page(rows, page, lambda row: (micros(row["created_at"]), row["space_id"]))

    async def search(self, search: Search, page: Page) -> tuple[list[types.Space], str]:
        """A page of the Spaces `search` finds, in its order, and the next page's token."""
        order = search.order
        if order == types.SPACE_ORDER_UNSPECIFIED:
            order = types.SPACE_ORDER_RELEVANCE if search.words else types.SPACE_ORDER_LISTENERS
        if order == types.SPACE_ORDER_RELEVANCE and not search.words:
            order = types.SPACE_ORDER_LISTENERS  # nothing to be relevant to
        # The key each order pages by, as SQL (an integer, then the Space id for ties).
        sort_key, descending = {
            types.SPACE_ORDER_RELEVANCE: (
                "round(ts_rank(words, websearch_to_tsquery('simple', $1)) * 1e9)::bigint",
                True,
            ),
            types.SPACE_ORDER_LISTENERS: ("listeners::bigint", True),
            types.SPACE_ORDER_START_TIME: ("(extract(epoch FROM starts_at) * 1e6)::bigint", False),
        }[order]
        after_key, after_id = _after(page)
        direction, before = ("DESC", "<") if descending else ("ASC", ">")
        # Ranking scores every row it ranks, and a common word matches most Spaces: relevance
        # ranks the newest `relevance_candidates` matches, which an index walk newest-first finds
        # without reading the rest (a rare word's few matches come from the words index instead).
        candidates = (
            f"ORDER BY created_at DESC, space_id DESC LIMIT {int(self.relevance_candidates)}"
            if order == types.SPACE_ORDER_RELEVANCE
            else ""
        )
        async with self.pool.acquire() as conn, conn.transaction():
            # A plan made for these words: a plan cached for any words cannot tell a common word
            # (walk the newest Spaces) from a rare one (the words index), nor fold the query text
            # into a tsquery once, and parses it again on every row it looks at.
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            # The page is chosen on narrow rows; only its own rows bring their Space along.
            rows = await conn.fetch(
                f"""SELECT page.space_id, d.space, page.sort_key FROM (
                    SELECT space_id, {sort_key} AS sort_key FROM (
                        SELECT space_id, words, listeners, starts_at FROM {self.table}
                        WHERE ($1 = '' OR words @@ websearch_to_tsquery('simple', $1))
                          AND (cardinality($2::int[]) = 0 OR state = ANY($2::int[]))
                          AND (cardinality($3::text[]) = 0 OR topics && $3::text[])
                          AND ($4 = '' OR lower(language) = $4 OR lower(language) LIKE $4 || '-%')
                          AND (cardinality($5::text[]) = 0 OR host_user_id = ANY($5::text[]))
                        {candidates}
                    ) found
                    WHERE ($6::bigint IS NULL OR ({sort_key}, space_id) {before} ($6, $7))
                    ORDER BY sort_key {direction}, space_id {direction}
                    LIMIT $8
                ) page JOIN {self.table} d USING (space_id)
                ORDER BY page.sort_key {direction}, page.space_id {direction}""",
                search.words,
                sorted(search.states),
                sorted(search.topics),
                search.language.lower(),
                sorted(search.host_user_ids),
                after_key,
                after_id,
                page.size + 1,
            )
        return _page(rows, page, lambda row: (row["sort_key"], row["space_id"]))

    async def get_many(self, space_ids: Sequence[str]) -> dict[str, types.Space]:
        """The Spaces the directory knows among `space_ids`."""
        rows = await self.pool.fetch(
            f"SELECT space_id, space FROM {self.table} WHERE space_id = ANY($1::text[])", list(space_ids)
        )
        return {row["space_id"]: _stored(row["space"]) for row in rows}

    async def scheduled_before(self, until: datetime) -> list[tuple[str, datetime]]:
        """Scheduled Spaces whose start is `until` or earlier, with that start (soonest first)."""
        rows = await self.pool.fetch(
            f"""SELECT space_id, starts_at FROM {self.table}
                WHERE state = {SCHEDULED} AND starts_at <= $1 ORDER BY starts_at, space_id""",
            until,
        )
        return [(row["space_id"], row["starts_at"]) for row in rows]

    async def live_census(self) -> tuple[int, dict[str, int]]:
        """Live Spaces, and their participants by role name (for the metrics)."""
        row = await self.pool.fetchrow(
            f"""SELECT count(*) AS spaces, coalesce(sum(hosts), 0) AS host,
                       coalesce(sum(co_hosts), 0) AS co_host, coalesce(sum(speakers), 0) AS speaker,
                       coalesce(sum(listeners), 0) AS listener
                FROM {self.table} WHERE state = {LIVE}"""
        )
        roles = {
            "host": row["host"],
            "co-host": row["co_host"],
            "speaker": row["speaker"],
            "listener": row["listener"],
        }
        return row["spaces"], roles

    async def abandoned(self, now: datetime, grace) -> list[str]:
        """Live Spaces whose hosts and co-hosts have all been away for at least `grace`."""
        rows = await self.pool.fetch(
            f"SELECT space_id FROM {self.table} "
            f"WHERE state = {LIVE} AND unattended_since IS NOT NULL AND unattended_since <= $1",
            now - grace,
        )
        return [r["space_id"] for r in rows]


@dataclass(frozen=True)
class Search:
    """What SearchSpaces asks for (validated by the API)."""

    words: str = ""
    states: frozenset[int] = frozenset()
    topics: frozenset[str] = frozenset()
    language: str = ""
    host_user_ids: frozenset[str] = frozenset()
    order: int = types.SPACE_ORDER_UNSPECIFIED


def _after(page: Page) -> tuple[int | None, str]:
    """Where the page starts: after (a sort key, a Space id), as the token says."""
    if page.after is None:
        return None, ""
    match page.after:
        case (int(value), str(space_id)) if -(2**62) < value < 2**62:  # a time or count, never more
            return value, space_id
    raise InvalidArgument(
        "page_token is not a token this API issued", [FieldViolation("page_token", "malformed")]
    )


def _page(rows, page: Page, key) -> tuple[list[types.Space], str]:
    spaces = [_stored(row["space"]) for row in rows[: page.size]]
    more = len(rows) > page.size
    return spaces, next_page_token(page, key(rows[page.size - 1]) if more else (), more=more)


def _stored(data: bytes) -> types.Space:
    """A row's Space. Rows written before `room_token` existed lack it: their own stream's version
    is the whole token (what they were written at named no shard)."""
    space = types.Space.FromString(data)
    if not space.room_token and space.version:
        space.room_token = room_token(space.version)
    return space


def _row(space: Space) -> tuple:
    # Co-hosts and speakers are always participants (leaving ends the role): O(1) however big.
    host = 1 if space.is_in(space.host_user_id) else 0
    co_hosts, speakers = len(space.co_hosts), len(space.speakers)
    return (
        space.space_id,
        space.version,
        space.state,
        space.host_user_id,
        space.created_at,
        space.started_at or space.scheduled_start or space.created_at,
        space.unattended_since,
        host,
        co_hosts,
        speakers,
        space.listener_count,
        space.title,
        space.description,
        list(space.topics),
        space.language,
        space_view(space).SerializeToString(),
    )
