"""The durable projection runner: a view in PostgreSQL that resumes where it stood.

    runner = DurableProjectionRunner(settings, pool, "room", SpaceDirectory(...))

A durable view keeps its rows in its service's schema, in tables of its own
`version` (a changed fold or schema is a new version, built beside the old one
into fresh tables, which a migration revision makes: the runner runs no DDL). For each batch read from the log the runner opens one
transaction, has the view apply the batch's events, and stores the positions
and stream versions reached (`tracking.py`) in the same transaction. A restart
reads the stored positions and goes on from there, so start-up time depends on
what happened while the service was down, not on the length of the history.

One replica writes a view at a time: the writer holds a PostgreSQL advisory
lock for it (per schema, view and version), on a connection of its own, never
one of the pool's: a pool connection carries no session state, and locks held
on them for good would leave the pool short (docs/decisions/0011). The others follow: they read the
same rows, say they have caught up once the stored positions reach the log's
end as of their start, and take over the lock when the writer goes away. So
a view's side effects (the room's reactions to moderation and presence) run
once, not once per replica.

Events reach the view exactly once and in order per stream, as with the
in-memory runner (`ordering.StreamGate`); events of a type this consumer does
not know advance their stream and are skipped (counted, logged once per type).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import asyncpg
from aiokafka import TopicPartition

from libs.config.settings import PodiumSettings
from libs.events.log_loss import LogLoss
from libs.events.topics import TopicSpec
from libs.migrations.check import require_tables
from libs.projection.ordering import StreamGate, Verdict
from libs.projection.runner import ConsumedEvent, ProjectionRunner, decode
from libs.projection.tracking import TABLES as TRACKING_TABLES
from libs.projection.tracking import Stream, Tracking

log = logging.getLogger(__name__)


class LostLock(Exception):
    """This replica no longer holds the view's lock: another may be writing."""


class DurableView(Protocol):
    """A view stored in PostgreSQL, in this version's `tables`: a revision of its service's migration
    history creates them (libs/migrations); the runner only checks they exist."""

    name: str
    version: int
    topics: tuple[TopicSpec, ...]
    tables: Sequence[str]  # emptied (TRUNCATE) by a rebuild

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        """Writes the events' effect, inside the runner's transaction. A view that caches what it
        applies may define `reset()`, called when a transaction failed: the cache may then be ahead
        of what was committed, and the events are applied again."""


