"""The durable projection runner: a view in PostgreSQL that resumes where it stood.

    runner = DurableProjectionRunner(settings, pool, "room", SpaceDirectory(...))

A durable view keeps its rows in its service's schema, in tables of its own
`version` (a changed fold or schema is a new version, built beside the old one
into fresh tables). For each batch read from the log the runner opens one
transaction, has the view apply the batch's events, and stores the positions
and stream versions reached (`tracking.py`) in the same transaction. A restart
reads the stored positions and goes on from there, so start-up time depends on
what happened while the service was down, not on the length of the history.

One replica writes a view at a time: the writer holds a PostgreSQL advisory
lock for it (per schema, view and version). The others follow: they read the
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
import time
from collections.abc import Sequence
from typing import Protocol

import asyncpg
from aiokafka import TopicPartition

from libs.config.settings import PodiumSettings
from libs.events.kafka import make_producer, make_reader, partitions_of
from libs.events.kafka_security import kafka_security
from libs.events.topics import DEAD_LETTER, TopicSpec, ensure_topics
from libs.eventstore.migrations import apply_migrations
from libs.projection.ordering import StreamGate, Verdict
from libs.projection.runner import ConsumedEvent, ProjectionRunner, decode
from libs.projection.tracking import STEPS as TRACKING_STEPS
from libs.projection.tracking import Stream, Tracking
from libs.telemetry.metrics import PROJECTION_CAUGHT_UP, PROJECTION_LAG

log = logging.getLogger(__name__)


FENCE = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = $1 AND granted)"


class LostLock(Exception):
    """This replica no longer holds the view's lock: another may be writing."""


