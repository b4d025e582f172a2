"""End to end through the media relay: speakers publish, the relay records, replay mixes what it recorded."""

from __future__ import annotations

import asyncio
from datetime import UTC

import pytest

from podium.replay.v1 import replay_types_pb2 as rt
from tests.integration.clients import RoomClient
from tests.integration.media_relay.gateway import Publisher, publish_when_admitted
from tests.integration.replay.conftest import ReplayClient, until_ready
from tests.support.audio import tone_frames
from tests.support.opus_tones import band_energy, decode_ogg, dominant_frequency

pytestmark = pytest.mark.integration
RATE = 48_000


@pytest.fixture(scope="module")
async def relay(service_factory, room, moderation):
    service = await service_factory("media-relay")
    yield service
    await service.stop()


async def test_what_the_relay_recorded_is_mixed_into_the_replay(relay, room, replay, blob_dir):
    host = RoomClient(room.channel, "e2e-host")
    space_id = (await host.CreateSpace(title="Through the relay", recording_enabled=True)).space.space_id
    await host.StartSpace(space_id=space_id)
    for speaker in ("e2e-alice", "e2e-bob"):
        await RoomClient(room.channel, speaker).JoinSpace(space_id=space_id)
        await host.InviteToSpeak(space_id=space_id, user_id=speaker)

    alice = Publisher(relay.channel, space_id, "e2e-alice", tone_frames(440, 2.0))
    bob = Publisher(relay.channel, space_id, "e2e-bob", tone_frames(1000, 2.0))
    await (await publish_when_admitted(alice))  # A speaks, then B
    await (await publish_when_admitted(bob))
    await asyncio.sleep(1.0)  # the relay's last chunks reach the recording topic
    await host.EndSpace(space_id=space_id)

    client = ReplayClient(replay.channel, "e2e-listener")
    got = await until_ready(client, space_id, timeout=45)
    assert got.state == rt.REPLAY_STATE_READY
    assert sorted(got.speaker_ids) == ["e2e-alice", "e2e-bob"]
    origin = got.recording_started_at.ToDatetime(tzinfo=UTC).timestamp()
    samples = decode_ogg((blob_dir / f"{space_id}.ogg").read_bytes())
    assert abs(len(samples) / RATE - got.duration.ToTimedelta().total_seconds()) <= 0.02
    assert abs(got.duration.ToTimedelta().total_seconds() - (bob.finished - origin)) < 0.25
    for who, tone, other in ((alice, 440, 1000), (bob, 1000, 440)):
        start, end = who.started - origin + 0.3, who.finished - origin - 0.3
        window = samples[int(start * RATE) : int(end * RATE)]
        assert abs(dominant_frequency(window) - tone) < 8, (
            who.speaker_id,
            start,
            end,
        )  # 4 Hz syllable sidebands
        assert band_energy(window, tone) > 20 * band_energy(window, other)
