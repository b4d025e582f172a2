"""The recording spool over a real broker and PostgreSQL: every chunk stored once, from the Space's
start, and the audio recorded before a broker lost its log still there after it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from libs.config.settings import PodiumSettings
from libs.events.topics import MEDIA_RECORDING, create_topics
from services.replay.infrastructure.recording_spool import RecordingSpool
from tests.support.opus_tones import recording_chunks, tone_packets
from tests.support.schemas import migrated_schema

pytestmark = pytest.mark.integration


@pytest.fixture
async def spool_on():
    """`await spool_on(bootstrap, database_url)` -> a started spool in a schema of its own."""
    started = []

    async def start(bootstrap: str, database_url: str, schema: str = "") -> RecordingSpool:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
        if not schema:
            schema = await migrated_schema(database_url, "replay", "spool")
        settings = PodiumSettings(kafka_bootstrap_servers=bootstrap, database_url=database_url)
        spool = RecordingSpool(settings, pool, schema)
        await spool.start()
        started.append((spool, pool))
        return spool

    yield start
    for spool, pool in started:
        await spool.stop()
        await pool.close()


async def test_the_spool_keeps_each_chunk_once_from_the_spaces_start(
    broker, database_url, media_log, spool_on
):
    spool = await spool_on(broker.bootstrap, database_url)
    space_id, other = f"spool-{uuid.uuid4().hex}", f"spool-{uuid.uuid4().hex}"
    packets = tone_packets(440, 1.0)
    now = datetime.now(UTC)
    stale = recording_chunks(space_id, "ghost", packets, now - timedelta(hours=2), relay_id="old-relay")
    for chunk in stale:  # on the partition, but timestamped long before the Space started
        await media_log.producer.send_and_wait(
            MEDIA_RECORDING.name,
            key=space_id.encode(),
            value=chunk.SerializeToString(),
            timestamp_ms=int((now - timedelta(hours=2)).timestamp() * 1000),
        )
    chunks = recording_chunks(space_id, "alice", packets, now, frames_per_chunk=25)
    await media_log.chunks(chunks)
    await media_log.chunks(chunks[:1])  # a relay resent its first chunk
    await media_log.chunks(recording_chunks(other, "bob", packets, now))

    await spool.caught_up(timeout=30)
    frames = await spool.frames(space_id, since=now - timedelta(minutes=5))
    assert {f.speaker_id for f in frames} == {"alice"}
    assert len(frames) == len(packets) and len({(f.speaker_id, f.captured_at) for f in frames}) == len(
        packets
    )
    everything = await spool.frames(space_id)
    assert {f.speaker_id for f in everything} == {"alice", "ghost"}
    assert await spool.frames(f"spool-{uuid.uuid4().hex}") == []
    # Stored once each: the resent chunk added no row.
    assert await spool.forget(space_id) == len(chunks) + len(stale)
    assert await spool.frames(space_id) == []


async def test_audio_recorded_before_the_broker_lost_its_log_is_still_there(
    private_broker, private_database_url, spool_on
):
    spool = await spool_on(private_broker.bootstrap, private_database_url)
    space_id = f"spool-{uuid.uuid4().hex}"
    packets = tone_packets(330, 2.0)
    now = datetime.now(UTC)
    chunks = recording_chunks(space_id, "alice", packets, now, frames_per_chunk=25)
    half = len(chunks) // 2

    async def write(some) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=private_broker.bootstrap, acks="all")
        await producer.start()
        try:
            for chunk in some:
                await producer.send_and_wait(
                    MEDIA_RECORDING.name, chunk.SerializeToString(), key=space_id.encode()
                )
        finally:
            await producer.stop()

    await write(chunks[:half])
    await spool.caught_up(timeout=30)
    await private_broker.restart()  # empty: the first half is gone from the broker, the topic too
    await create_topics(private_broker.bootstrap, (MEDIA_RECORDING,), 6, 1, replace_mismatched=True)
    # The spool does not read the new log from where it stood in the old one: it reports the loss.
    async with asyncio.timeout(30):
        while not spool.log_loss.lost:
            await asyncio.sleep(0.1)
    assert all("beyond the log's end" in loss.reason for loss in spool.log_loss.losses.values())
    # The operator's recovery forgets the spool's positions (`podium log recover`), and replay is
    # started again: it reads the new log from its beginning, and what it stored stays stored.
    await spool.stop()
    await spool.pool.execute(f"DELETE FROM {spool.s}.recording_positions")
    spool = await spool_on(private_broker.bootstrap, private_database_url, schema=spool.s)
    await write(chunks[half:])
    await spool.caught_up(timeout=60)
    frames = await spool.frames(space_id)
    assert sorted(f.captured_at for f in frames) == sorted(
        {f.captured_at.ToDatetime(tzinfo=UTC) for c in chunks for f in c.frames}
    )
