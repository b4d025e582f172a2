"""The media relay over real gRPC, PostgreSQL, the broker and Opus, with room and moderation.

Speakers publish distinct tones (440 Hz, 1000 Hz) as 20 ms Opus frames; listener
gateways subscribe; the relay admits by its own view of the room and moderation
topics.
"""

from __future__ import annotations

import asyncio
import re
import time

import grpc
import pytest

from libs.events.envelope import decode
from libs.events.topics import MEDIA_EVENTS, MEDIA_RECORDING
from podium.media.v1 import media_events_pb2 as mev
from podium.media.v1 import media_service_pb2_grpc
from podium.media.v1 import media_types_pb2 as mt
from tests.integration.clients import ModerationClient, RoomClient, error_reason, field_violations
from tests.integration.conftest import eventually
from tests.integration.media_relay.gateway import (
    Publisher,
    Subscriber,
    frame,
    publish_when_admitted,
    read_topic,
    subscribe_when_known,
)
from tests.support.audio import decode_frames, dominant_frequency, tone_frames
from tests.support.auth import bearer

pytestmark = pytest.mark.integration

QUEUE_TICKS = 10


@pytest.fixture(scope="module")
async def relay(service_factory, room, moderation):
    service = await service_factory(
        "media-relay", env={"PODIUM_MEDIA_RELAY_SUBSCRIBER_QUEUE_TICKS": str(QUEUE_TICKS)}
    )
    yield service
    await service.stop()


@pytest.fixture(scope="module")
def tones():
    return {440: tone_frames(440, 2.0), 1000: tone_frames(1000, 2.0)}


async def live_space(room, host: str, speakers=(), listeners=(), recording=False) -> str:
    host_room = RoomClient(room.channel, host)
    created = await host_room.CreateSpace(title="audio", recording_enabled=recording)
    space_id = created.space.space_id
    await host_room.StartSpace(space_id=space_id)
    for user in (*speakers, *listeners):
        await RoomClient(room.channel, user).JoinSpace(space_id=space_id)
    for user in speakers:
        await host_room.InviteToSpeak(space_id=space_id, user_id=user)
    return space_id


async def _publish_rejected(channel, user: str, request) -> grpc.aio.AioRpcError:
    stub = media_service_pb2_grpc.MediaRelayServiceStub(channel)

    async def requests():
        yield request

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Publish(requests(), metadata=bearer(user), timeout=10)
    return caught.value


def lost_to_a_racing_write(error: grpc.aio.AioRpcError) -> bool:
    """True when the client's own send failed as the call closed, hiding the server's status."""
    return (
        error.code() == grpc.StatusCode.INTERNAL
        and error.details() == "Internal error from Core"
        and "SendMessageOperation" in (error.debug_error_string() or "")
    )


