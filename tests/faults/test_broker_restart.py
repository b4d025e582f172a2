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

The faust apps (presence's stream processor, moderation's report windows,
analytics) find their topics gone and put them back (`libs/streams/lost_log.py`):
afterwards presence still takes new heartbeats and times people out, and
analytics' final figures for the Space equal a derivation from the reseeded room
topic.

The Space is recorded. The recording chunks have no outbox to be reseeded from:
the replay service's recording spool keeps its own copy as they are written, so
the replay still holds the audio recorded before the broker lost it, and is as
long as what the listener heard.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from libs.analytics.space_report import build
from libs.config.settings import PodiumSettings
from libs.events.tail import space_history
from libs.events.topics import ROOM_EVENTS
from podium.presence.v1 import presence_types_pb2 as pt
from tests.faults.audio import RESUME_SECONDS, LiveAudio
from tests.faults.support import Load, assert_sound, judge_stored, record, settle
from tests.faults.test_derived_views import _figures, _figures_of_report
from tests.integration.analytics.test_analytics_stream import FAST as ANALYTICS_FAST
from tests.integration.analytics.test_analytics_stream import _final
from tests.integration.clients import PresenceGateway
from tests.integration.replay.conftest import FAST_FINALIZE, ReplayClient, until_ready
from tests.support.room_log import announce_spaces

pytestmark = [pytest.mark.faults, pytest.mark.integration]


async def test_broker_restarted_empty_is_reseeded_and_views_converge(
    stack, private_broker, private_database_url, tmp_path
):
    services = await stack("room", "moderation", "presence", "media-relay")
    services |= await stack("analytics", env=ANALYTICS_FAST)
    services |= await stack("replay", env={"PODIUM_REPLAY_BLOB_DIR": str(tmp_path), **FAST_FINALIZE})
    room, moderation, presence = services["room"], services["moderation"], services["presence"]
    load = Load(room.channel, moderation=moderation.channel, presence=presence.channel, prefix="b")
    space_id = await load.setup(recording=True)
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
        await load.host.EndSpace(space_id=space_id)
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
    heard = audio.listener.received
    assert acknowledged_before > 0
    assert_sound(verdict, convergence)

    # Presence's stream runs on: a new user's heartbeats show them, and their silence times them out.
    gateway = PresenceGateway(presence.channel, "gateway-faults")
    newcomer = [pt.PresenceEntry(user_id="b-after-the-restart", space_id="b-space-after-the-restart")]
    await announce_spaces(private_broker.bootstrap, ["b-space-after-the-restart"], presence=presence.channel)

    async def present() -> int:
        return (await gateway.GetSpacePresence(space_id="b-space-after-the-restart")).present_count

    async with asyncio.timeout(30):
        while await present() != 1:
            await gateway.ReportPresence(gateway_id="gw-after-the-restart", entries=newcomer)
            await asyncio.sleep(0.3)
        while await present() != 0:  # silent now: out after the 3 s timeout
            await asyncio.sleep(0.3)

    # Analytics' final figures equal a derivation from the (reseeded) room topic.
    stats, _ = await _final(private_broker.bootstrap, space_id, timeout=60)
    settings = PodiumSettings(kafka_bootstrap_servers=private_broker.bootstrap)
    report = build(space_id, await space_history(settings, ROOM_EVENTS.name, space_id))
    assert _figures(stats[-1]) == pytest.approx(_figures_of_report(report), abs=1e-6)

    # The replay holds the audio from before the restart, and is as long as what the listener heard
    # (its receive times, within the mixer's jitter allowance, a frame and the relay's latency).
    replay = await until_ready(ReplayClient(services["replay"].channel, "b-listener"), space_id, timeout=60)
    recording_started = replay.recording_started_at.ToDatetime().timestamp()
    heard_span = heard[-1] - heard[0] + 0.02
    duration = replay.duration.ToTimedelta().total_seconds()
    print(
        f"replay {duration:.3f} s, heard {heard_span:.3f} s, recording began {restarted_at - recording_started:.2f} s before the restart"
    )
    assert recording_started < restarted_at - 1.0, "the audio recorded before the broker restart is missing"
    assert abs(duration - heard_span) < 0.25, (duration, heard_span)
    assert audio_gap < RESUME_SECONDS, f"audio stopped for {audio_gap:.2f} s while the broker was away"
