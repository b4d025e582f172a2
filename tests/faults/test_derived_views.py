"""SIGKILL, then SIGSTOP for 5 s, analytics and replay mid-load: what they derive still equals a fresh
derivation from the log.

The Space is recorded and its host speaks real Opus through the media relay
while the load runs. Analytics (faust) is killed and restarted, then replay; then
each is frozen for 5 s.
After the Space ends:

- a rebuild of analytics with fresh state (a new app id) publishes a final
  `SpaceStats` with the figures `podium report` computes from the room topic
  (listener-minutes, speaking time, requests to speak and their median wait,
  peak and unique listeners), and so does the SIGKILLed instance;
- the replay is READY, and its duration is the span of the recording chunks
  the relay wrote to `podium.media.recording.v1`: nothing recorded was lost
  or counted twice across the replay service's crash (within the mixer's
  30 ms jitter allowance and one frame).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from libs.analytics.space_report import build
from libs.config.settings import PodiumSettings
from libs.events.tail import space_history
from libs.events.topics import MEDIA_RECORDING, ROOM_EVENTS
from podium.media.v1 import media_types_pb2 as mt
from podium.replay.v1 import replay_types_pb2 as rt
from services.replay.infrastructure.audio import JITTER_SAMPLES, RATE
from tests.faults.audio import LiveAudio
from tests.faults.support import Load, assert_sound, judge_stored, pause, record, settle
from tests.integration.analytics.test_analytics_stream import FAST as ANALYTICS_FAST
from tests.integration.analytics.test_analytics_stream import _final
from tests.integration.media_relay.gateway import read_topic, stamp_seconds
from tests.integration.replay.conftest import FAST_FINALIZE, ReplayClient, until_ready

pytestmark = [pytest.mark.faults, pytest.mark.integration]

FRAME_SECONDS = 0.02
# The mixer lays a speaker's next frame right after the previous one when its capture time is within
# the jitter allowance of it, so a replay's length may differ from the capture span by up to that
# allowance, plus the last whole 20 ms frame (seen: 26 ms over a 58 s recording on a busy machine).
LENGTH_TOLERANCE = JITTER_SAMPLES / RATE + FRAME_SECONDS


def _recorded_span(records, space_id: str) -> tuple[float, int]:
    """Seconds from the first recorded frame's capture to the end of the last, and frames recorded."""
    chunks = [mt.RecordingChunk.FromString(r.value) for r in records if r.key == space_id.encode()]
    captured = sorted({stamp_seconds(f.captured_at) for c in chunks for f in c.frames})
    return captured[-1] - captured[0] + FRAME_SECONDS, len(captured)


def _quiet_for(seconds: float):
    """An `until` for read_topic: true once records stopped arriving for `seconds` (the whole topic read)."""
    seen = {"count": -1, "since": time.monotonic()}

    def until(records) -> bool:
        if len(records) != seen["count"]:
            seen["count"], seen["since"] = len(records), time.monotonic()
        return bool(records) and time.monotonic() - seen["since"] >= seconds

    return until


