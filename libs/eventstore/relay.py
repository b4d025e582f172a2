"""The outbox relay: publishes committed events to Kafka, in order, at least once.

Exactly one relay per service is active: each replica tries to take a
PostgreSQL advisory lock, and only the holder publishes. The holder wakes on
LISTEN/NOTIFY from `append`, or on a short poll as a fallback. It sends a batch,
waits for the broker to acknowledge every record, and only then deletes those
outbox rows. A crash between the acknowledgement and the delete publishes the
rows again; consumers drop the duplicates by stream version. While a backlog
lasts, the next batch is read and sent before the last one's acknowledgement
is in (two batches out at most).

It publishes only to topics that exist as expected (their owner makes them),
and does nothing else: a log the broker lost is noticed by its consumers and
recovered by an operator (`podium log recover`, docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer

from libs.config.settings import PodiumSettings
from libs.events.envelope import EventEnvelope
from libs.events.kafka import make_producer
from libs.events.kafka_security import kafka_security
from libs.events.topics import TopicSpec, wait_for_topics
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
        batch_size: int = 2000,
        poll_interval: float = 0.5,
    ):
        self.settings = settings
        self.pool = pool
        self.schema = quoted(schema)
        self.schema_name = schema
        self.topics = topics
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.active = False  # holds the lock
        self.publishing = False  # holds the lock, its topics are in place and its producer started
        self.published = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.schema}-outbox-relay")

    async def stop(self, drain_seconds: float = 0.0) -> None:
        """Stops publishing; when this relay is the active one and publishing, first publishes what
        the outbox holds, for up to `drain_seconds` (what is left is published by the next relay to
        start). One still waiting for its topics has nowhere to drain to, and stops at once."""
        deadline = time.monotonic() + drain_seconds
        while self.publishing and time.monotonic() < deadline:
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
        The relay reads and deletes outbox rows on it too: a burst of commands that
        holds every pooled connection (an eviction's hundred shard appends) must not
        hold back the publishing of what they commit.
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
        await wait_for_topics(
            self.settings.kafka_bootstrap_servers,
            self.topics,
            self.settings.topic_partitions,
            f"the outbox relay of {self.schema_name}",
            **kafka_security(self.settings),
        )
        producer = make_producer(self.settings, client_id=f"{self.schema}-relay")
        await producer.start()
        self.publishing = True
        in_flight: deque[_Sent] = deque()
        try:
            while not lock_conn.is_closed():  # without the lock, another replica may be publishing
                # Cleared before the read, not after it: a commit notified while a batch is out
                # must wake the next read at once, not wait for the poll.
                self._wake.clear()
                sent = await self._send_batch(producer, lock_conn, in_flight)
                if sent is not None:
                    in_flight.append(sent)
                if sent is not None and sent.full:
                    # More behind it: the next batch is read and sent while the broker acknowledges
                    # this one (at most two out), so a burst waits for one round trip, not one a batch.
                    if len(in_flight) > 1:
                        await self._settle(lock_conn, in_flight.popleft())
                    continue
                while in_flight:
                    await self._settle(lock_conn, in_flight.popleft())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
        finally:
            self.publishing = False
            for abandoned in in_flight:  # sent again by the next relay: their rows are still there
                abandoned.acknowledged.cancel()
            await producer.stop()

    async def _send_batch(
        self, producer: AIOKafkaProducer, conn: asyncpg.Connection, in_flight: deque[_Sent]
    ) -> _Sent | None:
        """Sends the first outbox rows in position order that are not out already. Rows are left
        out by their positions, never by "after the last one sent": a transaction that commits late
        has a position below rows already sent, and is published in the next batch."""
        if in_flight:
            rows = await conn.fetch(
                f"SELECT position, topic, key, envelope FROM {self.schema}.outbox "
                f"WHERE position NOT IN (SELECT unnest($2::bigint[])) ORDER BY position LIMIT $1",
                self.batch_size,
                [position for sent in in_flight for position in sent.positions],
            )
        else:
            rows = await conn.fetch(
                f"SELECT position, topic, key, envelope FROM {self.schema}.outbox ORDER BY position LIMIT $1",
                self.batch_size,
            )
        backlog = len(rows)
        if backlog == self.batch_size:  # more behind it: count them (only while behind)
            backlog = await conn.fetchval(f"SELECT count(*) FROM {self.schema}.outbox")
        OUTBOX_BACKLOG.labels(self.schema_name).set(backlog)
        if not rows:
            return None
        # A failure leaves every row in the outbox: the whole batch is sent again (duplicates are
        # dropped by stream version).
        futures = []
        for r in rows:
            value = bytes(r["envelope"])
            envelope = EventEnvelope.FromString(value)
            with publish_span(r["topic"], envelope.traceparent, envelope.tracestate) as headers:
                futures.append(
                    await producer.send(r["topic"], value=value, key=r["key"].encode(), headers=headers)
                )
        return _Sent([r["position"] for r in rows], asyncio.gather(*futures), len(rows) == self.batch_size)

    async def _settle(self, conn: asyncpg.Connection, sent: _Sent) -> None:
        """Waits for the broker to acknowledge every record of `sent`, then deletes its rows."""
        await sent.acknowledged
        await conn.execute(
            f"DELETE FROM {self.schema}.outbox WHERE position = ANY($1::bigint[])", sent.positions
        )
        self.published += len(sent.positions)
        OUTBOX_PUBLISHED.labels(self.schema_name).inc(len(sent.positions))


@dataclass
class _Sent:
    """A batch handed to the producer: its rows' positions, and the broker's acknowledgement of all."""

    positions: list[int]
    acknowledged: asyncio.Future
    full: bool
