"""The event log end to end: event store, outbox relay and projection runner
against a real PostgreSQL and a real Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from libs.config.settings import PodiumSettings
from libs.events.envelope import Causation, decode, wrap
from libs.events.kafka import log_end_offsets, make_reader, partitions_of
from libs.events.topics import DEAD_LETTER, TopicSpec, ensure_topics
from libs.eventstore.migrations import apply_migrations
from libs.eventstore.relay import OutboxRelay, reseed
from libs.eventstore.schema import migrate
from libs.eventstore.store import (
    ConcurrencyConflict,
    DuplicateRequest,
    EventStore,
    IdempotencyRecord,
    NewEvent,
)
from libs.projection.runner import ConsumedEvent, ProjectionRunner
from podium.room.v1 import room_events_pb2

pytestmark = pytest.mark.integration

CAUSE = Causation("user-1", "corr-1", "cause-1")


def _topic() -> TopicSpec:
    return TopicSpec(f"test.events.{uuid.uuid4().hex[:8]}", "test topic")


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
async def store(pool):
    schema = f"t_{uuid.uuid4().hex[:10]}"
    await migrate(pool, schema)
    return EventStore(pool, schema, producer="test")


@pytest.fixture
def settings(broker, database_url) -> PodiumSettings:
    return PodiumSettings(
        database_url=database_url, kafka_bootstrap_servers=broker.bootstrap, topic_partitions=3
    )


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
    topic = _topic()
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
        assert (
            await pool.fetchval(
                f"SELECT published_count FROM {store.schema}.relay_state WHERE topic = $1", topic.name
            )
            == 60
        )
    finally:
        for relay in relays:
            await relay.stop()


async def test_projection_ignores_duplicates_and_reports_caught_up(store, settings, pool):
    topic = _topic()
    relay = OutboxRelay(settings, pool, store.schema, (topic,))
    await relay.start()
    await _append(store, topic, "d", 0, 4)
    await _read_topic(settings, topic, 4)
    # Publish everything a second time, as a relay that crashed before deleting its rows would.
    await reseed(pool, store.schema, topic.name)
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
    topic = _topic()
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

    await ensure_topics(settings.kafka_bootstrap_servers, (topic, DEAD_LETTER), 1, 1)
    view = TitlesView(topic)
    runner = ProjectionRunner(settings, view, rescan_cooldown=0.2)
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
    finally:
        await runner.stop()
        await producer.stop()


async def test_relay_reseeds_a_broker_that_lost_its_log(store, settings, pool, broker):
    topic = _topic()
    relay = OutboxRelay(settings, pool, store.schema, (topic,), verify_interval=0.5)
    await relay.start()
    try:
        await _append(store, topic, "r", 0, 10)
        await _read_topic(settings, topic, 10)
        await broker.restart()  # in-memory broker: every topic and record is gone
        async with asyncio.timeout(30):
            while relay.reseeds == 0:
                await asyncio.sleep(0.1)
        await _append(store, topic, "r", 10, 2)
        records = await _read_topic(settings, topic, 12, timeout=30)
        versions = [decode(r.value)[0].stream_version for r in records]
        assert sorted(set(versions)) == list(range(1, 13))
    finally:
        await relay.stop()


async def _batched_partition(settings, *, single: bool, batched: int):
    """A one-partition topic holding a lone record (if `single`) and then one batch of `batched`
    records; returns it, assigned to a reader (the caller stops the reader)."""
    topic = _topic()
    await ensure_topics(settings.kafka_bootstrap_servers, (topic,), 1, 1)
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


async def test_no_client_creates_a_topic_by_writing_to_it(settings):
    """A producer writing to a topic that is gone gets an error; the topic is not made with the
    broker's default partition count behind ensure_topics' back."""
    name = f"podium.test.absent.{uuid.uuid4().hex[:8]}"
    # Any aiokafka client in a process that imported libs.events.kafka; a short timeout to fail fast.
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=2000)
    await producer.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        with pytest.raises(KafkaError):
            await (await producer.send(name, b"nobody made this topic", key=b"k"))
        assert name not in await admin.list_topics()
    finally:
        await admin.close()
        await producer.stop()


async def test_a_producer_with_metadata_from_before_a_lost_log_waits_for_the_topics_owner(private_broker):
    """The dev broker makes a missing topic when a producer writes to it, with its own default
    partition count. A producer that knew the topic before the broker lost it must not write until
    the topic's owner has made it again, with its partitions, and then every record gets there."""
    name = f"podium.test.lost.{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(name, "a topic the broker will lose")
    producer = AIOKafkaProducer(bootstrap_servers=private_broker.bootstrap, request_timeout_ms=10000)
    await producer.start()  # before the topic: it asks for the topic by name from then on
    await ensure_topics(private_broker.bootstrap, (spec,), 6, 1)
    admin = AIOKafkaAdminClient(bootstrap_servers=private_broker.bootstrap)
    try:
        for partition in range(6):
            await (await producer.send(name, b"before", partition=partition))
        private_broker.kill()
        private_broker.launch()  # empty, and the producer's next write is the first it hears of it
        await asyncio.sleep(1.0)
        sent = [await producer.send(name, b"after", partition=partition) for partition in range(6)]
        await asyncio.sleep(1.0)
        await admin.start()
        assert name not in await admin.list_topics()  # the producer made nothing
        await ensure_topics(private_broker.bootstrap, (spec,), 6, 1)  # the owner makes it
        delivered = await asyncio.wait_for(asyncio.gather(*sent), 15)
        assert sorted(r.partition for r in delivered) == list(range(6))
        described = await admin.describe_topics([name])
        assert len(described[0]["partitions"]) == 6
    finally:
        await admin.close()
        await producer.stop()


async def test_the_relay_does_not_mistake_batched_records_for_a_lost_log(store, settings, pool):
    topic = _topic()
    relay = OutboxRelay(settings, pool, store.schema, (topic,), verify_interval=0.1)
    await relay.start()
    try:
        for version in range(0, 40, 10):  # ten events of one Space at a time: multi-record batches
            await _append(store, topic, "batched", version, 10)
        await _read_topic(settings, topic, 40)
        await asyncio.sleep(1.0)  # several verifications of the log
        assert relay.reseeds == 0
        reader = make_reader(settings, "test-count")
        await reader.start()
        try:
            parts = await partitions_of(reader, topic.name)
            reader.assign(parts)
            assert sum((await log_end_offsets(reader, parts)).values()) == 40  # nothing published twice
        finally:
            await reader.stop()
    finally:
        await relay.stop()


async def test_a_start_with_nothing_to_migrate_runs_no_step_and_a_new_step_runs_once(database_server):
    pool = await asyncpg.create_pool(database_server.url, min_size=1, max_size=2)
    schema = f"migrations_{uuid.uuid4().hex[:8]}"
    try:
        steps = ["CREATE TABLE {s}.things (id int PRIMARY KEY)"]
        assert await apply_migrations(pool, schema, "things", steps) == 1
        assert await apply_migrations(pool, schema, "things", steps) == 0  # every later start
        steps.append("INSERT INTO {s}.things VALUES (1)")
        assert await apply_migrations(pool, schema, "things", steps) == 1
        assert await apply_migrations(pool, schema, "things", steps) == 0
        assert await pool.fetchval(f"SELECT count(*) FROM {schema}.things") == 1  # the insert ran once
        applied = await pool.fetch(f"SELECT component, step FROM {schema}.schema_migrations ORDER BY step")
        assert [(r["component"], r["step"]) for r in applied] == [("things", 1), ("things", 2)]
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()
