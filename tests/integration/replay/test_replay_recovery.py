"""A finalizer killed midway finishes after a restart, exactly once; then retention expires the replay.

Runs on a broker and database of its own, so the killed service's jobs are not
shared with the session's replay service.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import grpc
import pytest
from aiokafka import AIOKafkaProducer

from libs.events.envelope import EventEnvelope, unwrap
from podium.replay.v1 import replay_events_pb2 as rpe
from podium.replay.v1 import replay_types_pb2 as rt
from tests.integration.clients import RoomClient
from tests.integration.replay.conftest import FAST_FINALIZE, MediaLog, ReplayClient, until_ready
from tests.support.opus_tones import recording_chunks, tone_packets

pytestmark = pytest.mark.integration
SECONDS = 40  # per speaker, three speakers at once: 120 s of audio to decode


async def test_a_finalizer_killed_midway_finishes_once_after_restart_and_retention_expires_it(
    service_factory, private_broker, private_database_url, tmp_path
):
    room, replay = await asyncio.gather(
        service_factory("room", broker=private_broker, database=private_database_url),
        service_factory(
            "replay",
            broker=private_broker,
            database=private_database_url,
            env={"PODIUM_REPLAY_BLOB_DIR": str(tmp_path), **FAST_FINALIZE},
        ),
    )
    host = RoomClient(room.channel, "rec-host")
    space_id = (await host.CreateSpace(title="Long talk", recording_enabled=True)).space.space_id
    await host.StartSpace(space_id=space_id)

    producer = AIOKafkaProducer(bootstrap_servers=private_broker.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        start = datetime.now(UTC)
        for n, tone in enumerate((300, 700, 1500)):
            second = tone_packets(tone, 1.0)
            chunks = recording_chunks(space_id, f"rec-speaker-{n}", second * SECONDS, start)
            await MediaLog(producer).chunks(chunks)
    finally:
        await producer.stop()
    await host.EndSpace(space_id=space_id)

    client = ReplayClient(replay.channel, "rec-listener")
    async with asyncio.timeout(60):
        while True:
            try:
                seen = (await client.GetReplay(space_id=space_id)).replay
            except grpc.aio.AioRpcError as e:
                assert e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)
                await asyncio.sleep(0.05)
                continue
            assert seen.state == rt.REPLAY_STATE_FINALIZING, "finished before it could be killed"
            if seen.progress >= 0.3:
                break
            await asyncio.sleep(0.05)
    replay.kill()  # SIGKILL midway through mixing
    assert 0.3 <= seen.progress < 1.0

    await replay.restart()
    ready = await until_ready(client, space_id, timeout=90)
    assert abs(ready.duration.ToTimedelta().total_seconds() - SECONDS) <= 0.02
    assert sorted(ready.speaker_ids) == ["rec-speaker-0", "rec-speaker-1", "rec-speaker-2"]
    assert (tmp_path / f"{space_id}.ogg").stat().st_size == ready.size_bytes

    db = await asyncpg.connect(private_database_url)
    try:
        finalized = await db.fetchval(
            "SELECT count(*) FROM replay.events WHERE space_id = $1 AND event_type = $2",
            space_id,
            "podium.replay.v1.ReplayFinalized",
        )
        job = await db.fetchrow(
            "SELECT state, attempts FROM replay.finalize_jobs WHERE space_id = $1", space_id
        )
        assert finalized == 1
        assert job["state"] == "done" and job["attempts"] == 2

        # Retention: restarted with a one-second retention, the sweep deletes it, and says why.
        replay.process.env.update(
            {"PODIUM_REPLAY_RETENTION_DAYS": str(1 / 86400), "PODIUM_REPLAY_RETENTION_SWEEP_SECONDS": "0.2"}
        )
        await replay.restart()
        async with asyncio.timeout(30):
            while (await client.GetReplay(space_id=space_id)).replay.state != rt.REPLAY_STATE_EXPIRED:
                await asyncio.sleep(0.1)
        assert not (tmp_path / f"{space_id}.ogg").exists()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.stream("DownloadReplay", space_id=space_id).read()
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "expired" in caught.value.details()
        reasons = await db.fetch(
            "SELECT envelope FROM replay.events WHERE space_id = $1 AND event_type = $2",
            space_id,
            "podium.replay.v1.ReplayDeleted",
        )
        deleted = [unwrap(EventEnvelope.FromString(bytes(r["envelope"]))) for r in reasons]
        assert [d.reason for d in deleted] == [rpe.DELETION_REASON_RETENTION_EXPIRED]
        assert await db.fetchval("SELECT count(*) FROM replay.finalize_jobs") == 1  # never re-queued
        await replay.terminate()  # SIGTERM: drains and exits cleanly
        assert replay.process.process.returncode == 0
    finally:
        await db.close()