class DurableProjectionRunner(ProjectionRunner):
    def __init__(
        self,
        settings: PodiumSettings,
        pool: asyncpg.Pool,
        schema: str,
        view: DurableView,
        *,
        client_id: str | None = None,
        follow_seconds: float = 0.5,
        stream_cache: int = 50_000,
        catch_up_batch: int = 20_000,
        retry_seconds: float = 1.0,
        live_batch_ms: int = 0,
        log_loss: LogLoss | None = None,
    ):
        super().__init__(settings, view, client_id=client_id, log_loss=log_loss)  # type: ignore[arg-type]
        self.view = view
        self.pool = pool
        self.schema = schema
        self.tracking = Tracking(schema, view.name, view.version)
        self.follow_seconds = follow_seconds
        self.stream_cache = stream_cache
        self.catch_up_batch = catch_up_batch
        self.retry_seconds = retry_seconds
        self.live_batch_ms = live_batch_ms
        self.writing = False
        self._lock_conn: asyncpg.Connection | None = None
        self._epoch = 0  # this writer's fencing token (tracking.claim)
        self._known: set[Stream] = set()
        self._committed: OrderedDict[Stream, int] = OrderedDict()  # streams this writer committed lately
        self._held_offsets: dict[TopicPartition, set[int]] = {}

    @property
    def lock_key(self) -> str:
        return f"podium-view:{self.schema}:{self.view.name}:v{self.view.version}"

    async def start(self) -> None:
        await require_tables(
            self.pool,
            self.schema,
            (*TRACKING_TABLES, *self.view.tables),
            f"view {self.view.name} v{self.view.version}",
        )
        async with self.pool.acquire() as conn:
            await self.tracking.register(conn)
        self._parts = await self._open(self.view.topics)
        self._targets = await self._ends(self._parts, await self._consumer.beginning_offsets(self._parts))
        await self._open_dead_letters()
        self._lock_conn = await self._lock_session()
        self._measure(self.view.name)
        self._task = asyncio.create_task(self._run(), name=f"projection-{self.view.name}")

    async def stop(self) -> None:
        await super().stop()
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                await self._lock_conn.close(timeout=5)  # closing the session releases the lock
            self._lock_conn = None

    async def _lock_session(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.settings.database_url)

    def lag(self) -> int:
        return super().lag() if self.writing else 0

    async def _run(self) -> None:
        """Writes (or follows) until stopped. A failure (the database restarting, say) costs only a
        pause: what was applied but not committed is forgotten, and the view goes on from its stored
        position, which the transaction that failed never moved."""
        while True:
            try:
                await self._write()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "projection %s v%d failed; resuming from its stored position in %.0f s",
                    self.view.name, self.view.version, self.retry_seconds,
                )  # fmt: skip
                await self._start_over()
                await asyncio.sleep(self.retry_seconds)

    async def _write(self) -> None:
        assert self._consumer is not None
        if self._lock_conn is None:
            self._lock_conn = await self._lock_session()
        while not await self._lock_conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self.lock_key):
            await self._follow()
            await asyncio.sleep(self.follow_seconds)
        self.writing = True
        async with self.pool.acquire() as conn:
            self._epoch = await self.tracking.claim(conn)
            if await self.tracking.rebuild_requested(conn):
                await self._empty(conn)
            stored = await self.tracking.positions(conn)
        self._consumer.assign(self._parts)
        for tp in self._parts:
            self._consumer.seek(tp, stored.get(tp, 0))
            self._positions[tp] = stored.get(tp, 0)
        if self._stopped:  # a partition whose log was lost stays unread, whatever happens since
            self._consumer.pause(*self._stopped)
        await self._stop_reading_beyond_the_end(stored)
        log.info(
            "projection %s v%d writing, resuming at %d records read of %d partitions",
            self.view.name, self.view.version, sum(stored.values()), len(stored),
        )  # fmt: skip
        await self._check_caught_up()
        while True:
            batches = await self._fetch()
            if batches:
                await self._apply(batches)
            await self._look_for_a_lost_log()
            if not self.caught_up.is_set():
                await self._check_caught_up()

    async def _start_over(self) -> None:
        """Forgets everything not known to be committed, and the lock (its session may be gone)."""
        self.writing = False
        self._gate = StreamGate()
        self._known.clear()
        self._committed.clear()
        self._held_offsets.clear()
        self._positions.clear()
        reset = getattr(self.view, "reset", None)
        if reset is not None:
            reset()
        if self._lock_conn is not None:
            conn, self._lock_conn = self._lock_conn, None
            conn.terminate()  # it may be broken: no goodbye; closing the session releases the lock

    async def _empty(self, conn: asyncpg.Connection) -> None:
        """A rebuild an operator asked for: the view's rows and position go, and it is built again."""
        async with conn.transaction():
            for table in self.view.tables:
                await conn.execute(f"TRUNCATE {self.schema}.{table}")
            await self.tracking.reset(conn)
        log.warning(
            "projection %s v%d: rebuilding from the log, as requested", self.view.name, self.view.version
        )

    async def _fetch(self) -> dict[TopicPartition, list]:
        """What the log has for us: while catching up, several fetches gathered into one transaction
        (up to `catch_up_batch` records), so a long catch-up is not one round trip per small fetch."""
        assert self._consumer is not None
        batches = await self._getmany(timeout_ms=200, max_records=5000)
        if self.caught_up.is_set():
            if batches and self.live_batch_ms:  # a moment more, so one transaction carries several
                for tp, records in (await self._getmany(timeout_ms=self.live_batch_ms)).items():
                    batches.setdefault(tp, []).extend(records)
            return batches
        gathered = sum(len(r) for r in batches.values())
        while batches and gathered < self.catch_up_batch:
            more = await self._getmany(timeout_ms=0, max_records=5000)
            if not more:
                break
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
                gathered += len(records)
        return batches

    async def wait_for(self, producer: str, stream_id: str, version: int, timeout: float) -> bool:
        """As the in-memory runner's, but counting only committed versions: a version handed to the
        view is not yet in its rows until its transaction commits. The writer knows the streams it
        committed lately; otherwise (a follower, an older stream) the tracking table says, looked at
        again every `follow_seconds` (a follower applies nothing itself)."""
        stream = (producer, stream_id)

        async def reached() -> bool:
            if self.writing and stream in self._committed:
                return self._committed[stream] >= version
            async with self.pool.acquire() as conn:
                return (await self.tracking.stream_versions(conn, [stream])).get(stream, 0) >= version

        return await self.until(reached, timeout, every=self.follow_seconds)

    async def _follow(self) -> None:
        """While another replica writes: caught up once the stored positions reach the targets."""
        if self.caught_up.is_set():
            return
        async with self.pool.acquire() as conn:
            stored = await self.tracking.positions(conn)
        if all(stored.get(tp, 0) >= target for tp, target in self._targets.items()):
            self._mark_caught_up()

    async def _apply(self, batches) -> None:
        """One transaction for everything one fetch returned: the view's writes and the tracking.

        The per-record loop is the catch-up's hot path: each protobuf field is read once.
        """
        decoded: list[tuple[Stream, int, ConsumedEvent]] = []
        append, name, known, new_streams = decoded.append, self.view.name, self._known, set()
        positions = self._positions
        for tp, records in batches.items():
            position = positions.get(tp, 0)
            for record in records:
                first_read = record.offset >= position
                event, problem = decode(record, name, count=first_read)
                if problem and first_read:
                    await self._dead_letter(record, problem)
                if event is not None:
                    envelope = event.envelope
                    stream = (envelope.producer, envelope.stream_id)
                    if stream not in known:
                        new_streams.add(stream)
                    append((stream, envelope.stream_version, event))
            if records and records[-1].offset + 1 > position:
                positions[tp] = records[-1].offset + 1
        gate, stats, held_offsets = self._gate, self.stats, self._held_offsets
        async with self.pool.acquire() as conn:
            await self._learn_streams(conn, new_streams)
            ready: list[ConsumedEvent] = []
            reached: dict[Stream, int] = {}
            for stream, version, event in decoded:
                verdict, items = gate.offer(stream, version, event)
                if verdict is Verdict.APPLY:
                    if len(items) == 1 and not held_offsets:  # the common case
                        reached[stream] = version
                        if event.payload is not None:
                            ready.append(event)
                        else:
                            stats.skipped += 1
                        continue
                    self._released()
                    for item in items:
                        held = held_offsets.get(TopicPartition(item.topic, item.partition))
                        if held:
                            held.discard(item.offset)
                        reached[stream] = item.envelope.stream_version
                        if item.payload is not None:
                            ready.append(item)
                        else:
                            stats.skipped += 1
                elif verdict is Verdict.DUPLICATE:
                    stats.duplicates += 1
                else:
                    tp = TopicPartition(event.topic, event.partition)
                    held_offsets.setdefault(tp, set()).add(event.offset)
                    self._held(tp)
            async with conn.transaction():
                if ready:
                    await self.view.apply(conn, ready)
                # Fencing, in the same statement as the positions: they are stored only while this
                # writer's epoch is the view's. A lock session the database lost (a restart, a cut
                # connection) lost the lock with it, and another replica may have claimed the view
                # since; then this transaction rolls back and the runner starts over.
                if not await self.tracking.record(
                    conn, self._stored_positions(batches), reached, epoch=self._epoch
                ):
                    raise LostLock(f"the lock of projection {self.view.name} is no longer held")
        stats.applied += len(ready)
        committed_versions = self._committed
        for stream, version in reached.items():
            committed_versions[stream] = version
            committed_versions.move_to_end(stream)
        while len(committed_versions) > self.stream_cache:
            committed_versions.popitem(last=False)
        self._progressed()
        committed = getattr(self.view, "committed", None)
        if committed is not None and ready:
            committed(ready)
        if len(self._known) > self.stream_cache:
            self._forget_streams()

    def _stored_positions(self, batches) -> dict[TopicPartition, int]:
        """The next offset to read after a restart: never past an event still held for its gap."""
        positions = {}
        for tp in batches:
            held = self._held_offsets.get(tp)
            positions[tp] = min(self._positions[tp], min(held)) if held else self._positions[tp]
        return positions

    async def _learn_streams(self, conn: asyncpg.Connection, streams: set[Stream]) -> None:
        """Tells the gate where each stream of the batch stands, from the tracking table on a miss."""
        missing = streams - self._known
        if not missing:
            return
        versions = await self.tracking.stream_versions(conn, missing)
        for stream in missing:
            if stream not in self._gate.held_streams():
                self._gate.start_at(stream, versions.get(stream, 0))
        self._known |= missing

    def _forget_streams(self) -> None:
        """Keeps memory bounded: streams are read again from the tracking table when they come back."""
        held = set(self._gate.held_streams())
        for stream in list(self._known - held):
            self._gate.forget(stream)
        self._known &= held


