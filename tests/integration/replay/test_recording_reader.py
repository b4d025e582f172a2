"""Reading one Space's recording from the real broker: its partition, from its start, without duplicates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from libs.config.settings import PodiumSettings
from services.replay.infrastructure.recording_reader import read_recording
from tests.support.opus_tones import recording_chunks, tone_packets

pytestmark = pytest.mark.integration


async def test_the_reader_starts_at_the_spaces_start_and_drops_duplicate_chunks(broker, media_log):
    space_id, other = f"reader-{uuid.uuid4().hex}", f"reader-{uuid.uuid4().hex}"
    packets = tone_packets(440, 1.0)
    now = datetime.now(UTC)
    stale = recording_chunks(space_id, "ghost", packets, now - timedelta(hours=2), relay_id="old-relay")
    for chunk in stale:  # on the partition, but timestamped long before the Space started
        await media_log.producer.send_and_wait(
            "podium.media.recording.v1",
            key=space_id.encode(),
            value=chunk.SerializeToString(),
            timestamp_ms=int((now - timedelta(hours=2)).timestamp() * 1000),
        )
    chunks = recording_chunks(space_id, "alice", packets, now, frames_per_chunk=25)
    await media_log.chunks(chunks)
    await media_log.chunks(chunks[:1])  # a relay resent its first chunk
    await media_log.chunks(recording_chunks(other, "bob", packets, now))

    settings = PodiumSettings(kafka_bootstrap_servers=broker.bootstrap)
    frames = await read_recording(settings, space_id, since=now - timedelta(minutes=5))
    assert {f.speaker_id for f in frames} == {"alice"}
    assert len(frames) == len(packets) and len({(f.speaker_id, f.captured_at) for f in frames}) == len(
        packets
    )
    everything = await read_recording(settings, space_id)
    assert {f.speaker_id for f in everything} == {"alice", "ghost"}
    assert await read_recording(settings, f"reader-{uuid.uuid4().hex}") == []
