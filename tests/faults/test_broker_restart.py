"""The broker killed mid-load and restarted empty (the dev broker keeps its log in memory).

Each service's outbox relay notices that the broker holds fewer records than it
acknowledged and reseeds the topic from its `events` table. The projection
runners are group-less readers: their positions point past the end of the new,
shorter log, so their next fetch is out of range and aiokafka resets them to the
earliest offset (`auto_offset_reset="earliest"`); the stream-version gate drops
what they already applied. A reader that lands inside the new log past events it
has not seen finds a version gap, holds the event and re-reads the partition.

The host speaks through the media relay all along: live audio does not go
through the broker, so it must not stop while the broker is away.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.audio import RESUME_SECONDS, LiveAudio
from tests.faults.support import Load, assert_sound, judge_stored, record, settle

pytestmark = [pytest.mark.faults, pytest.mark.integration]


async def test_broker_restarted_empty_is_reseeded_and_views_converge(
    stack, private_broker, private_database_url
):
    services = await stack("room", "moderation", "presence", "media-relay")
    room, moderation, presence = services["room"], services["moderation"], services["presence"]
    load = Load(room.channel, moderation=moderation.channel, presence=presence.channel, prefix="b")
    space_id = await load.setup()
    audio = LiveAudio(services["media-relay"].channel, space_id, load.host.user_id)
    await audio.start()
    load.start()
    try:
        await asyncio.sleep(2.0)
        acknowledged_before = len(load.history.by_outcome("acknowledged"))
        restarted, restarted_at = time.monotonic(), time.time()
        await private_broker.restart()
        outage = time.monotonic() - restarted
        await asyncio.sleep(3.0)
        audio_gap = audio.longest_gap(restarted_at, time.time())
        history = await load.finish()
        await audio.flowing()
        convergence = await settle(load, private_broker.bootstrap, private_database_url, timeout=40)
    finally:
        await load.close()
        await audio.close()
    verdict = await judge_stored(history, private_database_url, space_id)
    record(
        "broker-restarted-empty",
        verdict,
        convergence,
        history,
        acknowledged_before_restart=acknowledged_before,
        broker_down_seconds=round(outage, 2),
        errors=dict(history.error_codes()),
        audio=audio.summary(),
        audio_longest_gap_seconds=round(audio_gap, 3),
    )
    assert acknowledged_before > 0
    assert_sound(verdict, convergence)
    assert audio_gap < RESUME_SECONDS, f"audio stopped for {audio_gap:.2f} s while the broker was away"
