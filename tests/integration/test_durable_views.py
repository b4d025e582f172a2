"""Views that remember where they were: the durable runner against real PostgreSQL and a broker.

A durable view writes its rows and its position in one transaction, resumes from that position
after a restart, applies an event the log holds twice once, has one writer among replicas, and
skips events of types it does not know without holding back the rest of their stream.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from libs.config.settings import PodiumSettings
from libs.events.envelope import Causation, EventEnvelope, wrap
from libs.events.topics import DEAD_LETTER, TopicSpec, create_topics
from libs.migrations.check import SchemaNotMigrated
from libs.projection.durable import DurableProjectionRunner
from libs.projection.runner import ConsumedEvent, ProjectionRunner
from podium.room.v1 import room_events_pb2
from tests.support.schemas import migrated_schema

pytestmark = pytest.mark.integration

CAUSE = Causation("user-1", "corr-1", "cause-1")


def _envelope(space: str, version: int, *, event_type: str | None = None) -> bytes:
    envelope = wrap(
        room_events_pb2.SpaceUpdated(space_id=space, title=f"title {version}", changed_fields=["title"]),
        producer="test",
        stream_id=f"space-{space}",
        space_id=space,
        version=version,
        occurred_at=datetime.now(UTC),
        causation=CAUSE,
    )
    if event_type is not None:  # an event a newer producer writes, that this code has never heard of
        envelope.event_type = event_type
        envelope.payload.type_url = f"type.googleapis.com/{event_type}"
        envelope.payload.value = b"\x0a\x03new"
    return envelope.SerializeToString()


class TitlesTable:
    """A durable view: every title applied, one row per event."""

    name = "titles"
    version = 1
    tables = ("titles_v1",)
    #: What a revision of its service's history would create (a test's view has no history).
    ddl = "CREATE TABLE {s}.titles_v1 (space_id text, version bigint, title text, PRIMARY KEY (space_id, version))"

    def __init__(self, topic: TopicSpec, schema: str):
        self.topics = (topic,)
        self.schema = schema
        self.applied = 0

    async def apply(self, conn: asyncpg.Connection, events) -> None:
        self.applied += len(events)
        await conn.executemany(
            f"INSERT INTO {self.schema}.titles_v1 VALUES ($1, $2, $3)",
            [(e.envelope.space_id, e.envelope.stream_version, e.payload.title) for e in events],
        )


class TitlesInMemory:
    name = "titles-in-memory"

    def __init__(self, topic: TopicSpec):
        self.topics = (topic,)
        self.titles: list[str] = []

    def apply(self, event: ConsumedEvent) -> None:
        self.titles.append(event.payload.title)


@pytest.fixture
async def pool(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture
async def schema(pool, database_url):
    """A schema with the tracking tables (presence's history: no event store) and the titles view's."""
    name = await migrated_schema(database_url, "presence", "dv")
    await pool.execute(TitlesTable.ddl.format(s=name))
    yield name
    await pool.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
async def topic(broker):
    spec = TopicSpec(f"test.durable.{uuid.uuid4().hex[:8]}", "test topic", partitions=2)
    await create_topics(broker.bootstrap, (spec, DEAD_LETTER), 2, 1)
    return spec


@pytest.fixture
async def producer(broker):
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
def settings(broker, database_url) -> PodiumSettings:
    return PodiumSettings(kafka_bootstrap_servers=broker.bootstrap, database_url=database_url)


async def _send(producer, topic: TopicSpec, space: str, versions, **kw) -> None:
    for version in versions:
        await producer.send_and_wait(topic.name, _envelope(space, version, **kw), key=space.encode())


async def _rows(pool, schema: str) -> list[tuple[str, int]]:
    rows = await pool.fetch(f"SELECT space_id, version FROM {schema}.titles_v1 ORDER BY space_id, version")
    return [(r["space_id"], r["version"]) for r in rows]


async def _until(predicate, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


async def test_a_restarted_view_resumes_from_its_stored_position(settings, pool, schema, topic, producer):
    await _send(producer, topic, "a", range(1, 6))
    await _send(producer, topic, "b", range(1, 4))
    first = TitlesTable(topic, schema)
    runner = DurableProjectionRunner(settings, pool, schema, first)
    await runner.start()
    async with asyncio.timeout(20):
        await runner.caught_up.wait()
    assert first.applied == 8
    await runner.stop()

    await _send(producer, topic, "a", range(6, 8))  # while the view is down
    second = TitlesTable(topic, schema)
    runner = DurableProjectionRunner(settings, pool, schema, second)
    await runner.start()
    try:
        async with asyncio.timeout(20):
            await runner.caught_up.wait()
        assert second.applied == 2  # only what it had not applied: nothing read again from offset 0
        assert await _rows(pool, schema) == [("a", v) for v in range(1, 8)] + [("b", v) for v in range(1, 4)]
    finally:
        await runner.stop()


async def test_caught_up_waits_for_the_last_record_of_a_batch_not_the_reported_end(
    settings, pool, schema, topic, broker
):
    # The dev broker reports a partition's end as its last batch's base offset + 1 (decision 0007):
    # a view that trusted it would say it had caught up (SERVING) with most of a batch unread.
    # One batch larger than a fetch hands out at once (5,000 records), so the reader stops inside it.
    batching = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=1000, max_batch_size=4 << 20)
    await batching.start()
    try:
        sends = [await batching.send(topic.name, _envelope("e", v), key=b"e") for v in range(1, 6001)]
        await asyncio.gather(*sends)
    finally:
        await batching.stop()
    view = TitlesTable(topic, schema)
    runner = DurableProjectionRunner(settings, pool, schema, view, catch_up_batch=1000)
    await runner.start()
    try:
        async with asyncio.timeout(20):
            await runner.caught_up.wait()
        assert view.applied == 6000
    finally:
        await runner.stop()


async def test_a_view_whose_tables_no_migration_made_refuses_to_start_and_runs_no_ddl(
    settings, pool, schema, topic
):
    view = TitlesTable(topic, schema)
    view.version, view.tables = 2, ("titles_v2",)  # a new version, whose revision was not run
    runner = DurableProjectionRunner(settings, pool, schema, view)
    with pytest.raises(SchemaNotMigrated, match=r"lacks titles_v2: run `podium migrate upgrade`"):
        await runner.start()
    assert not await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.titles_v2")


async def test_an_event_the_log_holds_twice_is_applied_once_even_across_a_restart(
    settings, pool, schema, topic, producer
):
    await _send(producer, topic, "d", range(1, 4))
    view = TitlesTable(topic, schema)
    runner = DurableProjectionRunner(settings, pool, schema, view)
    await runner.start()
    async with asyncio.timeout(20):
        await runner.caught_up.wait()
    await runner.stop()
    # A relay that crashed before recording what it published sends it again, then goes on.
    await _send(producer, topic, "d", range(1, 5))
    view = TitlesTable(topic, schema)
    runner = DurableProjectionRunner(settings, pool, schema, view)
    await runner.start()
    try:
        async with asyncio.timeout(20):
            await runner.caught_up.wait()
        assert view.applied == 1 and runner.stats.duplicates == 3
        assert await _rows(pool, schema) == [("d", v) for v in range(1, 5)]
    finally:
        await runner.stop()


async def test_one_replica_writes_the_other_follows_and_takes_over(settings, pool, schema, topic, producer):
    await _send(producer, topic, "r", range(1, 4))
    first_view, second_view = TitlesTable(topic, schema), TitlesTable(topic, schema)
    first = DurableProjectionRunner(settings, pool, schema, first_view, follow_seconds=0.1)
    await first.start()
    async with asyncio.timeout(20):
        await first.caught_up.wait()
    second = DurableProjectionRunner(settings, pool, schema, second_view, follow_seconds=0.1)
    await second.start()
    try:
        async with asyncio.timeout(20):
            await second.caught_up.wait()  # caught up by reading the writer's stored positions
        assert first.writing and not second.writing and second_view.applied == 0
        await first.stop()  # its session ends: the lock is free
        await _send(producer, topic, "r", range(4, 6))
        await _until(lambda: _has(pool, schema, ("r", 5)))
        assert second.writing and second_view.applied == 2
        assert await _rows(pool, schema) == [("r", v) for v in range(1, 6)]
    finally:
        await second.stop()


async def _has(pool, schema, row) -> bool:
    return row in await _rows(pool, schema)


@pytest.mark.parametrize("durable", [False, True], ids=["in-memory", "durable"])
async def test_an_unknown_event_type_mid_stream_is_skipped_and_holds_nothing_back(
    settings, pool, schema, topic, producer, durable
):
    """A rolling upgrade: the producer writes a new type of event before its consumers know it."""
    await _send(producer, topic, "u", [1])
    await _send(producer, topic, "u", [2], event_type="podium.room.v1.SomethingNewHappened")
    await _send(producer, topic, "u", [3, 4, 5])
    if durable:
        view = TitlesTable(topic, schema)
        runner = DurableProjectionRunner(settings, pool, schema, view)
    else:
        view = TitlesInMemory(topic)
        runner = ProjectionRunner(settings, view)
    await runner.start()
    try:
        async with asyncio.timeout(20):
            await runner.caught_up.wait()
        if durable:
            assert await _rows(pool, schema) == [("u", 1), ("u", 3), ("u", 4), ("u", 5)]
        else:
            assert view.titles == ["title 1", "title 3", "title 4", "title 5"]
        assert runner.stats.skipped == 1
        assert (runner.stats.held, runner.stats.dead_lettered) == (0, 0)
        assert not runner.log_loss.lost
    finally:
        await runner.stop()


def test_the_unknown_event_of_these_tests_is_one_this_code_does_not_know():
    from libs.events.envelope import unwrap
    from libs.events.registry import UnknownEventType

    envelope = EventEnvelope.FromString(_envelope("x", 1, event_type="podium.room.v1.SomethingNewHappened"))
    with pytest.raises(UnknownEventType):
        unwrap(envelope)


async def test_status_shows_each_view_and_a_requested_rebuild_is_carried_out_at_the_next_start(
    settings, pool, schema, topic, producer
):
    from libs.projection.operations import request_rebuild, status

    await _send(producer, topic, "o", range(1, 5))
    view = TitlesTable(topic, schema)
    runner = DurableProjectionRunner(settings, pool, schema, view)
    await runner.start()
    async with asyncio.timeout(20):
        await runner.caught_up.wait()
    [mine] = [s for s in await status(pool, settings) if s.schema == schema]
    assert (mine.view, mine.version, mine.applied, mine.lag, mine.rebuild_requested) == (
        "titles",
        1,
        4,
        0,
        False,
    )
    await _send(producer, topic, "o", [5])
    await runner.stop()
    [mine] = [s for s in await status(pool, settings) if s.schema == schema]
    assert mine.lag == 1  # written while the view was down

    assert await request_rebuild(pool, schema, "titles") == [("titles", 1)]
    assert [s.rebuild_requested for s in await status(pool, settings) if s.schema == schema] == [True]
    view = TitlesTable(topic, schema)
    runner = DurableProjectionRunner(settings, pool, schema, view)
    await runner.start()
    try:
        async with asyncio.timeout(20):
            await runner.caught_up.wait()
        assert view.applied == 5  # everything again, from the beginning of the log
        assert await _rows(pool, schema) == [("o", v) for v in range(1, 6)]
        [mine] = [s for s in await status(pool, settings) if s.schema == schema]
        assert (mine.applied, mine.lag, mine.rebuild_requested) == (5, 0, False)
    finally:
        await runner.stop()
    assert await request_rebuild(pool, schema, "no-such-view") == []


class FailsOnce(TitlesTable):
    """Fails the transaction of its second batch, after writing part of it (as a lost connection
    would), then works."""

    def __init__(self, topic, schema):
        super().__init__(topic, schema)
        self.batches = 0
        self.resets = 0

    async def apply(self, conn, events) -> None:
        self.batches += 1
        await super().apply(conn, events)
        if self.batches == 2:
            raise ConnectionError("the database went away mid-transaction")

    def reset(self) -> None:
        self.resets += 1


async def test_a_failed_transaction_is_applied_again_from_the_stored_position(
    settings, pool, schema, topic, producer
):
    await _send(producer, topic, "f", range(1, 4))
    view = FailsOnce(topic, schema)
    runner = DurableProjectionRunner(settings, pool, schema, view, retry_seconds=0.1)
    await runner.start()
    try:
        async with asyncio.timeout(20):
            await runner.caught_up.wait()
        await _send(producer, topic, "f", range(4, 7))  # the batch whose transaction fails
        await _until(lambda: _has(pool, schema, ("f", 6)))
        await _send(producer, topic, "f", [7])  # and the view goes on
        await _until(lambda: _has(pool, schema, ("f", 7)))
        assert await _rows(pool, schema) == [("f", v) for v in range(1, 8)]  # each once
        assert view.resets == 1 and runner.writing
    finally:
        await runner.stop()


async def test_a_writer_whose_lock_session_died_stops_writing_before_another_takes_over(
    settings, pool, schema, topic, producer
):
    """The fence: a database that dropped the writer's lock session (a restart, a network cut)
    dropped its lock too, and another replica may take it. The old writer's next transaction
    fails its fence and rolls back, and it starts over as a follower; every event is applied once."""
    await _send(producer, topic, "w", range(1, 3))
    first_view, second_view = TitlesTable(topic, schema), TitlesTable(topic, schema)
    first = DurableProjectionRunner(settings, pool, schema, first_view, follow_seconds=0.1, retry_seconds=0.1)
    await first.start()
    async with asyncio.timeout(20):
        await first.caught_up.wait()
    second = DurableProjectionRunner(
        settings, pool, schema, second_view, follow_seconds=0.1, retry_seconds=0.1
    )
    await second.start()
    try:
        async with asyncio.timeout(20):
            await second.caught_up.wait()
        assert first.writing and not second.writing
        lock_session = await first._lock_conn.fetchval("SELECT pg_backend_pid()")
        await pool.execute("SELECT pg_terminate_backend($1)", lock_session)
        await _until(lambda: _is(lambda: second.writing))  # it took the lock over
        await _send(producer, topic, "w", range(3, 6))
        await _until(lambda: _has(pool, schema, ("w", 5)))
        assert await _rows(pool, schema) == [("w", v) for v in range(1, 6)]  # each once
        # The old writer may have tried the new batch too; its fence rolled that back.
        assert second_view.applied == 3 and not first.writing
    finally:
        await second.stop()
        await first.stop()


async def test_the_writers_lock_takes_no_connection_from_the_pool(
    settings, database_url, schema, topic, producer
):
    """The lock is held on a session of its own for as long as the writer writes. Held on one of the
    pool's connections, it would leave the pool short: views waiting inside their transactions for
    a connection to react with could take the rest, and every command would wait for ever."""
    one = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    runner = DurableProjectionRunner(settings, one, schema, TitlesTable(topic, schema), follow_seconds=0.1)
    try:
        await _send(producer, topic, "p", range(1, 3))
        await runner.start()
        async with asyncio.timeout(20):
            await runner.caught_up.wait()  # its transactions had the pool's only connection
        async with asyncio.timeout(5), one.acquire() as conn:  # and gave it back
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                )
                == 0
            )
        await _send(producer, topic, "p", range(3, 5))
        await _until(lambda: _has(one, schema, ("p", 4)))
    finally:
        await runner.stop()
        await one.close()


async def _is(predicate) -> bool:
    return predicate()


class TitlesCache:
    """An in-memory cache in front of `TitlesTable`: each Space's latest title."""

    name = "titles-cache"

    def __init__(self, topic: TopicSpec, schema: str):
        self.topics = (topic,)
        self.schema = schema
        self.titles: dict[str, str] = {}
        self.applied = 0

    async def load(self, conn: asyncpg.Connection) -> dict:
        rows = await conn.fetch(
            f"SELECT DISTINCT ON (space_id) space_id, title FROM {self.schema}.titles_v1 "
            "ORDER BY space_id, version DESC"
        )
        self.titles = {r["space_id"]: r["title"] for r in rows}
        return {("test", f"space-{space}"): space for space in self.titles}

    def apply(self, event: ConsumedEvent) -> None:
        self.applied += 1
        self.titles[event.envelope.space_id] = event.payload.title

    def holds(self, space_id: str) -> bool:
        return space_id in self.titles


async def test_a_cache_starts_from_the_views_rows_and_positions_and_reads_the_log_on_itself(
    settings, pool, schema, topic, producer
):
    from libs.projection.durable import CacheRunner

    await _send(producer, topic, "a", range(1, 6))
    await _send(producer, topic, "b", range(1, 4))
    writer = DurableProjectionRunner(settings, pool, schema, TitlesTable(topic, schema))
    await writer.start()
    async with asyncio.timeout(20):
        await writer.caught_up.wait()
    await writer.stop()  # the rows and positions stay; nobody writes them on from here

    await _send(producer, topic, "a", [6, 7])
    await _send(producer, topic, "a", [3])  # published again: the snapshot already holds it
    await _send(producer, topic, "x", [4])  # a stream the snapshot does not hold, met midway
    await _send(producer, topic, "c", [1])  # a new Space
    cache = TitlesCache(topic, schema)
    runner = CacheRunner(settings, pool, schema, TitlesTable(topic, schema), cache)
    await runner.start()
    try:
        async with asyncio.timeout(20):
            await runner.caught_up.wait()
        # From the stored positions, not offset 0: the 8 events the rows hold are not read again.
        assert cache.applied == 4 and runner.stats.duplicates == 1
        assert cache.titles == {"a": "title 7", "b": "title 3", "x": "title 4", "c": "title 1"}
        assert runner.stats.held == 0
        assert not runner.log_loss.lost
        await _send(producer, topic, "b", [4])  # and it goes on reading the log by itself
        await _until(lambda: _equals(cache.titles.get("b"), "title 4"))
        assert await _rows(pool, schema) == [("a", v) for v in range(1, 6)] + [("b", v) for v in range(1, 4)]
    finally:
        await runner.stop()


async def _equals(value, expected) -> bool:
    return value == expected


async def test_a_cache_does_not_start_from_rows_an_operator_asked_to_rebuild(
    settings, pool, schema, topic, producer
):
    """The rows are suspect once a rebuild is asked for: the cache waits until the writer has
    emptied them, then starts from what the writer builds again."""
    from libs.projection.durable import CacheRunner
    from libs.projection.operations import request_rebuild

    await _send(producer, topic, "a", range(1, 4))
    writer = DurableProjectionRunner(settings, pool, schema, TitlesTable(topic, schema))
    await writer.start()
    async with asyncio.timeout(20):
        await writer.caught_up.wait()
    await writer.stop()
    await pool.execute(f"UPDATE {schema}.titles_v1 SET title = 'corrupt'")  # what the rebuild is for
    assert await request_rebuild(pool, schema, "titles") == [("titles", 1)]

    cache = TitlesCache(topic, schema)
    runner = CacheRunner(settings, pool, schema, TitlesTable(topic, schema), cache)
    starting = asyncio.create_task(runner.start())
    try:
        await asyncio.sleep(0.5)  # no writer yet: the cache has not loaded the suspect rows
        assert not starting.done() and cache.titles == {}
        writer = DurableProjectionRunner(settings, pool, schema, TitlesTable(topic, schema))
        await writer.start()
        async with asyncio.timeout(20):
            await starting
            await runner.caught_up.wait()
        assert cache.titles == {"a": "title 3"}
    finally:
        await writer.stop()
        await runner.stop()