async def test_sigkilled_analytics_and_replay_derive_what_the_log_says(
    stack, private_broker, private_database_url, tmp_path
):
    services: dict = {}
    for started in await asyncio.gather(
        stack("room", "moderation", "presence", "media-relay"),
        stack("replay", env={"PODIUM_REPLAY_BLOB_DIR": str(tmp_path), **FAST_FINALIZE}),
        stack("analytics", env=ANALYTICS_FAST),
    ):
        services |= started
    room, moderation, presence = services["room"], services["moderation"], services["presence"]
    load = Load(room.channel, moderation=moderation.channel, presence=presence.channel, prefix="d")
    space_id = await load.setup(recording=True)
    audio = LiveAudio(services["media-relay"].channel, space_id, load.host.user_id)
    await audio.start()
    load.start()
    down: dict[str, float] = {}
    try:
        for victim in ("analytics", "replay"):
            await asyncio.sleep(1.5)
            services[victim].kill()
            killed = time.monotonic()
            await asyncio.sleep(0.5)
            await services[victim].restart()
            down[victim] = round(time.monotonic() - killed, 2)
        for victim in ("analytics", "replay"):  # and each frozen for 5 s
            await asyncio.sleep(1.0)
            await pause(services[victim], 5.0)
        await asyncio.sleep(1.5)
        history = await load.finish()
        convergence = await settle(load, private_broker.bootstrap, private_database_url)
        await load.host.EndSpace(space_id=space_id)
    finally:
        await load.close()
        await audio.close()
    verdict = await judge_stored(history, private_database_url, space_id)
    assert_sound(verdict, convergence)

    # Analytics: the final figures equal a derivation from the room topic (`podium report`'s).
    stats, stats_offsets = await _final(private_broker.bootstrap, space_id, timeout=60)
    final = stats[-1]
    settings = PodiumSettings(kafka_bootstrap_servers=private_broker.bootstrap)
    report = build(space_id, await space_history(settings, ROOM_EVENTS.name, space_id))
    # The load happened (its listeners cycle faster than a listening stretch settles, so joins,
    # not unique listeners, say so); the figures below must then equal this derivation.
    assert report.speak_requests > 0 and sum(report.joins_by_source.values()) >= len(load.listeners)
    # A rebuild with fresh state (a new app id) from the log publishes exactly those figures.
    rebuilt_service = (
        await stack("analytics", env=ANALYTICS_FAST | {"PODIUM_ANALYTICS_APP_ID": "analytics-after-faults"})
    )["analytics"]
    rebuilt, _ = await _final(private_broker.bootstrap, space_id, after=stats_offsets, timeout=60)
    await rebuilt_service.stop()
    assert _figures(rebuilt[-1]) == pytest.approx(_figures_of_report(report), abs=1e-6)

    # Replay: READY, as long as the recording the relay wrote.
    replay = await until_ready(ReplayClient(services["replay"].channel, "d-listener"), space_id, timeout=60)
    recorded = await read_topic(private_broker.bootstrap, MEDIA_RECORDING.name, _quiet_for(1.0), timeout=20)
    span, frames = _recorded_span(recorded, space_id)
    duration = replay.duration.ToTimedelta().total_seconds()
    assert replay.state == rt.REPLAY_STATE_READY and list(replay.speaker_ids) == [load.host.user_id]
    assert abs(duration - span) <= LENGTH_TOLERANCE, (duration, span)

    record(
        "sigkill-analytics-replay",
        verdict,
        convergence,
        history,
        down_seconds=down,
        audio=audio.summary(),
        recorded_frames=frames,
        replay_duration_seconds=round(duration, 3),
        recorded_span_seconds=round(span, 3),
        listener_minutes=round(final.listener_minutes, 4),
    )

    # The instance that was SIGKILLed mid-load published the same figures, with no hole given up on.
    log_lines = services["analytics"].process.log_path.read_text(errors="replace").splitlines()
    assert [line for line in log_lines if "never folded" in line] == []
    assert _figures(final) == pytest.approx(_figures_of_report(report), abs=1e-6)


def _figures(stats) -> dict:
    return _flat(
        stats.peak_listeners,
        stats.unique_listeners,
        stats.speak_requests,
        stats.speak_requests_approved,
        stats.listener_minutes,
        dict(stats.speaking_role_seconds),
        stats.median_wait_seconds,
    )


def _figures_of_report(report) -> dict:
    return _flat(
        report.peak_listeners,
        report.unique_listeners,
        report.speak_requests,
        report.speak_requests_approved,
        report.listener_minutes,
        report.speaking_role_seconds,
        report.median_wait_seconds or 0.0,
    )


def _flat(peak, unique, requests, approved, listener_minutes, speaking: dict, median_wait) -> dict:
    figures = {
        "peak": peak,
        "unique": unique,
        "requests": requests,
        "approved": approved,
        "listener_minutes": listener_minutes,
        "median_wait": median_wait,
    }
    return figures | {f"speaking {user}": seconds for user, seconds in speaking.items()}
