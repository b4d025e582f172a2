"""A relay killed mid-stream, and the room handing out relay addresses by consistent hashing."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from libs.events.topics import MEDIA_RECORDING
from libs.routing.hash_ring import HashRing, parse_nodes
from podium.media.v1 import media_types_pb2 as mt
from tests.integration.clients import RoomClient
from tests.integration.media_relay.gateway import (
    Publisher,
    ReconnectingGateway,
    publish_when_admitted,
    read_topic,
)
from tests.integration.media_relay.test_media_relay import live_space
from tests.support.audio import tone_frames

pytestmark = pytest.mark.integration

RELAYS = "relay-0=127.0.0.1:50054,relay-1=10.0.0.2:50054,relay-2=10.0.0.3:50054"


async def test_a_killed_relay_comes_back_on_its_port_and_audio_resumes_within_two_seconds(
    service_factory, room, moderation
):
    relay = await service_factory("media-relay")
    space_id = await live_space(room, "kill-host")
    tone = tone_frames(440, 1.0)
    await (await publish_when_admitted(Publisher(relay.channel, space_id, "kill-host", tone[:2])))
    speaker = ReconnectingGateway(relay.channel, space_id, "kill-host", tone)
    listener = ReconnectingGateway(relay.channel, space_id, "gw-failover", None)
    tasks = [
        asyncio.create_task(listener.subscribe_forever()),
        asyncio.create_task(speaker.publish_forever()),
    ]
    try:
        async with asyncio.timeout(10):
            while len(listener.received) < 25:
                await asyncio.sleep(0.05)
        relay.kill()
        killed_at = time.time()
        await relay.restart()  # same port; SERVING once its view is rebuilt from the log
        serving_at = time.time()
        async with asyncio.timeout(10):
            while not listener.received or listener.received[-1] < serving_at:
                await asyncio.sleep(0.02)
        resumed_at = next(t for t in listener.received if t >= serving_at)
        print(
            f"relay killed; back SERVING after {serving_at - killed_at:.2f} s; audio resumed "
            f"{resumed_at - serving_at:.2f} s after that ({resumed_at - killed_at:.2f} s after the kill)"
        )
        assert resumed_at - serving_at < 2.0
        assert speaker.reconnects >= 1 and listener.reconnects >= 1
        frames_before = len(listener.received)
        await asyncio.sleep(0.5)
        assert len(listener.received) - frames_before >= 20  # flowing again at ~50 frames/s
    finally:
        speaker.stop.set()
        listener.stop.set()
        for task in tasks:
            task.cancel()
        await relay.stop()


@pytest.fixture(scope="module")
async def ringed_room(service_factory):
    service = await service_factory("room", env={"PODIUM_ROOM_MEDIA_RELAYS": RELAYS})
    yield service
    await service.stop()


async def test_get_media_endpoint_hashes_spaces_over_the_configured_relays(ringed_room):
    host = RoomClient(ringed_room.channel, "ring-host")
    ring = HashRing(parse_nodes(RELAYS))
    seen = set()
    for i in range(12):
        space_id = (await host.CreateSpace(title=f"ring {i}")).space.space_id
        reply = await host.GetMediaEndpoint(space_id=space_id)
        expected = ring.node_for(space_id)
        assert (reply.relay_id, reply.address) == (expected.node_id, expected.address)
        assert await host.GetMediaEndpoint(space_id=space_id) == reply  # stable
        seen.add(reply.relay_id)
    assert len(seen) >= 2
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await host.GetMediaEndpoint(space_id="no-such-space")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await host.GetMediaEndpoint(space_id="")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_graceful_stop_writes_the_recording_it_still_buffers(service_factory, room, broker):
    relay = await service_factory("media-relay")
    space_id = await live_space(room, "drain-host", recording=True)
    # 30 frames: less than one chunk, so they are still buffered when the relay is told to stop.
    reply = await (
        await publish_when_admitted(Publisher(relay.channel, space_id, "drain-host", tone_frames(440, 0.6)))
    )
    assert reply.frames_forwarded == 30
    await relay.terminate()  # SIGTERM: drain, flush the recorder, wait for the broker's acks
    assert not relay.running

    def frames(records):
        return [
            f.sequence
            for r in records
            if r.key == space_id.encode()
            for f in mt.RecordingChunk.FromString(r.value).frames
        ]

    records = await read_topic(
        broker.bootstrap, MEDIA_RECORDING.name, lambda rs: len(frames(rs)) >= 31, timeout=5
    )
    assert frames(records)[-30:] == list(range(30))
    await relay.stop()