async def test_two_speakers_reach_three_gateways_and_a_slow_one_only_loses_its_own_frames(
    relay, room, tones, broker
):
    space_id = await live_space(room, "fan-host", speakers=["fan-bob"])
    fast = [Subscriber(relay.channel, space_id, f"gw-{i}") for i in range(3)]
    # A gateway that reads one message per 100 ms (5x too slow), on a connection with a small
    # flow-control window, so the relay feels the backpressure within a few messages.
    slow_channel = grpc.aio.insecure_channel(
        relay.address, options=[("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]
    )
    slow = Subscriber(slow_channel, space_id, "gw-slow", delay=0.1)
    tasks = [await subscribe_when_known(s) for s in (*fast, slow)]
    alice = Publisher(relay.channel, space_id, "fan-host", tones[440])
    bob = Publisher(relay.channel, space_id, "fan-bob", tones[1000])
    publishing = [await publish_when_admitted(alice), await publish_when_admitted(bob)]
    replies = await asyncio.gather(*publishing)
    await asyncio.sleep(0.3)

    assert [r.frames_forwarded for r in replies] == [100, 100]
    assert [r.frames_refused for r in replies] == [0, 0]
    # Open-loop publishing was never slowed down by the slow gateway: 100 frames in ~2 s.
    assert alice.finished - alice.started < 2.3 and bob.finished - bob.started < 2.3
    for gateway in fast:
        for speaker, freq in (("fan-host", 440), ("fan-bob", 1000)):
            got = gateway.of(speaker)
            assert len(got) >= 99, (gateway.gateway_id, speaker, len(got))  # one probe frame may precede
            assert [f.sequence for f in got] == sorted(f.sequence for f in got)
            assert abs(dominant_frequency(decode_frames([f.opus for f in got[-50:]])) - freq) < 15
        assert gateway.dropped_total == 0
        # One message per 20 ms tick bundles both speakers: far fewer messages than frames.
        assert gateway.messages < 0.75 * len(gateway.frames)
        latencies = sorted(f.received_at - f.relayed_at for f in gateway.frames)
        assert latencies[int(len(latencies) * 0.99)] < 0.1
    # The slow gateway lost its oldest frames, counted; what it got plus what it lost is everything.
    async with asyncio.timeout(5):
        while len(slow.frames) + slow.dropped_total < 200:
            await asyncio.sleep(0.1)
    assert slow.dropped_total > 0
    assert len(slow.frames) < len(fast[0].frames)
    for t in tasks:
        t.cancel()
    await slow_channel.close()

    # Active speaker: both were heard talking, and stopped when their streams ended.
    def talking(records):
        seen = set()
        for r in records:
            if r.key == space_id.encode():
                _, event = decode(r.value)
                seen.add((type(event).__name__, event.user_id))
        return seen

    expected = {
        (kind, user)
        for kind in ("SpeakerStartedTalking", "SpeakerStoppedTalking")
        for user in ("fan-host", "fan-bob")
    }
    records = await read_topic(broker.bootstrap, MEDIA_EVENTS.name, lambda rs: expected <= talking(rs))
    assert expected <= talking(records)
    stopped = [decode(r.value)[1] for r in records if r.key == space_id.encode()]
    assert all(e.talked_ms > 1000 for e in stopped if isinstance(e, mev.SpeakerStoppedTalking))


async def test_only_live_unmuted_voices_may_publish_and_bad_frames_are_refused(relay, room, tones):
    space_id = await live_space(room, "gate-host", speakers=["gate-spk"], listeners=["gate-listener"])
    opus = tones[440][0]
    # Once the speaker is admitted, the relay's view has every event before: the listener's join too.
    await (await publish_when_admitted(Publisher(relay.channel, space_id, "gate-spk", [opus])))
    denied = await _publish_rejected(
        relay.channel, "gate-listener", frame(space_id, "gate-listener", 0, opus)
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and error_reason(denied) == "NOT_A_SPEAKER"
    assert "host, co-hosts and speakers" in denied.details()

    impostor = await _publish_rejected(relay.channel, "gate-listener", frame(space_id, "gate-spk", 0, opus))
    assert (
        impostor.code() == grpc.StatusCode.PERMISSION_DENIED and error_reason(impostor) == "NOT_YOUR_STREAM"
    )

    too_big = await _publish_rejected(relay.channel, "gate-spk", frame(space_id, "gate-spk", 0, b"x" * 1276))
    assert too_big.code() == grpc.StatusCode.INVALID_ARGUMENT and field_violations(too_big) == ["frame.opus"]
    empty = await _publish_rejected(relay.channel, "gate-spk", frame("", "", 0, b""))
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(empty)) == {"frame.space_id", "frame.speaker_id", "frame.opus"}

    unknown = await _publish_rejected(relay.channel, "gate-spk", frame("no-such-space", "gate-spk", 0, opus))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND

    anonymous = media_service_pb2_grpc.MediaRelayServiceStub(relay.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:

        async def one():
            yield frame(space_id, "gate-spk", 0, opus)

        await anonymous.Publish(one(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _stopped_after_event_ms(relay, space_id: str, speaker_id: str) -> float:
    """The relay's own log line for the first refused frame of `speaker_id`."""
    pattern = re.compile(
        rf"forwarding stopped: space={re.escape(space_id)} speaker={re.escape(speaker_id)} "
        r"reason=\w+ after_event_ms=(-?[\d.]+)"
    )
    found = pattern.findall(relay.process.log_path.read_text(errors="replace"))
    assert found, "the relay logged no 'forwarding stopped' line"
    return float(found[0])


async def test_a_mute_stops_forwarding_within_200_ms(relay, room, moderation, tones):
    space_id = await live_space(room, "mute-host", speakers=["mute-spk"])
    gateway = Subscriber(relay.channel, space_id, "gw-mute")
    listening = await subscribe_when_known(gateway)
    speaker = Publisher(relay.channel, space_id, "mute-spk", tones[1000] * 2)
    publishing = await publish_when_admitted(speaker)
    await asyncio.sleep(0.6)
    assert len(gateway.of("mute-spk")) > 10

    host = ModerationClient(moderation.channel, "mute-host")
    await eventually(lambda: host.MuteParticipant(space_id=space_id, user_id="mute-spk"))
    # The mute is acknowledged once committed; it reaches the relay after that (outbox, broker,
    # projection), so "last frame forwarded - acknowledgement" bounds "- event reached the relay".
    acknowledged = time.time()
    await asyncio.sleep(1.0)
    speaker.stop.set()
    reply = await publishing
    forwarded = gateway.of("mute-spk")
    last_forwarded = max(f.relayed_at for f in forwarded)
    stopped_after = last_forwarded - acknowledged
    print(f"forwarding stopped {stopped_after * 1000:.1f} ms after the mute was acknowledged")
    assert stopped_after < 0.2
    # And measured inside the relay: from the moment the mute reached it (applied to its view) to
    # the first frame it refused.
    after_event_ms = _stopped_after_event_ms(relay, space_id, "mute-spk")
    print(f"forwarding stopped {after_event_ms:.1f} ms after the mute reached the relay")
    assert 0 <= after_event_ms < 200
    assert reply.frames_refused >= 30  # ~1 s of frames after the mute, refused, stream still open
    assert reply.frames_forwarded == len(forwarded) - 1 or reply.frames_forwarded == len(forwarded)

    # The speaker cannot reopen a stream while hard-muted.
    denied = await _publish_rejected(
        relay.channel, "mute-spk", frame(space_id, "mute-spk", 0, tones[1000][0])
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and error_reason(denied) == "MUTED"
    listening.cancel()


async def test_a_demoted_speaker_is_no_longer_forwarded(relay, room, tones):
    space_id = await live_space(room, "demote-host", speakers=["demote-spk"])
    gateway = Subscriber(relay.channel, space_id, "gw-demote")
    listening = await subscribe_when_known(gateway)
    speaker = Publisher(relay.channel, space_id, "demote-spk", tones[440] * 2)
    publishing = await publish_when_admitted(speaker)
    await asyncio.sleep(0.4)
    await RoomClient(room.channel, "demote-host").RevokeSpeaker(space_id=space_id, user_id="demote-spk")
    acknowledged = time.time()
    await asyncio.sleep(0.8)
    speaker.stop.set()
    reply = await publishing
    last_forwarded = max(f.relayed_at for f in gateway.of("demote-spk"))
    assert last_forwarded - acknowledged < 0.2
    assert 0 <= _stopped_after_event_ms(relay, space_id, "demote-spk") < 200
    assert reply.frames_refused >= 25
    denied = await _publish_rejected(
        relay.channel, "demote-spk", frame(space_id, "demote-spk", 0, tones[440][0])
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and error_reason(denied) == "NOT_A_SPEAKER"
    listening.cancel()


async def test_ending_the_space_closes_publish_and_subscribe_streams(relay, room, tones):
    space_id = await live_space(room, "end-host", speakers=["end-spk"])
    gateway = Subscriber(relay.channel, space_id, "gw-end")
    listening = await subscribe_when_known(gateway)
    talking = await publish_when_admitted(Publisher(relay.channel, space_id, "end-spk", tones[440] * 10))
    await asyncio.sleep(0.3)
    # A second publish stream left open between talk spurts (the gateway writes nothing more).
    stub = media_service_pb2_grpc.MediaRelayServiceStub(relay.channel)
    call = stub.Publish(metadata=bearer("end-spk"), timeout=30)
    for i, opus in enumerate(tones[440][:5]):
        await call.write(frame(space_id, "end-spk", i, opus))
    await asyncio.sleep(0.2)
    await RoomClient(room.channel, "end-host").EndSpace(space_id=space_id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call, 5)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details() == "space ended"
    # And a stream with frames flowing: it ends too. When a frame is on its way out as the relay
    # closes the call, grpc aio reports the failed send as a client-side INTERNAL error in place of
    # the relay's status (grpc 1.85 `_write` -> `set_internal_error`); the relay's answer is then
    # what the gateway's next Publish gets.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(talking, 5)
    if not lost_to_a_racing_write(caught.value):
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert caught.value.details() == "space ended"
    again = await _publish_rejected(relay.channel, "end-spk", frame(space_id, "end-spk", 0, tones[440][0]))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION and again.details() == "space ended"
    await asyncio.wait_for(listening, 5)
    assert gateway.status == grpc.StatusCode.OK
    assert len(gateway.of("end-spk")) >= 15
    late = Subscriber(relay.channel, space_id, "gw-late")
    await late.run()
    assert late.status == grpc.StatusCode.FAILED_PRECONDITION and late.details == "space ended"


async def test_recording_chunks_are_written_only_when_recording_is_on(relay, room, tones, broker):
    recorded = await live_space(room, "rec-host", recording=True)
    unrecorded = await live_space(room, "norec-host", recording=False)
    frames = tones[440][:60]
    publishers = [
        Publisher(relay.channel, recorded, "rec-host", frames),
        Publisher(relay.channel, unrecorded, "norec-host", frames),
    ]
    replies = await asyncio.gather(*[await publish_when_admitted(p) for p in publishers])
    assert [r.frames_forwarded for r in replies] == [60, 60]
    for space_id, host in ((recorded, "rec-host"), (unrecorded, "norec-host")):
        await RoomClient(room.channel, host).EndSpace(space_id=space_id)

    def chunks(records, space_id):
        out = []
        for r in records:
            if r.key == space_id.encode():
                chunk = mt.RecordingChunk.FromString(r.value)
                out.append(chunk)
        return out

    def complete(records):
        return sum(len(c.frames) for c in chunks(records, recorded)) >= 61  # the probe frame + 60

    records = await read_topic(broker.bootstrap, MEDIA_RECORDING.name, complete)
    got = chunks(records, recorded)
    assert complete(records)
    assert all(c.speaker_id == "rec-host" and c.relay_id == "relay-0" for c in got)
    assert all(len(c.frames) <= 50 for c in got)
    sequences = [f.sequence for c in got for f in c.frames]
    assert sequences[-60:] == list(range(60))
    assert [c.chunk_sequence for c in got] == sorted(c.chunk_sequence for c in got)
    assert chunks(records, unrecorded) == []
