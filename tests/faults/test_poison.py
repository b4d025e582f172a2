"""Poison on podium.room.events.v1 mid-load: undecodable bytes, and an envelope of an unknown event type.

Every projection that reads the room topic (room's directory, moderation's role
view, presence's board, the media relay's view) sends the undecodable record to podium.deadletter.v1
with the reason and its source offset in the headers, once, and keeps applying
the events after it. The envelope of an unknown type is not poison but an event
from a newer producer: it is skipped (counted), not dead-lettered, and holds
nothing back (tests/integration/test_durable_views.py puts one in the middle of a
Space's stream).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from libs.config.settings import PodiumSettings
from libs.events.kafka import log_end_offsets, make_reader, partitions_of
from libs.events.topics import DEAD_LETTER, ROOM_EVENTS
from podium.common.v1.envelope_pb2 import EventEnvelope
from tests.faults.audio import RESUME_SECONDS, LiveAudio
from tests.faults.support import Load, assert_sound, judge_stored, record, settle

pytestmark = [pytest.mark.faults, pytest.mark.integration]

READERS = {
    "room-space-directory",
    "room-policy-evictor",
    "moderation-room-roles",
    "presence-space-board",
    "media-relay-spaces",
}


def _unknown_type(space_id: str) -> bytes:
    envelope = EventEnvelope(
        event_id="poison-unknown",
        space_id=space_id,
        producer="poison",
        stream_id="poison-1",
        stream_version=1,
        event_type="podium.room.v1.SpaceTeleported",
    )
    envelope.occurred_at.FromDatetime(datetime.now(UTC))
    envelope.payload.type_url = "type.googleapis.com/podium.room.v1.SpaceTeleported"
    envelope.payload.value = b"\x0a\x03abc"
    return envelope.SerializeToString()


async def _dead_letters(bootstrap: str, sources: set[str]) -> dict[tuple[str, str], str]:
    """(source, consumer) -> reason, for dead letters from `sources` (topic:partition:offset)."""
    reader = make_reader(PodiumSettings(kafka_bootstrap_servers=bootstrap), "faults-dlq")
    await reader.start()
    found: dict[tuple[str, str], str] = {}
    try:
        parts = await partitions_of(reader, DEAD_LETTER.name)
        reader.assign(parts)
        ends = await log_end_offsets(reader, parts)
        await reader.seek_to_beginning(*parts)
        while any([await reader.position(tp) < end for tp, end in ends.items()]):
            for records in (await reader.getmany(timeout_ms=500)).values():
                for r in records:
                    headers = {k: v.decode() for k, v in r.headers}
                    if headers.get("podium.source") in sources:
                        key = (headers["podium.source"], headers["podium.consumer"])
                        assert key not in found, f"dead-lettered twice: {key}"
                        found[key] = headers["podium.reason"]
    finally:
        await reader.stop()
    return found


async def test_poison_goes_to_the_dead_letter_topic_and_consumers_keep_going(
    stack, private_broker, private_database_url
):
    services = await stack("room", "moderation", "presence", "media-relay")
    room, moderation, presence = services["room"], services["moderation"], services["presence"]
    load = Load(room.channel, moderation=moderation.channel, presence=presence.channel, prefix="x")
    space_id = await load.setup()
    audio = LiveAudio(services["media-relay"].channel, space_id, load.host.user_id)
    await audio.start()
    load.start()
    producer = AIOKafkaProducer(bootstrap_servers=private_broker.bootstrap)
    await producer.start()
    try:
        await asyncio.sleep(1.5)
        poisoned_at = len(load.history.calls)
        key = space_id.encode()  # the Space's own partition: its later events queue behind the poison
        garbage = await producer.send_and_wait(ROOM_EVENTS.name, value=b"\xff\x00not protobuf\xff", key=key)
        unknown = await producer.send_and_wait(ROOM_EVENTS.name, value=_unknown_type(space_id), key=key)
        poison_sent_at = time.time()
        await asyncio.sleep(3.0)  # more commands after the poison
        audio_gap = audio.longest_gap(poison_sent_at, time.time())
        history = await load.finish()
        await audio.flowing()
        convergence = await settle(load, private_broker.bootstrap, private_database_url)
    finally:
        await producer.stop()
        await load.close()
        await audio.close()
    sources = {
        f"{ROOM_EVENTS.name}:{m.partition}:{m.offset}": kind
        for m, kind in ((garbage, "bytes"), (unknown, "type"))
    }
    async with asyncio.timeout(15):
        while True:
            letters = await _dead_letters(private_broker.bootstrap, set(sources))
            if {c for _, c in letters} >= READERS and len(letters) >= len(READERS):
                break
            await asyncio.sleep(0.5)
    verdict = await judge_stored(history, private_database_url, space_id)
    record(
        "poison-room-topic",
        verdict,
        convergence,
        history,
        dead_letters=len(letters),
        readers=sorted(READERS),
        audio=audio.summary(),
        audio_longest_gap_seconds=round(audio_gap, 3),
    )
    for (source, consumer), reason in letters.items():
        assert sources[source] == "bytes", (source, consumer, reason)  # the unknown type is skipped
        assert reason.startswith("undecodable envelope:"), (source, consumer, reason)
    assert {c for _, c in letters} == READERS and len(letters) == len(READERS)
    # Commands acknowledged after the poison: converge() found them in every view.
    assert any(c.outcome == "acknowledged" for c in history.calls[poisoned_at:])
    assert_sound(verdict, convergence)
    assert audio_gap < RESUME_SECONDS, (
        f"audio stopped for {audio_gap:.2f} s after the poison"
    )  # the relay reads the topic too
