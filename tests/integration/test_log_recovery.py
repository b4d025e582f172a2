"""`podium log topics / reseed / reset-groups / recover` against a real broker and PostgreSQL.

Each test runs on a broker and a database of its own (`private_broker`,
`private_database_url`), since the commands delete, make and fill topics.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from libs.config.settings import PodiumSettings
from libs.events.envelope import Causation, EventEnvelope
from libs.events.kafka import log_end_offsets, make_producer, make_reader
from libs.events.topics import (
    EVERY_TOPIC,
    MODERATION_EVENTS,
    PRESENCE_APP,
    PRESENCE_TABLES,
    ROOM_EVENTS,
    changelogs,
    create_topics,
    topic_problems,
)
from libs.eventstore.store import EventStore, NewEvent
from libs.recovery.reseed import reseed
from podium.room.v1 import room_events_pb2
from tests.integration.clients import RoomClient
from tests.support.infrastructure import TEST_PARTITIONS

pytestmark = pytest.mark.integration


async def _podium(*args: str, bootstrap: str, database_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": database_url, "COLUMNS": "200"}
    env.pop("PODIUM_ANALYTICS_APP_ID", None)
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


async def _store_events(database_url: str, schema: str, topic: str, spaces: int, each: int) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        store = EventStore(pool, schema, producer=schema)
        now = datetime.now(UTC)
        for i in range(spaces):
            space = f"{schema}-{i}-{uuid.uuid4().hex[:6]}"
            await store.append(
                stream_id=f"space-{space}",
                space_id=space,
                topic=topic,
                expected_version=0,
                events=[
                    NewEvent(
                        room_events_pb2.SpaceCancelled(space_id=space), now, Causation("u", f"c{n}", "c")
                    )
                    for n in range(each)
                ],
            )
    finally:
        await pool.close()


async def _read_all(bootstrap: str, topic: str) -> list[tuple[int, bytes, EventEnvelope]]:
    """(partition, key, envelope) of every record on `topic`, in offset order per partition."""
    reader = make_reader(PodiumSettings(kafka_bootstrap_servers=bootstrap), "test-log-recovery")
    await reader.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
        reader.assign(parts)
        ends = await log_end_offsets(reader, parts)
        await reader.seek_to_beginning(*parts)
        out: list[tuple[int, bytes, EventEnvelope]] = []
        left = {tp for tp in parts if ends[tp] > 0}
        async with asyncio.timeout(30):
            while left:
                for tp, records in (await reader.getmany(*left, timeout_ms=500)).items():
                    out += [(tp.partition, r.key, EventEnvelope.FromString(r.value)) for r in records]
                    if records and records[-1].offset + 1 >= ends[tp]:
                        left.discard(tp)
        return out
    finally:
        await reader.stop()


async def _partition_counts(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(names)}
    finally:
        await admin.close()


async def test_log_topics_makes_missing_topics_and_remakes_one_with_the_wrong_partition_count(
    private_broker, private_database_url
):
    admin = AIOKafkaAdminClient(bootstrap_servers=private_broker.bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([ROOM_EVENTS.name, MODERATION_EVENTS.name])
        async with asyncio.timeout(30):
            while {ROOM_EVENTS.name, MODERATION_EVENTS.name} & set(await admin.list_topics()):
                await asyncio.sleep(0.2)
    finally:
        await admin.close()
    # As a client asking for a lost topic makes it on a broker that creates topics on demand.
    await create_topics(private_broker.bootstrap, (MODERATION_EVENTS,), 4, 1)

    result = await _podium(
        "log", "topics", bootstrap=private_broker.bootstrap, database_url=private_database_url
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "made 2 topics" in result.stdout
    assert not await topic_problems(private_broker.bootstrap, EVERY_TOPIC, TEST_PARTITIONS)
    again = await _podium(
        "log", "topics", bootstrap=private_broker.bootstrap, database_url=private_database_url
    )
    assert "every topic is in place" in again.stdout


async def test_log_reseed_publishes_every_stored_event_in_order_and_empties_the_outbox(
    private_broker, private_database_url
):
    await _store_events(private_database_url, "room", ROOM_EVENTS.name, spaces=20, each=5)
    await _store_events(private_database_url, "moderation", MODERATION_EVENTS.name, spaces=3, each=2)
    # What a relay published to the topic made again after the loss, ahead of older events: gone after.
    producer = make_producer(PodiumSettings(kafka_bootstrap_servers=private_broker.bootstrap), "test-junk")
    await producer.start()
    try:
        await producer.send_and_wait(ROOM_EVENTS.name, b"published after the loss", key=b"some-space")
    finally:
        await producer.stop()

    result = await _podium(
        "log", "reseed", "room", bootstrap=private_broker.bootstrap, database_url=private_database_url
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"room: 100 events published to {ROOM_EVENTS.name}" in result.stdout
    assert "moderation" not in result.stdout  # only the service asked for
    records = await _read_all(private_broker.bootstrap, ROOM_EVENTS.name)
    assert len(records) == 100
    by_stream: dict[str, list[int]] = {}
    for partition, key, envelope in records:
        assert key == envelope.space_id.encode()  # keyed as the relay keys them: the record key stored
        by_stream.setdefault(envelope.stream_id, []).append(envelope.stream_version)
        assert {p for p, _, e in records if e.stream_id == envelope.stream_id} == {partition}
    assert all(versions == [1, 2, 3, 4, 5] for versions in by_stream.values()), by_stream
    conn = await asyncpg.connect(private_database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM room.outbox") == 0
        assert await conn.fetchval("SELECT count(*) FROM moderation.outbox") == 6  # not reseeded: untouched
    finally:
        await conn.close()
    unknown = await _podium(
        "log", "reseed", "nowhere", bootstrap=private_broker.bootstrap, database_url=private_database_url
    )
    assert unknown.returncode == 1 and "no event store in schema nowhere" in unknown.stdout


async def test_a_reseed_holds_back_a_concurrent_append_until_it_is_done(private_broker, private_database_url):
    await _store_events(private_database_url, "room", ROOM_EVENTS.name, spaces=1, each=3)
    settings = PodiumSettings(
        kafka_bootstrap_servers=private_broker.bootstrap, database_url=private_database_url
    )
    pool = await asyncpg.create_pool(private_database_url, min_size=2, max_size=4)
    try:
        blocker = await pool.acquire()
        # An append in flight: it holds the outbox until it commits, so the reseed's lock waits...
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE room.outbox IN ROW EXCLUSIVE MODE")
        reseeding = asyncio.create_task(reseed(pool, settings, "room"))
        async with asyncio.timeout(10):
            while not await pool.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'outbox' AND l.mode = 'ExclusiveLock' AND NOT l.granted"
            ):
                await asyncio.sleep(0.05)
        assert not reseeding.done()
        await tx.commit()
        await pool.release(blocker)
        published = await reseeding
        assert published == {ROOM_EVENTS.name: 3}
        # An append after the reseed is the relay's to publish: its outbox row stays.
        await _store_events(private_database_url, "room", ROOM_EVENTS.name, spaces=1, each=1)
        assert await pool.fetchval("SELECT count(*) FROM room.outbox") == 1
    finally:
        await pool.close()


async def test_reset_groups_sends_faust_groups_to_the_earliest_offsets_and_empties_changelogs(
    private_broker, private_database_url
):
    bootstrap = private_broker.bootstrap
    settings = PodiumSettings(kafka_bootstrap_servers=bootstrap)
    changelog = changelogs(PRESENCE_APP, PRESENCE_TABLES)[0].name
    producer = make_producer(settings, "test-reset-groups")
    await producer.start()
    try:
        for i in range(12):
            await producer.send_and_wait(ROOM_EVENTS.name, b"x", key=f"space-{i}".encode())
            await producer.send_and_wait(changelog, b"table row", key=f"space-{i}".encode())
    finally:
        await producer.stop()
    group = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=PRESENCE_APP, enable_auto_commit=False)
    await group.start()
    try:
        parts = [TopicPartition(ROOM_EVENTS.name, p) for p in range(TEST_PARTITIONS)]
        group.assign(parts)
        ends = await group.end_offsets(parts)
        await group.commit({tp: end for tp, end in ends.items() if end})  # as faust commits
        had = [tp for tp, end in ends.items() if end]
    finally:
        await group.stop()
    conn = await asyncpg.connect(private_database_url)
    try:  # the recording spool's positions
        await conn.execute("INSERT INTO replay.recording_positions VALUES (0, 7), (3, 2);")

        result = await _podium("log", "reset-groups", bootstrap=bootstrap, database_url=private_database_url)

        assert result.returncode == 0, result.stdout + result.stderr
        assert (
            f"consumer group {PRESENCE_APP}: {len(had)} partitions back to the earliest offset"
            in result.stdout
        )
        assert f"changelog {changelog}: emptied" in result.stdout
        assert "replay.recording_positions: 2 stored positions forgotten" in result.stdout
        assert await conn.fetchval("SELECT count(*) FROM replay.recording_positions") == 0
    finally:
        await conn.close()
    check = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=PRESENCE_APP, enable_auto_commit=False)
    await check.start()
    try:
        check.assign(had)
        assert [await check.committed(tp) for tp in had] == [0] * len(had)
    finally:
        await check.stop()
    assert await _read_all(bootstrap, changelog) == []
    counts = await _partition_counts(bootstrap, [changelog])
    assert counts[changelog] == TEST_PARTITIONS


async def test_log_recover_after_a_lost_log_brings_the_room_back_from_postgresql(
    service_factory, private_broker, private_database_url
):
    room = await service_factory("room", broker=private_broker, database=private_database_url)
    host = RoomClient(room.channel, "recover-host")
    spaces = [(await host.CreateSpace(title=f"before the loss {i}")).space.space_id for i in range(3)]
    await host.StartSpace(space_id=spaces[0])
    await room.terminate()  # the operator scales the service to 0...
    await private_broker.restart()  # ...after the broker lost its log: no topic, no record

    result = await _podium(
        "log", "recover", bootstrap=private_broker.bootstrap, database_url=private_database_url
    )

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    steps = [out.index(marker) for marker in ("topics: made", "reseed: room:", "readers:", "views: room:")]
    assert steps == sorted(steps), out  # in order
    conn = await asyncpg.connect(private_database_url)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM room.events")
    finally:
        await conn.close()
    assert f"reseed: room: {stored} events published to {ROOM_EVENTS.name}" in out
    assert "room-space-directory" in out and "recovered." in out
    assert not await topic_problems(private_broker.bootstrap, EVERY_TOPIC, TEST_PARTITIONS)

    await room.restart()  # ...and starts it again: its views are rebuilt from the reseeded log
    listed = await host.ListSpaces(host_user_id="recover-host", page_size=10)
    assert {s.space_id for s in listed.spaces} == set(spaces)
    started = (await host.GetSpace(space_id=spaces[0])).space
    assert started.title == "before the loss 0" and started.started_at.seconds > 0
    created = await host.CreateSpace(title="after the recovery")  # and commands work
    assert created.space.space_id
