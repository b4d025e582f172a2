"""The outbox relay: publishes committed events to Kafka, in order, at least once.

Exactly one relay per service is active: each replica tries to take a
PostgreSQL advisory lock, and only the holder publishes. The holder wakes on
LISTEN/NOTIFY from `append`, or on a short poll as a fallback. It sends a batch,
waits for the broker to acknowledge every record, and only then deletes those
outbox rows. A crash between the acknowledgement and the delete publishes the
rows again; consumers drop the duplicates by stream version.

Log loss. The relay counts the records the broker acknowledged per topic. Before
publishing it compares that count with the topic's end offsets; a broker that
has fewer records than it acknowledged has lost its log (the dev broker keeps
everything in memory). The relay then reseeds: it refills the outbox with every
event of that topic from the `events` table, in their original order, and
publishes them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from libs.config.settings import PodiumSettings
from libs.events.envelope import EventEnvelope
from libs.events.kafka import log_end_offsets, make_producer, make_reader, partitions_of
from libs.events.kafka_security import kafka_security
from libs.events.topics import TopicSpec, ensure_topics
from libs.eventstore.schema import notify_channel, quoted
from libs.telemetry.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED
from libs.telemetry.tracing import publish_span

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        settings: PodiumSettings,
        pool: asyncpg.Pool,
        schema: str,
        topics: tuple[TopicSpec, ...],
        *,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        verify_interval: float = 2.0,
    ):
        self.settings = settings
        self.pool = pool
        self.schema = quoted(schema)
        self.schema_name = schema
        self.topics = topics
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.verify_interval = verify_interval
        self.active = False
        self.published = 0
        self.reseeds = 0
        self._wake = asyncio.Event()
        self._verify_soon = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.schema}-outbox-relay")

    async def stop(self, drain_seconds: float = 0.0) -> None:
        """Stops publishing; when this relay is the active one, first publishes what the outbox
        holds, for up to `drain_seconds` (what is left is published by the next relay to start)."""
        deadline = time.monotonic() + drain_seconds
        while self.active and time.monotonic() < deadline:
            if not await self.pool.fetchval(f"SELECT count(*) FROM {self.schema}.outbox"):
                break
            self._wake.set()
            await asyncio.sleep(0.02)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
                self.active = False
                await asyncio.sleep(1.0)

    async def _lead(self) -> None:
        """Waits for the advisory lock, then publishes for as long as it holds it.

        The lock and the LISTEN live on a connection of the relay's own, outside
        the pool, so they end with that connection and never leak into a command.
        """
        lock_conn = await asyncpg.connect(self.settings.database_url)
        try:
            while not await lock_conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtext($1))", self._lock_name()
            ):
                await asyncio.sleep(1.0)
            self.active = True
            log.info("outbox relay for %s is active", self.schema)
            await lock_conn.add_listener(notify_channel(self.schema), self._on_notify)
            await self._publish_forever(lock_conn)
        finally:
            self.active = False
            with contextlib.suppress(Exception):
                await lock_conn.close(timeout=2)

    def _lock_name(self) -> str:
        return f"podium-relay-{self.schema}"

    def _on_notify(self, *_args) -> None:
        self._wake.set()

    async def _publish_forever(self, lock_conn: asyncpg.Connection) -> None:
        await ensure_topics(
            self.settings.kafka_bootstrap_servers,
            self.topics,
            self.settings.topic_partitions,
            self.settings.topic_replication_factor,
            **kafka_security(self.settings),
        )
        producer = make_producer(self.settings, client_id=f"{self.schema}-relay")
        await producer.start()
        verifier = None
        try:
            await self._verify_log()
            # The log is checked beside publishing, not between batches: after the broker lost its
            # log, a batch waits for its topic, which this relay alone makes again.
            verifier = asyncio.create_task(self._verify_forever(), name=f"{self.schema}-relay-verify")
            while not lock_conn.is_closed():  # without the lock, another replica may be publishing
                sent = await self._publish_batch(producer)
                if sent < self.batch_size:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_interval)
        finally:
            if verifier is not None:
                verifier.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await verifier
            await producer.stop()

    async def _verify_forever(self) -> None:
        while True:
            self._verify_soon.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._verify_soon.wait(), self.verify_interval)
            try:
                await self._verify_log()
            except (KafkaError, OSError, LookupError) as e:  # the broker is away: look again later
                log.info("outbox relay of %s could not check the log: %r", self.schema, e)
            except Exception:  # never stop checking: a loss would go unnoticed
                log.exception("outbox relay of %s could not check the log", self.schema)

    async def _publish_batch(self, producer: AIOKafkaProducer) -> int:
        rows = await self.pool.fetch(
            f"SELECT position, topic, key, envelope FROM {self.schema}.outbox ORDER BY position LIMIT $1",
            self.batch_size,
        )
        if not rows:
            OUTBOX_BACKLOG.labels(self.schema_name).set(0)
            return 0
        try:
            futures = []
            for r in rows:
                value = bytes(r["envelope"])
                envelope = EventEnvelope.FromString(value)
                with publish_span(r["topic"], envelope.traceparent, envelope.tracestate) as headers:
                    futures.append(
                        await producer.send(r["topic"], value=value, key=r["key"].encode(), headers=headers)
                    )
            await asyncio.gather(*futures)
        except KafkaError:
            # Nothing is deleted: the whole batch is sent again, after checking the log.
            self._verify_soon.set()
            raise
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["topic"]] = counts.get(r["topic"], 0) + 1
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"DELETE FROM {self.schema}.outbox WHERE position = ANY($1::bigint[])",
                [r["position"] for r in rows],
            )
            for topic, n in counts.items():
                await conn.execute(
                    f"INSERT INTO {self.schema}.relay_state (topic, published_count) VALUES ($1, $2)"
                    " ON CONFLICT (topic) DO UPDATE SET published_count = relay_state.published_count + $2",
                    topic,
                    n,
                )
        self.published += len(rows)
        OUTBOX_PUBLISHED.labels(self.schema_name).inc(len(rows))
        return len(rows)

    async def _verify_log(self) -> None:
        """Makes every topic of this relay's that the broker no longer has, and reseeds every topic
        whose broker log is shorter than what it acknowledged.

        Podium's clients never create a topic by asking for it (libs.events.kafka), so after the
        broker lost its log nobody but its owner brings a topic back: this relay for its topics,
        whether or not it had published to them before the loss."""
        OUTBOX_BACKLOG.labels(self.schema_name).set(
            await self.pool.fetchval(f"SELECT count(*) FROM {self.schema}.outbox")
        )
        counts = {
            r["topic"]: r["published_count"]
            for r in await self.pool.fetch(f"SELECT topic, published_count FROM {self.schema}.relay_state")
        }
        reader = make_reader(self.settings, client_id=f"{self.schema}-relay-verify")
        await reader.start()
        try:
            existing = await reader.topics()  # a fresh request for every topic; creates none
            gone = tuple(t for t in self.topics if t.name not in existing)
            if gone:
                log.warning("broker has no topic %s: it lost its log; creating", [t.name for t in gone])
                await ensure_topics(
                    self.settings.kafka_bootstrap_servers,
                    gone,
                    self.settings.topic_partitions,
                    self.settings.topic_replication_factor,
                    **kafka_security(self.settings),
                )
            for topic, acknowledged in counts.items():
                if acknowledged <= 0:
                    continue
                if topic in existing:
                    try:
                        parts = await partitions_of(reader, topic, timeout=3.0)
                        present = sum((await reader.end_offsets(parts)).values())
                        if present < acknowledged:  # or the broker under-reports: count what is there
                            reader.assign(parts)
                            present = sum(
                                (await log_end_offsets(reader, parts, enough=acknowledged)).values()
                            )
                    except LookupError:
                        present = 0
                else:
                    present = 0
                if present < acknowledged:
                    log.warning(
                        "broker has %d records on %s but acknowledged %d: it lost its log; reseeding",
                        present,
                        topic,
                        acknowledged,
                    )
                    await ensure_topics(
                        self.settings.kafka_bootstrap_servers,
                        tuple(t for t in self.topics if t.name == topic),
                        self.settings.topic_partitions,
                        self.settings.topic_replication_factor,
                        **kafka_security(self.settings),
                    )
                    await reseed(self.pool, self.schema, topic)
                    self.reseeds += 1
                    self._wake.set()
        finally:
            await reader.stop()


async def reseed(pool: asyncpg.Pool, schema: str, topic: str) -> int:
    """Refills the outbox with every event of `topic`, in order. Returns how many.

    The exclusive lock on the outbox holds back concurrent appends for the few
    milliseconds this takes, so no event is queued twice or out of order.
    """
    s = quoted(schema)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"LOCK TABLE {s}.outbox IN EXCLUSIVE MODE")
        await conn.execute(f"DELETE FROM {s}.outbox WHERE topic = $1", topic)
        status = await conn.execute(
            f"INSERT INTO {s}.outbox (global_position, topic, key, envelope)"
            f" SELECT global_position, topic, record_key, envelope FROM {s}.events"
            " WHERE topic = $1 ORDER BY global_position",
            topic,
        )
        await conn.execute(
            f"INSERT INTO {s}.relay_state (topic, published_count) VALUES ($1, 0)"
            " ON CONFLICT (topic) DO UPDATE SET published_count = 0",
            topic,
        )
    return int(status.split()[-1])
