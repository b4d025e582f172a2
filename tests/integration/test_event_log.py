"""The event log end to end: event store, outbox relay and projection runner
against a real PostgreSQL and a real Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from libs.config.settings import PodiumSettings
from libs.events.envelope import Causation, decode, wrap
from libs.events.kafka import log_end_offsets, make_reader, partitions_of
from libs.events.topics import DEAD_LETTER, TopicSpec, create_topics
from libs.eventstore.relay import OutboxRelay
from libs.eventstore.store import (
    ConcurrencyConflict,
    DuplicateRequest,
    EventStore,
    IdempotencyRecord,
    NewEvent,
)
from libs.projection.runner import ConsumedEvent, ProjectionRunner
from podium.room.v1 import room_events_pb2
from tests.support.schemas import migrated_schema

pytestmark = pytest.mark.integration

CAUSE = Causation("user-1", "corr-1", "cause-1")


def _topic(partitions: int | None = None) -> TopicSpec:
    return TopicSpec(f"test.events.{uuid.uuid4().hex[:8]}", "test topic", partitions=partitions)


async def _made_topic(settings, partitions: int | None = None) -> TopicSpec:
    """A test topic, made as its owner would (services never make topics)."""
    spec = _topic(partitions)
    await create_topics(settings.kafka_bootstrap_servers, (spec,), settings.topic_partitions, 1)
    return spec


def _event(n: int) -> room_events_pb2.SpaceUpdated:
    return room_events_pb2.SpaceUpdated(space_id="s", title=f"title {n}", changed_fields=["title"])


class TitlesView:
    """A projection that records every title it applies, per Space."""

    name = "titles"

    def __init__(self, topic: TopicSpec):
        self.topics = (topic,)
        self.titles: dict[str, list[str]] = {}

    def apply(self, event: ConsumedEvent) -> None:
        self.titles.setdefault(event.envelope.space_id, []).append(event.payload.title)


@pytest.fixture
async def pool(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture
async def store(pool, database_url):
    schema = await migrated_schema(database_url, "room", "t")
    return EventStore(pool, schema, producer="test")


@pytest.fixture
def settings(broker, database_url) -> PodiumSettings:
    return PodiumSettings(database_url=database_url, kafka_bootstrap_servers=broker.bootstrap)


async def _append(store: EventStore, topic: TopicSpec, space: str, version: int, n: int, **kw):
    return await store.append(
        stream_id=f"space-{space}",
        space_id=space,
        topic=topic.name,
        expected_version=version,
        events=[NewEvent(_event(i), datetime.now(UTC), CAUSE) for i in range(version, version + n)],
        **kw,
    )


async def test_append_assigns_versions_and_rejects_a_stale_writer(store):
    topic = _topic()
    await _append(store, topic, "a", 0, 3)
    with pytest.raises(ConcurrencyConflict):
        await _append(store, topic, "a", 2, 1)
    loaded = await store.load("space-a")
    assert [r.version for r in loaded] == [1, 2, 3]
    assert [r.payload.title for r in loaded] == ["title 0", "title 1", "title 2"]
    assert all(r.envelope.producer == "test" and r.envelope.correlation_id == "corr-1" for r in loaded)
    assert await store.pool.fetchval(f"SELECT count(*) FROM {store.schema}.outbox") == 3


async def test_a_duplicate_request_writes_nothing(store):
    topic = _topic()
    record = IdempotencyRecord("user-1:Join:r1", "fp", b"first")
    await _append(store, topic, "b", 0, 1, idempotency=[record])
    with pytest.raises(DuplicateRequest):
        await _append(store, topic, "b", 1, 1, idempotency=[record])
    assert [r.version for r in await store.load("space-b")] == [1]
    stored = await store.stored_response("user-1:Join:r1")
    assert stored is not None and stored.response == b"first"


async def test_a_failure_under_the_streams_lock_writes_nothing_and_frees_the_lock(store):
    """`exclusive` begins and locks in one round trip and commits on its own: an exception inside it
    rolls back what was appended, the connection goes back to the pool with no transaction open,
    and the lock is free for the next writer at once."""
    topic = _topic()
    await _append(store, topic, "x", 0, 1)

    class Refused(Exception):
        pass

    with pytest.raises(Refused):
        async with store.exclusive("space-x") as conn:
            assert conn.is_in_transaction()
            await _append(store, topic, "x", 1, 2, conn=conn)
            raise Refused
    assert [r.version for r in await store.load("space-x")] == [1]
    async with asyncio.timeout(5), store.exclusive("space-x") as conn:  # a lock left held: a hang
        await _append(store, topic, "x", 1, 1, conn=conn)
    assert [r.version for r in await store.load("space-x")] == [1, 2]
    key = store.lock_key("space-x") & 0xFFFFFFFFFFFFFFFF
    held = await store.pool.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1"
        " AND classid::bigint = $1 AND objid::bigint = $2",
        key >> 32,
        key & 0xFFFFFFFF,
    )
    assert held == 0
    idle_in_transaction = await store.pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND state LIKE 'idle in transaction%' AND query LIKE '%pg_advisory_xact_lock(%'"
    )
    assert idle_in_transaction == 0


async def _read_topic(settings, topic: TopicSpec, expected: int, timeout: float = 20.0):
    reader = make_reader(settings, "test-reader")
    await reader.start()
    try:
        parts = await partitions_of(reader, topic.name)
        reader.assign(parts)
        await reader.seek_to_beginning(*parts)
        records = []
        async with asyncio.timeout(timeout):
            while len(records) < expected:
                batch = await reader.getmany(timeout_ms=200)
                for recs in batch.values():
                    records.extend(recs)
        return records
    finally:
        await reader.stop()


async def test_relay_publishes_in_stream_order_and_only_one_relay_is_active(store, settings, pool):
    topic = await _made_topic(settings)
    relays = [OutboxRelay(settings, pool, store.schema, (topic,)) for _ in range(2)]
    for relay in relays:
        await relay.start()
    try:
        for space in ("x", "y", "z"):
            for version in range(0, 20, 5):
                await _append(store, topic, space, version, 5)
        records = await _read_topic(settings, topic, 60)
        assert sum(r.active for r in relays) == 1
        by_space: dict[str, list[int]] = {}
        for record in records:
            envelope, _ = decode(record.value)
            assert record.key.decode() == envelope.space_id
            by_space.setdefault(envelope.space_id, []).append(envelope.stream_version)
        assert by_space == {s: list(range(1, 21)) for s in ("x", "y", "z")}
        async with asyncio.timeout(10):
            while await pool.fetchval(f"SELECT count(*) FROM {store.schema}.outbox"):
                await asyncio.sleep(0.05)
    finally:
        for relay in relays:
            await relay.stop()


async def test_a_backlog_goes_out_two_batches_at_a_time_in_stream_order_and_a_late_commit_is_not_skipped(
    store, settings, pool
):
    topic = await _made_topic(settings)
    # A transaction that takes its outbox positions first and commits last: below every row the
    # relay sends before it.
    async with store.exclusive("space-late") as conn:
        await _append(store, topic, "late", 0, 5, conn=conn)
        for space in "abcdefghij":  # a backlog of 200, ten full batches of 20
            for version in range(0, 20, 5):
                await _append(store, topic, space, version, 5)
        relay = OutboxRelay(settings, pool, store.schema, (topic,), batch_size=20)
        await relay.start()
        try:
            await _read_topic(settings, topic, 200)
        except BaseException:
            await relay.stop()
            raise
    try:
        await _append(store, topic, "late", 5, 5)
        records = await _read_topic(settings, topic, 210)
        by_space: dict[str, list[int]] = {}
        for record in records:
            envelope, _ = decode(record.value)
            by_space.setdefault(envelope.space_id, []).append(envelope.stream_version)
        assert by_space == {"late": list(range(1, 11))} | {s: list(range(1, 21)) for s in "abcdefghij"}
        async with asyncio.timeout(10):
            while await pool.fetchval(f"SELECT count(*) FROM {store.schema}.outbox"):
                await asyncio.sleep(0.05)
        assert relay.published == 210
    finally:
        await relay.stop()


async def test_a_commit_notified_while_the_relay_publishes_a_batch_is_published_without_a_poll(
    store, settings, pool, database_url
):
    topic = await _made_topic(settings)
    await _append(store, topic, "n", 0, 1)
    # Hold the first row, so the relay's delete of it waits: its batch is out while event 2 commits.
    holder = await asyncpg.connect(database_url)
    held = holder.transaction()
    await held.start()
    await holder.fetch(f"SELECT position FROM {store.schema}.outbox FOR UPDATE")
    relay = OutboxRelay(settings, pool, store.schema, (topic,), poll_interval=3600)  # never polls here
    await relay.start()
    try:
        await _read_topic(settings, topic, 1)  # sent; the relay now waits on the held row
        await _append(store, topic, "n", 1, 1)  # its NOTIFY arrives during that batch
        await asyncio.sleep(0.2)
        await held.commit()
        records = await _read_topic(settings, topic, 2, timeout=10)
        assert [decode(r.value)[0].stream_version for r in records] == [1, 2]
    finally:
        await holder.close()
        await relay.stop()


async def test_a_relay_waiting_for_its_topics_stops_at_once_instead_of_draining(store, settings, pool):
    missing = _topic()  # never made: the relay waits for it, holding the lock, and publishes nothing
    await _append(store, missing, "w", 0, 3)
    relay = OutboxRelay(settings, pool, store.schema, (missing,))
    await relay.start()
    async with asyncio.timeout(30):
        while not relay.active:
            await asyncio.sleep(0.05)
    # A drain this long would outlast the test's timeout: a relay with nowhere to publish skips it.
    await relay.stop(drain_seconds=3600)
    assert not relay.publishing
    assert await pool.fetchval(f"SELECT count(*) FROM {store.schema}.outbox") == 3  # for the next relay


async def test_projection_ignores_duplicates_and_reports_caught_up(store, settings, pool):
    topic = await _made_topic(settings)
    relay = OutboxRelay(settings, pool, store.schema, (topic,))
    await relay.start()
    await _append(store, topic, "d", 0, 4)
    await _read_topic(settings, topic, 4)
    # Publish everything a second time, as a relay that crashed before deleting its rows would.
    await pool.execute(
        f"INSERT INTO {store.schema}.outbox (global_position, topic, key, envelope)"
        f" SELECT global_position, topic, record_key, envelope FROM {store.schema}.events"
        " WHERE topic = $1 ORDER BY global_position",
        topic.name,
    )
    await _read_topic(settings, topic, 8)
    await relay.stop()

    view = TitlesView(topic)
    runner = ProjectionRunner(settings, view)
    await runner.start()
    try:
        async with asyncio.timeout(20):
            await runner.caught_up.wait()
        assert view.titles == {"d": ["title 0", "title 1", "title 2", "title 3"]}
        assert runner.stats.duplicates == 4
        assert runner.lag() == 0
    finally:
        await runner.stop()


async def test_projection_waits_for_missing_versions_then_applies_in_order(settings):
    topic = _topic(partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()

    def envelope(version: int) -> bytes:
        return wrap(
            _event(version - 1),
            producer="test",
            stream_id="space-g",
            space_id="g",
            version=version,
            occurred_at=datetime.now(UTC),
            causation=CAUSE,
        ).SerializeToString()

    await create_topics(settings.kafka_bootstrap_servers, (topic, DEAD_LETTER), 1, 1)
    view = TitlesView(topic)
    runner = ProjectionRunner(settings, view)
    dead_letters = REGISTRY.get_sample_value("podium_dead_letters_total", {"consumer": view.name}) or 0
    await runner.start()
    try:
        await producer.send_and_wait(topic.name, envelope(1), key=b"g")
        await producer.send_and_wait(topic.name, envelope(3), key=b"g")
        await producer.send_and_wait(topic.name, b"not an envelope", key=b"g")
        await asyncio.sleep(0.5)
        assert view.titles.get("g") == ["title 0"]
        await producer.send_and_wait(topic.name, envelope(2), key=b"g")
        async with asyncio.timeout(10):
            while view.titles.get("g") != ["title 0", "title 1", "title 2"]:
                await asyncio.sleep(0.05)
        assert runner.stats.dead_lettered == 1
        assert (
            REGISTRY.get_sample_value("podium_dead_letters_total", {"consumer": view.name})
            == dead_letters + 1
        )
        assert not runner.log_loss.lost  # a hole that fills is no lost log
    finally:
        await runner.stop()
        await producer.stop()


async def test_a_hole_that_does_not_fill_is_a_lost_log_and_its_partition_is_not_read_on(settings):
    """Versions 1, 3 and 4 of a stream, and 2 never comes: the runner does not skip to 3. After
    `hole_seconds` with the partition read to its end it reports a lost log and stops reading."""
    topic = _topic(partitions=1)
    await create_topics(settings.kafka_bootstrap_servers, (topic,), 1, 1)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()

    def envelope(version: int, stream: str = "h") -> bytes:
        return wrap(
            _event(version - 1),
            producer="test",
            stream_id=f"space-{stream}",
            space_id=stream,
            version=version,
            occurred_at=datetime.now(UTC),
            causation=CAUSE,
        ).SerializeToString()

    view = TitlesView(topic)
    runner = ProjectionRunner(settings, view, hole_seconds=0.5)
    await runner.start()
    try:
        for version in (1, 3, 4):
            await producer.send_and_wait(topic.name, envelope(version), key=b"h")
        async with asyncio.timeout(15):
            while not runner.log_loss.lost:
                await asyncio.sleep(0.05)
        [loss] = runner.log_loss.losses.values()
        assert (loss.topic, loss.partition) == (topic.name, 0)
        assert "hole" in loss.reason
        assert view.titles["h"] == ["title 0"]  # nothing folded past the hole
        # The partition is no longer read: a later event of another stream is not applied either,
        # while a second runner reading the same partition, with patience, applies it.
        await producer.send_and_wait(topic.name, envelope(1, "other"), key=b"other")
        witness = TitlesView(topic)
        patient = ProjectionRunner(settings, witness, client_id="patient")
        await patient.start()
        try:
            async with asyncio.timeout(15):
                while "other" not in witness.titles:
                    await asyncio.sleep(0.05)
        finally:
            await patient.stop()
        assert "other" not in view.titles
    finally:
        await runner.stop()
        await producer.stop()


async def _batched_partition(settings, *, single: bool, batched: int):
    """A one-partition topic holding a lone record (if `single`) and then one batch of `batched`
    records; returns it, assigned to a reader (the caller stops the reader)."""
    topic = _topic(partitions=1)
    await create_topics(settings.kafka_bootstrap_servers, (topic,), 1, 1)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        if single:
            await producer.send_and_wait(topic.name, b"single", partition=0)
        batch = producer.create_batch()
        for i in range(batched):
            batch.append(key=None, value=b"in a batch %d" % i, timestamp=None)
        batch.close()
        await (await producer.send_batch(batch, topic.name, partition=0))
    finally:
        await producer.stop()
    reader = make_reader(settings, f"test-log-end-{topic.name}")
    await reader.start()
    parts = await partitions_of(reader, topic.name)
    reader.assign(parts)
    return reader, parts


async def test_log_end_offsets_count_every_record_of_a_multi_record_batch(settings):
    reader, parts = await _batched_partition(settings, single=True, batched=3)
    try:
        # Tansu reports 2 here (the last batch's base offset + 1); Apache Kafka reports 4.
        assert await log_end_offsets(reader, parts) == {parts[0]: 4}
    finally:
        await reader.stop()


class _SlowFetches:
    """A reader whose first fetches come back empty, as fetches do on a busy machine."""

    def __init__(self, reader, empty_fetches: int):
        self.reader = reader
        self.empty_fetches = empty_fetches

    def __getattr__(self, name):
        return getattr(self.reader, name)

    async def getmany(self, *parts, timeout_ms=0, **options):
        if self.empty_fetches > 0:
            self.empty_fetches -= 1
            return {}
        return await self.reader.getmany(*parts, timeout_ms=timeout_ms, **options)


async def test_log_end_offsets_are_not_cut_short_by_a_slow_fetch(settings):
    reader, parts = await _batched_partition(settings, single=False, batched=5)
    try:
        # Two empty fetches before the records come: the end is still where the records say.
        assert await log_end_offsets(_SlowFetches(reader, 2), parts) == {parts[0]: 5}
    finally:
        await reader.stop()