# An in-memory cache in front of a durable view, kept current on every replica


class ViewCache(Protocol):
    """What a hot path reads from memory: a durable view's live part, on every replica.

    `load` fills it from the view's rows, inside the snapshot's transaction, and names the streams
    of what it holds (with their Space ids); `apply` folds one event in (no I/O); `holds` says
    whether a Space is still in memory (its streams are forgotten once it is not).
    """

    name: str
    topics: tuple[TopicSpec, ...]

    async def load(self, conn: asyncpg.Connection) -> dict[Stream, str]: ...

    def apply(self, event: ConsumedEvent) -> None: ...

    def holds(self, space_id: str) -> bool: ...


class _FromSnapshot(StreamGate[ConsumedEvent]):
    """The gate of a cache started from a snapshot. A stream of a Space the snapshot holds starts
    at its stored version; any other stream starts at the first event seen of it, since its
    earlier events are in the snapshot's past (a Space over before it) or there are none (a new
    Space). It remembers each stream's Space, so streams of Spaces gone from memory can go too."""

    def __init__(self) -> None:
        super().__init__()
        self.space_of: dict[Stream, str] = {}

    def know(self, stream: Stream, space_id: str, version: int) -> None:
        self.start_at(stream, version)
        self.space_of[stream] = space_id

    def offer(self, stream, version, item):
        if stream not in self.space_of:
            self.know(stream, item.envelope.space_id, version - 1)
        return super().offer(stream, version, item)

    def forget(self, stream: Stream) -> None:
        super().forget(stream)
        self.space_of.pop(stream, None)


