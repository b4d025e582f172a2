"""A restarted replay service resumes its views from their stored positions, and still serves every Space.

Runs on a broker and database of its own, so the positions and rows it checks are its own.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf.timestamp_pb2 import Timestamp

from podium.media.v1 import media_events_pb2 as med
from podium.room.v1 import room_types_pb2 as room_types
from tests.integration.clients import RoomClient, error_reason
from tests.integration.replay.conftest import FAST_FINALIZE, MediaLog, ReplayClient, until_ready
from tests.support.opus_tones import recording_chunks, tone_packets

pytestmark = pytest.mark.integration
VIEWS = ("replay-catalog", "replay-space-history")


def ts(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


async def test_a_restart_resumes_the_views_from_their_stored_positions_and_serves_ended_spaces(
    service_factory, private_broker, private_database_url, tmp_path
):
    """Nothing is read again from offset 0, yet an ended Space's replay, timeline and state at a
    moment are what they were; a Space live across the restart is noticed ending, once."""
    room, replay = await asyncio.gather(
        service_factory("room", broker=private_broker, database=private_database_url),
        service_factory(
            "replay",
            broker=private_broker,
            database=private_database_url,
            env={"PODIUM_REPLAY_BLOB_DIR": str(tmp_path), **FAST_FINALIZE},
        ),
    )
    producer = AIOKafkaProducer(bootstrap_servers=private_broker.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    media = MediaLog(producer)
    host, guest = RoomClient(room.channel, "rs-host"), RoomClient(room.channel, "rs-guest")
    try:
        # An invite-only Space that ends before the restart: its guest talked, then left.
        ended = (
            await host.CreateSpace(
                title="Before", recording_enabled=True, join_policy=room_types.JOIN_POLICY_INVITED_ONLY
            )
        ).space.space_id
        await host.InviteUsers(space_id=ended, user_ids=["rs-guest"])
        await host.StartSpace(space_id=ended)
        await guest.JoinSpace(space_id=ended)
        await host.InviteToSpeak(space_id=ended, user_id="rs-guest")
        t0 = datetime.now(UTC)
        await media.chunks(recording_chunks(ended, "rs-guest", tone_packets(440, 1.0), t0))
        await media.event(med.SpeakerStartedTalking(space_id=ended, user_id="rs-guest"), t0)
        await media.event(
            med.SpeakerStoppedTalking(space_id=ended, user_id="rs-guest", talked_ms=1000),
            t0 + timedelta(seconds=1),
        )
        await asyncio.sleep(max(0.0, (t0 + timedelta(seconds=1.1) - datetime.now(UTC)).total_seconds()))
        await guest.LeaveSpace(space_id=ended)
        await host.EndSpace(space_id=ended)

        # A Space live across the restart.
        live = (
            await host.CreateSpace(
                title="Across", recording_enabled=True, join_policy=room_types.JOIN_POLICY_INVITED_ONLY
            )
        ).space.space_id
        await host.InviteUsers(space_id=live, user_ids=["rs-guest"])
        await host.StartSpace(space_id=live)
        joined = (await guest.JoinSpace(space_id=live)).space.version
        await media.chunks(recording_chunks(live, "rs-host", tone_packets(660, 0.5), datetime.now(UTC)))

        reader = ReplayClient(replay.channel, "rs-guest")
        before = await until_ready(reader, ended)
        talking = t0 + timedelta(seconds=0.5)
        state_before = await reader.GetSpaceStateAt(space_id=ended, at=ts(talking))
        assert state_before.status == "live"
        assert {(p.user_id, p.role, p.speaking) for p in state_before.participants} == {
            ("rs-host", "host", False),
            ("rs-guest", "speaker", True),
        }
        # Read-your-writes: with the version its join returned, the guest is not refused by a view
        # that has not yet seen the join (the Space is invite-only), and is counted.
        now = await reader.GetSpaceStateAt(space_id=live, at=ts(datetime.now(UTC)), room_version=joined)
        assert now.listener_count == 1
        with pytest.raises(grpc.aio.AioRpcError) as behind:  # a version the room never wrote: after 2 s
            await reader.GetSpaceStateAt(space_id=live, at=ts(datetime.now(UTC)), room_version=joined + 1000)
        assert (
            behind.value.code() == grpc.StatusCode.UNAVAILABLE and error_reason(behind.value) == "VIEW_BEHIND"
        )

        await replay.terminate()
        await replay.restart()

        caught_up = {
            view: [
                line
                for line in replay.process.log_path.read_text().splitlines()
                if f"{view} caught up" in line
            ]
            for view in VIEWS
        }
        for lines in caught_up.values():
            assert len(lines) == 2, lines
            # A restart that read the log again from offset 0 would apply everything before SERVING.
            assert "caught up: 0 events" in lines[1], lines[1]

        after = await reader.GetReplay(space_id=ended)
        assert after.replay == before and after.replay.timeline
        assert await reader.GetSpaceStateAt(space_id=ended, at=ts(talking)) == state_before
        stranger = ReplayClient(replay.channel, "rs-stranger")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stranger.GetReplay(space_id=ended)
        assert error_reason(caught.value) == "REPLAY_NOT_VISIBLE"
        assert [r.space_id for r in (await reader.ListReplays(host_id="rs-host")).replays] == [ended]

        await host.EndSpace(space_id=live)  # its catalog entry is read back from the rows
        across = await until_ready(reader, live)
        assert across.title == "Across" and across.speaker_ids == ["rs-host"]

        db = await asyncpg.connect(private_database_url)
        try:
            catalog = await db.fetch("SELECT space_id FROM replay.replay_catalog_v1 ORDER BY ended_at")
            audience = await db.fetch("SELECT DISTINCT user_id FROM replay.replay_audience_v1 ORDER BY 1")
            history = await db.fetchval(
                "SELECT count(*) FROM replay.space_history_v1 WHERE space_id = $1", ended
            )
            room_events = await db.fetchval("SELECT count(*) FROM room.events WHERE space_id = $1", ended)
            positions = await db.fetch(
                "SELECT view, sum(next_offset) AS applied FROM replay.view_positions GROUP BY view"
            )
            jobs = await db.fetch("SELECT space_id, state FROM replay.finalize_jobs ORDER BY ended_at")
            finalized = await db.fetchval(
                "SELECT count(*) FROM replay.events WHERE event_type = 'podium.replay.v1.ReplayFinalized'"
            )
        finally:
            await db.close()
        assert [r["space_id"] for r in catalog] == [ended, live]
        assert [r["user_id"] for r in audience] == ["rs-guest", "rs-host"]
        assert history == room_events + 2  # and its two talking events
        assert {r["view"] for r in positions} == set(VIEWS) and all(r["applied"] > 0 for r in positions)
        assert [(r["space_id"], r["state"]) for r in jobs] == [(ended, "done"), (live, "done")]
        assert finalized == 2  # each Space finalized once, the restart queued nothing again
    finally:
        await producer.stop()
