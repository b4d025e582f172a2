"""The broker killed mid-load and restarted empty (the dev broker keeps its log in memory), then
recovered by the operator's procedure (docs/operations.md, "Lost log").

Services do not heal a lost log themselves: they report it and stop consuming.
So, as an operator would, the test stops every service (scaled to 0), runs
`podium log recover` (the same function: topics made again, every event store
reseeded from PostgreSQL, the faust apps' groups sent back to the earliest
offsets and their changelogs emptied, the spool's positions forgotten, a
rebuild of every durable view requested), and starts the services again. Then
the same three checks as for every fault: nothing acknowledged lost, nothing
applied twice, views converged.

The host speaks through the media relay all along: live audio does not go
through the broker, so it must not stop while the broker is away (until the
operator stops the relay with the rest, after which it resumes within
`RESUME_SECONDS` of the relay serving again).

Presence still takes new heartbeats and times people out; analytics' final
figures for the Space, recomputed from the start, equal a derivation from the
reseeded room topic.

The Space is recorded. Recording chunks have no event store to be reseeded
from: the replay service's recording spool kept its own copy as they were
written, so the replay still holds the audio recorded before the broker lost
it, and is as long as what the listener heard.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import grpc
import pytest

from libs.analytics.space_report import build
from libs.config.settings import PodiumSettings
from libs.events.tail import space_history
from libs.events.topics import ROOM_EVENTS
from libs.recovery.procedure import recover
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


async def test_broker_restarted_empty_is_recovered_by_the_operator_procedure_and_views_converge(
    stack, private_broker, private_database_url, tmp_path
):
    services: dict = {}
    for started in await asyncio.gather(
        stack("room", "moderation", "presence", "media-relay"),
        stack("analytics", env=ANALYTICS_FAST),
        stack("replay", env={"PODIUM_REPLAY_BLOB_DIR": str(tmp_path), **FAST_FINALIZE}),
    ):
        services |= started
    room, moderation, presence = services["room"], services["moderation"], services["presence"]
    load = Load(room.channel, moderation=moderation.channel, presence=presence.channel, prefix="b")
    space_id = await load.setup(recording=True)
    audio = LiveAudio(services["media-relay"].channel, space_id, load.host.user_id)
    await audio.start()
    load.start()
    said: list[str] = []
    try:
        await asyncio.sleep(2.0)  # load before the loss
        acknowledged_before = len(load.history.by_outcome("acknowledged"))
        lost_at = time.time()
        await private_broker.restart()  # empty: every topic and record is gone
        # Load goes on with the log gone. No service papers over it: each reports a lost log and
        # says NOT_SERVING (what the operator is paged on), while acknowledged writes wait in
        # PostgreSQL.
        async with asyncio.timeout(60):
            while True:
                healths = [await s.process.health() for s in services.values()]
                if all(health == "NOT_SERVING" for health in healths):
                    break
                await asyncio.sleep(0.3)
        detected_after = time.time() - lost_at
        audio_gap = audio.longest_gap(lost_at, time.time())

        # The operator: scale to 0, `podium log recover`, scale back up.
        stopped = time.monotonic()
        await asyncio.gather(*(s.terminate() for s in services.values()))
        recovering = time.monotonic()
        settings = PodiumSettings(
            kafka_bootstrap_servers=private_broker.bootstrap, database_url=private_database_url
        )
        pool = await asyncpg.create_pool(private_database_url, min_size=1, max_size=3)
        try:
            recovery = await recover(settings, pool, say=said.append)
        finally:
            await pool.close()
        recovery_seconds = time.monotonic() - recovering
        await asyncio.gather(*(s.restart() for s in services.values()))
        serving_at = time.time()
        services_down = time.monotonic() - stopped
        audio_resumed = await audio.resumed_after(serving_at)

        history = await load.finish()
        await audio.flowing()
        convergence = await settle(load, private_broker.bootstrap, private_database_url, timeout=60)
        await load.host.EndSpace(space_id=space_id)
    finally:
        await load.close()
        await audio.close()
    print("\n".join(said))
    verdict = await judge_stored(history, private_database_url, space_id)
    reseeded = {f"{schema} {topic}": n for schema, c in recovery.reseeded.items() for topic, n in c.items()}
    record(
        "broker-restarted-empty",
        verdict,
        convergence,
        history,
        acknowledged_before_loss=acknowledged_before,
        services_down_seconds=round(services_down, 2),
        recovery_seconds=round(recovery_seconds, 2),
        topics_made=len(recovery.topics),
        reseeded=reseeded,
        errors=dict(history.error_codes()),
        audio=audio.summary(),
        audio_longest_gap_seconds_while_broker_lost=round(audio_gap, 3),
        every_service_not_serving_after_seconds=round(detected_after, 2),
        audio_resumed_seconds_after_serving=round(audio_resumed, 3),
    )
    heard = audio.listener.received
    assert acknowledged_before > 0
    assert reseeded[f"room {ROOM_EVENTS.name}"] > 0
    assert_sound(verdict, convergence)

    # Presence's stream runs on: a new user's heartbeats show them, and their silence times them out.
    gateway = PresenceGateway(presence.channel, "gateway-faults")
    newcomer = [pt.PresenceEntry(user_id="b-after-the-restart", space_id="b-space-after-the-restart")]
    await announce_spaces(private_broker.bootstrap, ["b-space-after-the-restart"], presence=presence.channel)

    async def present() -> int:
        return (await gateway.GetSpacePresence(space_id="b-space-after-the-restart")).present_count

    async def report(entries) -> None:
        try:
            await gateway.ReportPresence(gateway_id="gw-after-the-restart", entries=entries)
        except grpc.aio.AioRpcError as e:  # a broker just back may refuse a write: retried, as gateways do
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e

    async with asyncio.timeout(30):
        while await present() != 1:
            await report(newcomer)
            await asyncio.sleep(0.3)
        while await present() != 0:  # the gateway reports without them now: out after the 3 s timeout
            await report([])
            await asyncio.sleep(0.3)

    # Analytics' final figures, recomputed from the start, equal a derivation from the reseeded room topic.
    stats, _ = await _final(private_broker.bootstrap, space_id, timeout=60)
    report = build(space_id, await space_history(settings, ROOM_EVENTS.name, space_id))
    assert _figures(stats[-1]) == pytest.approx(_figures_of_report(report), abs=1e-6)

    # The replay holds the audio from before the loss, and is as long as what the listener heard
    # (its receive times, within the mixer's jitter allowance, a frame and the relay's latency).
    replay = await until_ready(ReplayClient(services["replay"].channel, "b-listener"), space_id, timeout=60)
    recording_started = replay.recording_started_at.ToDatetime().timestamp()
    heard_span = heard[-1] - heard[0] + 0.02
    duration = replay.duration.ToTimedelta().total_seconds()
    print(
        f"replay {duration:.3f} s, heard {heard_span:.3f} s, recording began {lost_at - recording_started:.2f} s before the loss"
    )
    assert recording_started < lost_at - 1.0, "the audio recorded before the broker lost its log is missing"
    assert abs(duration - heard_span) < 0.25, (duration, heard_span)
    assert audio_gap < RESUME_SECONDS, f"audio stopped for {audio_gap:.2f} s while the broker was away"
    assert audio_resumed < RESUME_SECONDS, (
        f"audio came back {audio_resumed:.2f} s after the relay served again"
    )