class DurableView(Protocol):
    """A view stored in PostgreSQL. `steps` create this version's `tables` (`{s}` is the schema)."""

    name: str
    version: int
    topics: tuple[TopicSpec, ...]
    steps: Sequence[str]
    tables: Sequence[str]  # emptied by a rebuild

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
    ):
        super().__init__(settings, view, client_id=client_id)  # type: ignore[arg-type]
        self.view = view
        self.pool = pool
        self.schema = schema
        self.tracking = Tracking(schema, view.name, view.version)
        self.follow_seconds = follow_seconds
        self.stream_cache = stream_cache
        self.catch_up_batch = catch_up_batch
        self.retry_seconds = retry_seconds
        self.writing = False
        self._lock_conn: asyncpg.Connection | None = None
        self._lock_pid = 0  # the lock session's backend, for the fence
        self._known: set[Stream] = set()
        self._held_offsets: dict[TopicPartition, set[int]] = {}

    @property
    def lock_key(self) -> str:
        return f"podium-view:{self.schema}:{self.view.name}:v{self.view.version}"

    async def start(self) -> None:
        await apply_migrations(self.pool, self.schema, "tracking", TRACKING_STEPS)
        await apply_migrations(
            self.pool, self.schema, f"view:{self.view.name}:v{self.view.version}", self.view.steps
        )
        async with self.pool.acquire() as conn:
            await self.tracking.register(conn)
        await ensure_topics(
            self.settings.kafka_bootstrap_servers,
            (*self.view.topics, DEAD_LETTER),
            self.settings.topic_partitions,
            self.settings.topic_replication_factor,
            **kafka_security(self.settings),
        )
        self._consumer = make_reader(self.settings, self.client_id)
        await self._consumer.start()
        parts: list[TopicPartition] = []
        for spec in self.view.topics:
            parts.extend(await partitions_of(self._consumer, spec.name))
        self._parts = parts
        ends = await self._consumer.end_offsets(parts)
        begins = await self._consumer.beginning_offsets(parts)
        self._targets = {tp: end for tp, end in ends.items() if end > begins.get(tp, 0)}
        self._dead_letters = make_producer(self.settings, client_id=f"{self.client_id}-dlq")
        await self._dead_letters.start()
        self._lock_conn = await self.pool.acquire()
        self.stats.started_at = time.monotonic()
        PROJECTION_LAG.labels(self.view.name).set_function(self.lag)
        PROJECTION_CAUGHT_UP.labels(self.view.name).set_function(lambda: float(self.caught_up.is_set()))
        self._task = asyncio.create_task(self._run(), name=f"projection-{self.view.name}")

    async def stop(self) -> None:
        await super().stop()
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                await self.pool.release(self._lock_conn)  # closing the session releases the lock
            self._lock_conn = None

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
            self._lock_conn = await self.pool.acquire()
        while not await self._lock_conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self.lock_key):
            await self._follow()
            await asyncio.sleep(self.follow_seconds)
        self._lock_pid = await self._lock_conn.fetchval("SELECT pg_backend_pid()")
        self.writing = True
        async with self.pool.acquire() as conn:
            if await self.tracking.rebuild_requested(conn):
                await self._empty(conn)
            stored = await self.tracking.positions(conn)
        self._consumer.assign(self._parts)
        for tp in self._parts:
            self._consumer.seek(tp, stored.get(tp, 0))
            self._positions[tp] = stored.get(tp, 0)
        log.info(
            "projection %s v%d writing, resuming at %d records read of %d partitions",
            self.view.name, self.view.version, sum(stored.values()), len(stored),
        )  # fmt: skip
        await self._check_caught_up()
        while True:
            batches = await self._fetch()
            if batches:
                await self._apply(batches)
            if not self.caught_up.is_set():
                await self._check_caught_up()

    async def _start_over(self) -> None:
        """Forgets everything not known to be committed, and the lock (its session may be gone)."""
        self.writing = False
        self._gate = StreamGate()
        self._known.clear()
        self._held_offsets.clear()
        self._positions.clear()
        reset = getattr(self.view, "reset", None)
        if reset is not None:
            reset()
        if self._lock_conn is not None:
            conn, self._lock_conn = self._lock_conn, None
            with contextlib.suppress(Exception):
                await conn.execute("SELECT pg_advisory_unlock_all()")
            with contextlib.suppress(Exception):
                await self.pool.release(conn)

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
        batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
        if self.caught_up.is_set():
            return batches
        gathered = sum(len(r) for r in batches.values())
        while batches and gathered < self.catch_up_batch:
            more = await self._consumer.getmany(timeout_ms=0, max_records=5000)
            if not more:
                break
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
                gathered += len(records)
        return batches

    async def wait_for(self, producer: str, stream_id: str, version: int, timeout: float) -> bool:
        """As the in-memory runner's; the stream's version comes from the tracking table when this
        replica does not hold it (a follower, or a stream not applied lately)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        stream = (producer, stream_id)
        while True:
            if self.writing and stream in self._known:
                reached = self._gate.applied_version(stream)
            else:
                async with self.pool.acquire() as conn:
                    reached = (await self.tracking.stream_versions(conn, [stream])).get(stream, 0)
            if reached >= version:
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            if self._progress is None:
                self._progress = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                # A follower applies nothing here: it looks again at the writer's progress.
                await asyncio.wait_for(self._progress.wait(), min(left, self.follow_seconds))

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
        positions = self._positions
        for tp, records in batches.items():
            position = positions.get(tp, 0)
            for record in records:
                first_read = record.offset >= position
                event, problem = decode(record, self.view.name, count=first_read)
                if problem and first_read:
                    await self._dead_letter(record, problem)
                if event is not None:
                    envelope = event.envelope
                    decoded.append(((envelope.producer, envelope.stream_id), envelope.stream_version, event))
            if records and records[-1].offset + 1 > position:
                positions[tp] = records[-1].offset + 1
        gate, stats, held_offsets = self._gate, self.stats, self._held_offsets
        async with self.pool.acquire() as conn:
            await self._learn_streams(conn, {stream for stream, _, _ in decoded})
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
                    stats.held = gate.held_count
                    self._rescan(tp, event)
            async with conn.transaction():
                # Fencing: write only while this replica's lock session still holds the lock. A
                # session the database lost (a restart) lost the lock with it, and another replica
                # may be writing now; this transaction then fails, and the runner starts over.
                if not await conn.fetchval(FENCE, self._lock_pid):
                    raise LostLock(f"the lock of projection {self.view.name} is no longer held")
                if ready:
                    await self.view.apply(conn, ready)
                await self.tracking.record(conn, self._stored_positions(batches), reached)
        stats.applied += len(ready)
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
