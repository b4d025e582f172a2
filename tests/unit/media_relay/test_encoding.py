"""The fan-out's hand-built protobuf bytes, its drop-oldest queues, and frame validation."""

from __future__ import annotations

import asyncio

import pytest

from libs.domain.errors import InvalidArgument
from podium.media.v1 import media_service_pb2 as pb
from podium.media.v1 import media_types_pb2 as mt
from services.media_relay.application.fanout import DROPPED_FIELD, TICK_FIELD, Subscriber, framed, varint
from services.media_relay.application.recorder import encode_chunk
from services.media_relay.domain.frames import validate_frame


def relayed(speaker: str, seq: int) -> bytes:
    return mt.RelayedFrame(speaker_id=speaker, sequence=seq, opus=b"\x01" * 300).SerializeToString()


def test_a_tick_and_its_dropped_count_decode_as_one_subscribe_response():
    payload = framed(relayed("a", 1)) + framed(relayed("b", 7)) + TICK_FIELD + varint(300)
    message = pb.SubscribeResponse.FromString(payload + DROPPED_FIELD + varint(12345))
    assert [(f.speaker_id, f.sequence) for f in message.frames] == [("a", 1), ("b", 7)]
    assert message.tick == 300 and message.dropped_total == 12345


def test_recording_chunks_decode_with_frames_in_order():
    frames = [relayed("a", i) for i in range(50)]
    chunk = mt.RecordingChunk.FromString(encode_chunk("s", "a", "relay-0", 2**40, frames))
    assert (chunk.space_id, chunk.speaker_id, chunk.relay_id, chunk.chunk_sequence) == (
        "s",
        "a",
        "relay-0",
        2**40,
    )
    assert [f.sequence for f in chunk.frames] == list(range(50))


def test_varint_matches_protobuf():
    for n in (0, 1, 127, 128, 300, 2**32, 2**63):
        assert pb.SubscribeResponse.FromString(TICK_FIELD + varint(n)).tick == n


async def test_a_full_queue_drops_its_oldest_ticks_and_counts_their_frames():
    subscriber = Subscriber(capacity=3)
    for tick in range(1, 8):
        subscriber.offer(TICK_FIELD + varint(tick), frames=2)
    subscriber.close()
    got = [pb.SubscribeResponse.FromString(m) async for m in subscriber.messages()]
    assert [m.tick for m in got] == [5, 6, 7]  # the live edge survives
    assert {m.dropped_total for m in got} == {8}  # 4 ticks x 2 frames


async def test_closing_with_an_error_ends_the_stream_at_once():
    subscriber = Subscriber(capacity=3)
    subscriber.offer(TICK_FIELD + varint(1), frames=1)
    subscriber.close(InvalidArgument("gone"))
    with pytest.raises(InvalidArgument):
        async for _ in subscriber.messages():
            pass
    waiting = Subscriber(capacity=3)
    reader = asyncio.ensure_future(anext(waiting.messages()))
    await asyncio.sleep(0)
    waiting.offer(TICK_FIELD + varint(9), frames=1)
    assert pb.SubscribeResponse.FromString(await reader).tick == 9


def test_frames_are_validated_field_by_field():
    good = mt.AudioFrame(space_id="s", speaker_id="a", opus=b"x" * 1275, audio_level_dbov=-30)
    validate_frame(good, 0)
    bad = mt.AudioFrame(space_id="", speaker_id="a", opus=b"x" * 1276, audio_level_dbov=5)
    with pytest.raises(InvalidArgument) as caught:
        validate_frame(bad, 3)
    assert {v.field for v in caught.value.violations} == {
        "frame.space_id",
        "frame.opus",
        "frame.audio_level_dbov",
    }
    assert "frame 3" in caught.value.message
