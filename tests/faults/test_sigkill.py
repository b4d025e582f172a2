"""SIGKILL each service in turn mid-load (room, moderation, presence, media relay), restart it,
check the history, and check the host's audio comes back within 2 s of each restart.

Killing the control plane (room, moderation, presence) must not stop the audio at all; killing
the relay cuts it until the relay serves again and the gateways reconnect.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.audio import RESUME_SECONDS, LiveAudio
from tests.faults.support import Load, assert_sound, judge_stored, record, settle

pytestmark = [pytest.mark.faults, pytest.mark.integration]

VICTIMS = ("room", "moderation", "presence", "media-relay")


async def test_sigkill_each_service_in_turn_loses_and_duplicates_nothing(
    stack, private_broker, private_database_url
):
    services = await stack(*VICTIMS)
    room, moderation, presence, relay = (services[n] for n in VICTIMS)
    load = Load(room.channel, moderation=moderation.channel, presence=presence.channel, prefix="k")
    space_id = await load.setup()
    audio = LiveAudio(relay.channel, space_id, load.host.user_id)
    await audio.start()
    load.start()
    down: dict[str, float] = {}
    failed_while_down: dict[str, int] = {}
    audio_resumed: dict[str, float] = {}
    audio_gap: dict[str, float] = {}
    try:
        for victim in VICTIMS:
            await asyncio.sleep(1.5)
            before = (
                load.history.error_codes(victim).total(),
                load.history.heartbeats_failed,
                audio.speaker.reconnects + audio.listener.reconnects,
            )
            services[victim].kill()
            killed, killed_at = time.monotonic(), time.time()
            await asyncio.sleep(0.5)
            await services[victim].restart()
            serving_at = time.time()
            down[victim] = round(time.monotonic() - killed, 2)
            audio_resumed[victim] = round(await audio.resumed_after(serving_at), 3)
            audio_gap[victim] = round(audio.longest_gap(killed_at, serving_at), 3)
            if victim == "presence":
                failed_while_down[victim] = load.history.heartbeats_failed - before[1]
            elif victim == "media-relay":
                failed_while_down[victim] = audio.speaker.reconnects + audio.listener.reconnects - before[2]
            else:
                # Calls already in flight at the kill count too: they retry through the outage.
                failed_while_down[victim] = load.history.error_codes(victim).total() - before[0]
        await asyncio.sleep(1.0)
        history = await load.finish()
        await audio.flowing()
        convergence = await settle(load, private_broker.bootstrap, private_database_url)
    finally:
        await load.close()
        await audio.close()
    verdict = await judge_stored(history, private_database_url, space_id)
    record(
        "sigkill-room-moderation-presence-relay",
        verdict,
        convergence,
        history,
        down_seconds=down,
        failed_while_down=failed_while_down,
        errors=dict(history.error_codes()),
        audio=audio.summary(),
        audio_resumed_seconds_after_serving=audio_resumed,
        audio_longest_gap_seconds_while_down=audio_gap,
    )
    assert_sound(verdict, convergence)
    for victim in VICTIMS:  # each fault was felt by the load, and retried through
        assert failed_while_down[victim] > 0, f"nothing failed while {victim} was down"
    for victim, seconds in audio_resumed.items():
        assert seconds < RESUME_SECONDS, f"audio came back {seconds} s after {victim} served again"
