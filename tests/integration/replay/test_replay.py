"""Replay over real gRPC, PostgreSQL, the broker and Opus: a recorded Space, end to end.

The media relay is not in the loop: the test writes what it would (RecordingChunks
of two speakers with distinct tones, and talking events) straight onto their topics.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from libs.config.settings import PodiumSettings
from libs.events.tail import space_history
from libs.events.topics import REPLAY_EVENTS
from podium.media.v1 import media_events_pb2 as med
from podium.replay.v1 import replay_events_pb2 as rpe
from podium.replay.v1 import replay_types_pb2 as rt
from tests.integration.clients import ModerationClient, RoomClient, error_reason
from tests.integration.conftest import eventually
from tests.integration.replay.conftest import ReplayClient, until_ready
from tests.support.opus_tones import (
    band_energy,
    decode_ogg,
    dominant_frequency,
    recording_chunks,
    tone_packets,
)

pytestmark = pytest.mark.integration
RATE = 48_000


def ts(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def now() -> datetime:
    return datetime.now(UTC)


async def moment() -> datetime:
    """A moment between two steps: after the last one's events, before the next one's."""
    await asyncio.sleep(0.05)
    at = now()
    await asyncio.sleep(0.05)
    return at


async def rejected(call, code) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


@pytest.fixture(scope="module")
async def recorded(room, moderation, replay, media_log):
    """A recorded Space: A talks 0-2 s (440 Hz), B talks 2-4 s (1000 Hz), B is muted, then it ends."""
    host = RoomClient(room.channel, "rp-host")
    host_m = ModerationClient(moderation.channel, "rp-host")
    alice, bob, carol = (RoomClient(room.channel, u) for u in ("rp-alice", "rp-bob", "rp-carol"))
    marks: dict[str, datetime] = {"before": await moment()}
    space_id = (await host.CreateSpace(title="Recorded hangout", recording_enabled=True)).space.space_id
    await host.StartSpace(space_id=space_id)
    for guest in (alice, bob, carol):
        await guest.JoinSpace(space_id=space_id)
    await host.InviteToSpeak(space_id=space_id, user_id="rp-alice")
    await host.InviteToSpeak(space_id=space_id, user_id="rp-bob")
    await carol.RequestToSpeak(space_id=space_id)
    marks["stage_set"] = await moment()

    t0 = now()
    a, b = tone_packets(440, 2.0), tone_packets(1000, 2.0)
    await media_log.chunks(recording_chunks(space_id, "rp-alice", a, t0))
    await media_log.chunks(recording_chunks(space_id, "rp-bob", b, t0 + timedelta(seconds=2)))
    await media_log.event(med.SpeakerStartedTalking(space_id=space_id, user_id="rp-alice"), t0)
    await media_log.event(
        med.SpeakerStoppedTalking(space_id=space_id, user_id="rp-alice", talked_ms=2000),
        t0 + timedelta(seconds=2),
    )
    await media_log.event(
        med.SpeakerStartedTalking(space_id=space_id, user_id="rp-bob"), t0 + timedelta(seconds=2)
    )
    await media_log.event(
        med.SpeakerStoppedTalking(space_id=space_id, user_id="rp-bob", talked_ms=2000),
        t0 + timedelta(seconds=4),
    )
    await asyncio.sleep(max(0.0, (t0 + timedelta(seconds=4.1) - now()).total_seconds()))

    await eventually(lambda: host_m.MuteParticipant(space_id=space_id, user_id="rp-bob"))
    await carol.LeaveSpace(space_id=space_id)
    marks["muted"] = await moment()
    await host.EndSpace(space_id=space_id)
    marks["ended"] = await moment()
    return {"space_id": space_id, "t0": t0, "marks": marks, "host": host}


async def test_the_space_ends_and_its_replay_is_finalized_with_each_voice_where_it_spoke(
    recorded, replay, blob_dir
):
    client = ReplayClient(replay.channel, "rp-listener")
    got = await until_ready(client, recorded["space_id"])
    assert got.state == rt.REPLAY_STATE_READY and got.host_id == "rp-host"
    assert got.title == "Recorded hangout"
    assert abs(got.duration.ToTimedelta().total_seconds() - 4.0) <= 0.02
    assert sorted(got.speaker_ids) == ["rp-alice", "rp-bob"]
    origin = got.recording_started_at.ToDatetime(tzinfo=UTC)
    assert abs((origin - recorded["t0"]).total_seconds()) < 0.001
    assert got.expires_at.ToDatetime(tzinfo=UTC) > now() + timedelta(days=29)

    data = (blob_dir / f"{recorded['space_id']}.ogg").read_bytes()
    assert got.size_bytes == len(data)
    samples = decode_ogg(data)
    assert abs(len(samples) / RATE - 4.0) <= 0.02  # within one 20 ms frame
    for start, end, tone, other in ((0.2, 1.8, 440, 1000), (2.2, 3.8, 1000, 440)):
        window = samples[int(start * RATE) : int(end * RATE)]
        assert abs(dominant_frequency(window) - tone) < 5
        assert band_energy(window, tone) > 100 * band_energy(window, other)

    kinds = [(e.kind, e.user_id, e.role) for e in got.timeline]
    assert (rt.TIMELINE_ENTRY_KIND_ROLE_CHANGED, "rp-host", "host") in kinds
    assert (rt.TIMELINE_ENTRY_KIND_ROLE_CHANGED, "rp-alice", "speaker") in kinds
    talking = {(e.kind, e.user_id): e.at.ToTimedelta().total_seconds() for e in got.timeline}
    assert talking[(rt.TIMELINE_ENTRY_KIND_STARTED_TALKING, "rp-alice")] == pytest.approx(0, abs=0.01)
    assert talking[(rt.TIMELINE_ENTRY_KIND_STARTED_TALKING, "rp-bob")] == pytest.approx(2, abs=0.01)
    assert talking[(rt.TIMELINE_ENTRY_KIND_STOPPED_TALKING, "rp-bob")] == pytest.approx(4, abs=0.01)
    assert (rt.TIMELINE_ENTRY_KIND_MUTED, "rp-bob", "") in kinds
    listeners = [e.listeners for e in got.timeline if e.kind == rt.TIMELINE_ENTRY_KIND_LISTENERS]
    assert max(listeners) >= 1 and listeners[-1] == 0

    hosts = await client.ListReplays(host_id="rp-host")
    assert [r.space_id for r in hosts.replays][:1] == [recorded["space_id"]]
    assert not hosts.replays[0].timeline  # the list stays small; GetReplay has the timeline


async def test_stream_replay_seeks_and_paces_and_download_is_the_stored_file(recorded, replay, blob_dir):
    space_id = recorded["space_id"]
    client = ReplayClient(replay.channel, "rp-listener")
    await until_ready(client, space_id)

    stream = client.stream("StreamReplay", space_id=space_id, start_at={"seconds": 2, "nanos": 0}, speed=2.0)
    frames, times = [], []
    async for message in stream:
        frames.append(message)
        times.append(time.monotonic())
        if len(frames) == 51:
            break
    stream.cancel()
    assert abs(frames[0].at.ToTimedelta().total_seconds() - 2.0) <= 0.02
    assert 0.4 <= times[50] - times[0] <= 0.7  # 1 s of audio at 2x
    assert frames[1].at.ToTimedelta() - frames[0].at.ToTimedelta() == timedelta(milliseconds=20)

    began = time.monotonic()
    everything = [m async for m in client.stream("StreamReplay", space_id=space_id, speed=0)]
    assert time.monotonic() - began < 2.0  # unpaced: 4 s of audio at once
    assert len(everything) >= 200 and everything[0].at.ToTimedelta() == timedelta(0)
    assert all(len(m.opus) > 0 for m in everything)

    for bad in (dict(speed=3.0), dict(speed=1.0, start_at={"seconds": 60})):
        error = await rejected(
            client.stream("StreamReplay", space_id=space_id, **bad).read(), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert error.details()

    chunks = [m async for m in client.stream("DownloadReplay", space_id=space_id)]
    data = b"".join(c.chunk for c in chunks)
    assert data == (blob_dir / f"{space_id}.ogg").read_bytes()
    assert chunks[-1].total_size == len(data) and chunks[0].offset == 0

    async def listens():
        replay_now = (await client.GetReplay(space_id=space_id)).replay
        if replay_now.listens < 3:
            raise grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, None, None, "not yet")
        return replay_now.listens

    assert await eventually(listens) == 3  # two streams and a download
    await asyncio.sleep(0.3)
    assert await listens() == 3  # the rejected calls changed nothing


async def test_the_space_as_it_was_at_chosen_moments(recorded, replay):
    client = ReplayClient(replay.channel, "rp-investigator")
    space_id, t0, marks = recorded["space_id"], recorded["t0"], recorded["marks"]

    async def at(moment: datetime):
        return await client.GetSpaceStateAt(space_id=space_id, at=ts(moment))

    def people(state):
        return {p.user_id: p for p in state.participants}

    await eventually(lambda: at(marks["ended"]))
    staged = await at(marks["stage_set"])
    assert staged.status == "live" and staged.title == "Recorded hangout"
    roles = {u: p.role for u, p in people(staged).items()}
    assert roles == {"rp-host": "host", "rp-alice": "speaker", "rp-bob": "speaker", "rp-carol": "listener"}
    assert people(staged)["rp-carol"].hand_raised and staged.listener_count == 1
    assert not any(p.speaking for p in staged.participants)

    one = people(await at(t0 + timedelta(seconds=1)))
    assert one["rp-alice"].speaking and not one["rp-bob"].speaking
    three = people(await at(t0 + timedelta(seconds=3)))
    assert three["rp-bob"].speaking and not three["rp-alice"].speaking
    muted = await at(marks["muted"])
    assert people(muted)["rp-bob"].muted and not people(muted)["rp-bob"].speaking
    assert "rp-carol" not in people(muted) and muted.listener_count == 0
    ended = await at(marks["ended"])
    assert ended.status == "ended" and not ended.participants
    assert ended.since_start.ToTimedelta() > timedelta(seconds=4)

    error = await rejected(at(marks["before"]), grpc.StatusCode.FAILED_PRECONDITION)
    assert error_reason(error) == "NOT_CREATED_YET"
    await rejected(client.GetSpaceStateAt(space_id=space_id), grpc.StatusCode.INVALID_ARGUMENT)
    await rejected(client.GetSpaceStateAt(space_id="no-such-space", at=ts(now())), grpc.StatusCode.NOT_FOUND)


async def test_an_unrecorded_space_has_no_replay_and_says_so(room, replay):
    host = RoomClient(room.channel, "rp-quiet-host")
    space_id = (await host.CreateSpace(title="Off the record")).space.space_id
    await host.StartSpace(space_id=space_id)
    await host.EndSpace(space_id=space_id)
    client = ReplayClient(replay.channel, "rp-listener")

    async def get():
        return await client.GetReplay(space_id=space_id)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await eventually(get, retry_on=(grpc.StatusCode.NOT_FOUND,))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not recorded" in caught.value.details() and error_reason(caught.value) == "NOT_RECORDED"
    assert not (await client.ListReplays(host_id="rp-quiet-host")).replays
    await rejected(client.GetReplay(space_id=""), grpc.StatusCode.INVALID_ARGUMENT)


async def test_a_recorded_space_where_nobody_spoke_has_no_replay_and_says_so(room, replay):
    host = RoomClient(room.channel, "rp-silent-host")
    space_id = (await host.CreateSpace(title="Silence", recording_enabled=True)).space.space_id
    await host.StartSpace(space_id=space_id)
    await host.EndSpace(space_id=space_id)
    client = ReplayClient(replay.channel, "rp-silent-host")
    async with asyncio.timeout(20):
        while True:
            try:
                await client.GetReplay(space_id=space_id)  # FINALIZING
            except grpc.aio.AioRpcError as e:
                if error_reason(e) == "NO_AUDIO":
                    break
                assert error_reason(e) in ("SPACE_NOT_FOUND", "SPACE_NOT_ENDED")  # views catching up
            await asyncio.sleep(0.1)
    error = await rejected(client.GetReplay(space_id=space_id), grpc.StatusCode.FAILED_PRECONDITION)
    assert error_reason(error) == "NO_AUDIO" and "nobody spoke" in error.details()
    assert not (await client.ListReplays()).replays


async def test_list_replays_pages_a_hosts_replays_newest_first_and_refuses_bad_input(
    recorded, room, replay, media_log
):
    host = RoomClient(room.channel, "rp-host")
    space_id = (await host.CreateSpace(title="Second", recording_enabled=True)).space.space_id
    await host.StartSpace(space_id=space_id)
    await media_log.chunks(recording_chunks(space_id, "rp-host", tone_packets(660, 0.5), now()))
    await host.EndSpace(space_id=space_id)
    client = ReplayClient(replay.channel, "rp-host")
    await until_ready(client, space_id)

    first = await client.ListReplays(page_size=1)  # host_id defaults to the caller
    assert [r.space_id for r in first.replays] == [space_id] and first.next_page_token
    second = await client.ListReplays(page_size=1, page_token=first.next_page_token)
    assert [r.space_id for r in second.replays] == [recorded["space_id"]]
    assert first.replays[0].ended_at.ToDatetime() > second.replays[0].ended_at.ToDatetime()

    await rejected(client.ListReplays(page_size=-1), grpc.StatusCode.INVALID_ARGUMENT)
    await rejected(client.ListReplays(page_token="garbage!"), grpc.StatusCode.INVALID_ARGUMENT)
    await rejected(
        client.ListReplays(host_id="someone-else", page_token=first.next_page_token),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    anonymous = ReplayClient(replay.channel, "nobody", token="")
    await rejected(anonymous.GetReplay(space_id=space_id), grpc.StatusCode.UNAUTHENTICATED)
    error = await rejected(
        client.DeleteReplay(space_id=recorded["space_id"] + "-nope"), grpc.StatusCode.NOT_FOUND
    )
    assert error_reason(error) == "SPACE_NOT_FOUND"


async def test_only_the_host_deletes_a_replay_and_the_deletion_is_an_event(
    recorded, replay, blob_dir, broker
):
    space_id = recorded["space_id"]
    host, guest = ReplayClient(replay.channel, "rp-host"), ReplayClient(replay.channel, "rp-alice")
    await until_ready(host, space_id)
    error = await rejected(guest.DeleteReplay(space_id=space_id), grpc.StatusCode.PERMISSION_DENIED)
    assert error_reason(error) == "NOT_HOST"
    assert (blob_dir / f"{space_id}.ogg").exists()
    assert (await host.GetReplay(space_id=space_id)).replay.state == rt.REPLAY_STATE_READY

    await host.DeleteReplay(space_id=space_id, request_id="delete-1")
    assert not (blob_dir / f"{space_id}.ogg").exists()

    async def deleted():
        state = (await host.GetReplay(space_id=space_id)).replay.state
        if state != rt.REPLAY_STATE_DELETED:
            raise grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, None, None, "not yet")

    await eventually(deleted)
    await host.DeleteReplay(space_id=space_id, request_id="delete-1")  # a retry: the same answer
    error = await rejected(
        host.DeleteReplay(space_id=space_id, request_id="delete-2"), grpc.StatusCode.NOT_FOUND
    )
    assert error_reason(error) == "REPLAY_DELETED"
    error = await rejected(
        host.stream("StreamReplay", space_id=space_id, speed=1.0).read(), grpc.StatusCode.NOT_FOUND
    )
    assert "deleted" in error.details()
    settings = PodiumSettings(kafka_bootstrap_servers=broker.bootstrap)
    events = [e for e, _ in await space_history(settings, REPLAY_EVENTS.name, space_id)]
    assert [type(e).__name__ for e in events].count("ReplayFinalized") == 1
    deletions = [e for e in events if isinstance(e, rpe.ReplayDeleted)]
    assert len(deletions) == 1 and deletions[0].reason == rpe.DELETION_REASON_HOST_DELETED
    assert sum(isinstance(e, rpe.ReplayListened) for e in events) >= 3
