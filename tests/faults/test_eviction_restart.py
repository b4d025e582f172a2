"""SIGKILL the room while its evictor is emptying a Space that has just turned invite-only.

The evictor stores its position only once every listener of a batch's switches is out, so a
crash half-way reads the switch again after the restart, and the evictions are decided again on
the Space as it is then: those already out are not evicted twice, the rest go. Afterwards every
listener who came in while the Space was open is out exactly once, and no stream has a gap:
on the Space's one stream, and through its listener shards (ADR 0012), where each shard's share
goes in appends of at most a chunk, the shards all at once.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from google.protobuf import field_mask_pb2

from libs.events.envelope import unwrap
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as types
from tests.faults.support import stored_events
from tests.integration.clients import RoomClient

pytestmark = [pytest.mark.faults, pytest.mark.integration]

LISTENERS = 1500
CHUNK = 50  # listeners per eviction append: 30 appends, so a kill lands between them


async def _first_leave(database_url: str, space_id: str, timeout: float = 30.0) -> None:
    """Returns as soon as the Space's first leave is stored. Polls one cheap count on one connection
    every few milliseconds: decoding the whole Space each time would take as long as the evictor's
    thirty appends on a fast host, and the kill would land after the last."""
    conn = await asyncpg.connect(database_url)
    try:
        async with asyncio.timeout(timeout):
            while not await conn.fetchval(
                "SELECT count(*) FROM room.events WHERE space_id = $1 AND event_type LIKE '%ParticipantLeft'",
                space_id,
            ):
                await asyncio.sleep(0.002)
    finally:
        await conn.close()


async def _policy_leaves(database_url: str, space_id: str) -> list[str]:
    return [
        event.user_id
        for _, _, envelope in await stored_events(database_url, "room", space_id)
        if envelope.event_type.endswith("ParticipantLeft")
        and (event := unwrap(envelope)).reason == rev.LEAVE_REASON_POLICY
    ]


@pytest.mark.parametrize("shard_joins_per_second", [0, 5], ids=["one-stream", "listener-shards"])
async def test_sigkill_the_room_while_it_evicts_and_every_listener_goes_once(
    stack, private_database_url, shard_joins_per_second
):
    env = {
        "PODIUM_ROOM_EVICTION_CHUNK": str(CHUNK),
        "PODIUM_ROOM_LISTENER_SHARD_JOINS_PER_SECOND": str(shard_joins_per_second),
    }
    room = (await stack("room", env=env))["room"]
    host = RoomClient(room.channel, "evict-host")
    space_id = (await host.CreateSpace(title="turning private")).space.space_id
    await host.StartSpace(space_id=space_id)
    await host.InviteUsers(space_id=space_id, user_ids=["evict-invited"])
    await RoomClient(room.channel, "evict-invited").JoinSpace(space_id=space_id)
    listeners = [f"evict-{n}" for n in range(LISTENERS)]
    for start in range(0, LISTENERS, 250):
        await asyncio.gather(
            *(
                RoomClient(room.channel, u).JoinSpace(space_id=space_id)
                for u in listeners[start : start + 250]
            )
        )
    await host.UpdateSpace(
        space_id=space_id,
        join_policy=types.JOIN_POLICY_INVITED_ONLY,
        update_mask=field_mask_pb2.FieldMask(paths=["join_policy"]),
    )
    await _first_leave(private_database_url, space_id)  # no one else leaves: these are evictions
    room.kill()
    out_at_kill = await _policy_leaves(private_database_url, space_id)
    assert 0 < len(out_at_kill) < LISTENERS, f"killed with {len(out_at_kill)} of {LISTENERS} out"
    await room.restart()

    deadline = time.monotonic() + 60
    while len(out := await _policy_leaves(private_database_url, space_id)) < LISTENERS:
        assert time.monotonic() < deadline, f"{len(out)} of {LISTENERS} evicted after the restart"
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # anything evicted twice would be in by now
    out = await _policy_leaves(private_database_url, space_id)
    assert sorted(out) == sorted(listeners), "each listener evicted exactly once"
    versions: dict[str, list[int]] = {}
    for stream, version, _ in await stored_events(private_database_url, "room", space_id):
        versions.setdefault(stream, []).append(version)
    assert (len(versions) > 1) == bool(shard_joins_per_second), sorted(versions)
    gaps = {stream: v for stream, v in versions.items() if v != list(range(1, len(v) + 1))}
    assert not gaps, {stream: (len(v), v[:5]) for stream, v in gaps.items()}
    present = {
        p.user_id for p in (await host.ListParticipants(space_id=space_id, page_size=100)).participants
    }
    assert present == {"evict-host", "evict-invited"}
