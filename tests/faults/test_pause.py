"""SIGSTOP for 5 s, then SIGCONT (a long GC pause, a frozen VM) of room, moderation and the relay.

While room is stopped its calls hit the clients' deadline (or UNAVAILABLE); they
are retried with the same request_id, so after SIGCONT the room may receive the
same request several times at once: it must apply it once. The host speaks
through the media relay throughout: the room's pause never silences it.
Presence frozen (for three times its timeout) is `test_no_mass_exodus.py`.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.audio import RESUME_SECONDS, LiveAudio
from tests.faults.support import Load, assert_sound, judge_stored, pause, record, settle

pytestmark = [pytest.mark.faults, pytest.mark.integration]

PAUSE = 5.0


async def test_a_5s_pause_of_each_service_is_retried_without_duplicates(
    stack, private_broker, private_database_url
):
    services = await stack("room", "moderation", "presence", "media-relay")
    room, moderation, presence = services["room"], services["moderation"], services["presence"]
    load = Load(room.channel, moderation=moderation.channel, presence=presence.channel, prefix="p")
    space_id = await load.setup()
    audio = LiveAudio(services["media-relay"].channel, space_id, load.host.user_id)
    await audio.start()
    load.start()
    audio_gap: dict[str, float] = {}
    try:
        await asyncio.sleep(1.5)
        before = load.history.error_codes("room")
        paused_at = time.time()
        await pause(room, PAUSE)
        audio_gap["room"] = audio.longest_gap(paused_at, time.time())
        await asyncio.sleep(1.5)
        room_failures = load.history.error_codes("room") - before
        before = load.history.error_codes("moderation")
        await pause(moderation, PAUSE)
        await asyncio.sleep(1.5)
        moderation_failures = load.history.error_codes("moderation") - before
        # The relay itself: frames queue up in the speaker's connection while it is frozen, and
        # after SIGCONT the listener hears it again at once (no reconnect needed).
        await pause(services["media-relay"], PAUSE)
        relay_resumed = await audio.resumed_after(time.time())
        await asyncio.sleep(1.5)
        history = await load.finish()
        convergence = await settle(load, private_broker.bootstrap, private_database_url)
    finally:
        await load.close()
        await audio.close()
    verdict = await judge_stored(history, private_database_url, space_id)
    retried = [c for c in history.calls if c.outcome == "acknowledged" and c.attempts > 1]
    record(
        "pause-5s-each-service",
        verdict,
        convergence,
        history,
        retried_then_acknowledged=len(retried),
        room_errors_in_pause=dict(room_failures),
        moderation_errors_in_pause=dict(moderation_failures),
        audio_resumed_seconds_after_relay_sigcont=round(relay_resumed, 3),
        errors=dict(history.error_codes()),
        audio=audio.summary(),
        audio_longest_gap_seconds_in_pause={k: round(v, 3) for k, v in audio_gap.items()},
    )
    # The pause was felt: calls hit their deadline (or UNAVAILABLE), and were retried.
    assert room_failures["DEADLINE_EXCEEDED"] + room_failures["UNAVAILABLE"] > 0, room_failures
    assert moderation_failures["DEADLINE_EXCEEDED"] + moderation_failures["UNAVAILABLE"] > 0, (
        moderation_failures
    )
    assert relay_resumed < RESUME_SECONDS, relay_resumed
    assert retried  # the same request_id was sent again, and applied once (judge)
    assert_sound(verdict, convergence)
    # Audio does not go through the room service: its pause never silences it.
    assert all(gap < RESUME_SECONDS for gap in audio_gap.values()), audio_gap
