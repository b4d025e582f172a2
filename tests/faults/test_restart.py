"""A service restarted in the middle of load resumes its views from their stored positions.

The room is stopped gracefully (SIGTERM, as a rolling upgrade does) while the load runs, and
started again. Its durable views (the Space directory, the reactions) must go on from where they
stood, not read the history again, and everything must still hold: nothing acknowledged lost,
nothing applied twice, and every view, the directory included, converged with the log.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.faults.support import Load, assert_sound, judge_stored, record, room_fold, settle, stored_events
from tests.integration.clients import RoomClient

pytestmark = [pytest.mark.faults, pytest.mark.integration]


async def test_a_room_restarted_mid_load_resumes_its_views_and_converges(
    stack, private_broker, private_database_url
):
    services = await stack("room", "moderation")
    room, moderation = services["room"], services["moderation"]
    load = Load(room.channel, moderation=moderation.channel, prefix="r")
    space_id = await load.setup()
    load.start()
    try:
        await asyncio.sleep(2.0)
        applied_before = len(await stored_events(private_database_url, "room", space_id))
        await room.terminate()
        await asyncio.sleep(0.5)
        await room.restart()
        await asyncio.sleep(2.0)
        history = await load.finish()
        convergence = await settle(load, private_broker.bootstrap, private_database_url)
    finally:
        await load.close()
    verdict = await judge_stored(history, private_database_url, space_id)

    # The directory converged too: ListSpaces shows the Space as the log folds it.
    fold = await room_fold(private_broker.bootstrap, space_id)
    listed = {}
    async with asyncio.timeout(30):
        while listed.get("version") != fold.version:
            page = await RoomClient(room.channel, load.host.user_id).ListSpaces(
                host_user_id=load.host.user_id, page_size=10
            )
            [space] = [s for s in page.spaces if s.space_id == space_id]
            listed = {"version": space.version, "participants": space.participant_count}
            await asyncio.sleep(0.2)
    assert listed["participants"] == len(fold.participants)

    # And it resumed: after the restart it applied only what came after its stored position.
    log = room.process.log_path.read_text()
    caught_up = [int(n) for n in re.findall(r"room-space-directory caught up: (\d+) events", log)]
    assert len(caught_up) == 2, caught_up
    record(
        "restart-room-mid-load",
        verdict,
        convergence,
        history,
        room_events_before_restart=applied_before,
        directory_applied_at_restart=caught_up[1],
    )
    assert caught_up[1] < applied_before, (caught_up, applied_before)
    assert_sound(verdict, convergence)