class CacheRunner(ProjectionRunner):
    """Keeps a `ViewCache` current on every replica, writer or follower, by reading the log itself,
    from where the durable view's rows stand rather than from offset 0.

        rows = SpaceMediaRows(pool); cache = SpaceMediaView(rows)
        DurableProjectionRunner(settings, pool, "media_relay", rows)      # one writer among replicas
        CacheRunner(settings, pool, "media_relay", rows, cache)           # every replica

    At start it reads, in one REPEATABLE READ transaction, the view's stored positions, its rows
    (through `cache.load`) and the stored versions of the streams the cache holds: a snapshot
    whose rows and positions agree. It then reads each partition from the snapshot's position, so
    start-up costs what the rows hold (live Spaces) and what came after, not the history. Events
    are applied exactly once and in order per stream (`_FromSnapshot`). Bad records are the writer's to dead-letter:
    this runner logs and counts them. Memory for streams follows the cache: streams of Spaces it
    no longer holds are forgotten now and then.
    """

    def __init__(
        self,
        settings: PodiumSettings,
        pool: asyncpg.Pool,
        schema: str,
        view: DurableView,
        cache: ViewCache,
        *,
        client_id: str | None = None,
        log_loss: LogLoss | None = None,
        min_streams: int = 10_000,
    ):
        super().__init__(settings, cache, client_id=client_id, log_loss=log_loss)  # type: ignore[arg-type]
        self.pool, self.schema, self.view, self.cache = pool, schema, view, cache
        self.tracking = Tracking(schema, view.name, view.version)
        self._gate = _FromSnapshot()
        self._start: dict[TopicPartition, int] = {}
        self._min_streams = min_streams
        self._sweep_at = min_streams

    async def start(self) -> None:
        await require_tables(
            self.pool,
            self.schema,
            (*TRACKING_TABLES, *self.view.tables),
            f"view {self.view.name} v{self.view.version}",
        )
        parts = await self._open(self.cache.topics)
        async with self.pool.acquire() as conn:
            # Rows an operator asked to rebuild are not a snapshot to start from: wait until the
            # writer has emptied them (it does so when it next takes the view).
            while await self.tracking.rebuild_requested(conn):
                await asyncio.sleep(0.2)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                self._start = await self.tracking.positions(conn)
                streams = await self.cache.load(conn)
                versions = await self.tracking.stream_versions(conn, streams)
        for stream, space_id in streams.items():
            self._gate.know(stream, space_id, versions.get(stream, 0))
        self._consumer.assign(parts)
        for tp in parts:
            self._consumer.seek(tp, self._start.get(tp, 0))
            self._positions[tp] = self._start.get(tp, 0)
        self._targets = await self._ends(parts, self._start)
        await self._stop_reading_beyond_the_end(self._start)
        log.info(
            "projection %s starting from %s v%d's snapshot: %d streams, %d records read of %d partitions",
            self.cache.name, self.view.name, self.view.version, len(streams),
            sum(self._start.values()), len(self._start),
        )  # fmt: skip
        self._measure(self.cache.name)
        if not self._targets:
            self._mark_caught_up()
        self._task = asyncio.create_task(self._run(), name=f"projection-{self.cache.name}")

    def _after_batches(self) -> None:
        if len(self._gate.space_of) > self._sweep_at:
            self._forget_streams()

    def _forget_streams(self) -> None:
        """Streams of Spaces the cache no longer holds (over, or never its own) are forgotten."""
        gate, holds = self._gate, self.cache.holds
        held = set(gate.held_streams())
        for stream, space_id in list(gate.space_of.items()):
            if stream not in held and not holds(space_id):
                gate.forget(stream)
        self._sweep_at = max(self._min_streams, 2 * len(gate.space_of))

    async def _dead_letter(self, record, reason: str) -> None:
        self.stats.dead_lettered += 1
        log.error(
            "projection %s skips %s:%s@%s (the writer of %s dead-letters it): %s",
            self.cache.name, record.topic, record.partition, record.offset, self.view.name, reason,
        )  # fmt: skip
