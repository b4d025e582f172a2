"""SIGKILL one of two room replicas while listeners storm one Space through both.

On one stream, every join, request to speak and leave of the Space is decided on it, so the two
replicas race for it. With listener shards (ADR 0012), the replicas grow the Space's shards as the
storm comes and listeners' joins and leaves spread over them. With writer lanes (ADR 0018) each
replica joins its callers on the shards of its own lane; the one killed comes back to find its
lane still held by its dead session, or free, and joins users wherever their ids pick until it
holds one again. The one killed mid-storm loses only what it had not acknowledged: its callers
retry with the same request_id once it serves again, and get one effect each. Afterwards the log,
both replicas' answers and the Space's counts agree.
"""

from __future__ import annotations

import asyncio

import pytest

from libs.domain.streams import is_space_stream, shard_number
from tests.faults.support import (
    Load,
    assert_sound,
    judge_stored,
    record,
    room_fold,
    settle,
    short,
    stored_events,
)
from tests.integration.clients import RoomClient

pytestmark = [pytest.mark.faults, pytest.mark.integration]

LISTENERS = 40


@pytest.mark.parametrize(
    ("shard_joins_per_second", "lanes"),
    [(0, 1), (2, 1), (2, 2)],
    ids=["one-stream", "listener-shards", "writer-lanes"],
)
async def test_sigkill_a_room_replica_during_a_join_storm_into_one_space(
    stack, private_broker, private_database_url, shard_joins_per_second, lanes
):
    env = {
        "PODIUM_ROOM_LISTENER_SHARD_JOINS_PER_SECOND": str(shard_joins_per_second),
        "PODIUM_ROOM_LISTENER_SHARD_LANES": str(lanes),
    }
    first, second = [
        replica["room"] for replica in await asyncio.gather(stack("room", env=env), stack("room", env=env))
    ]
    load = Load(second.channel, listeners=LISTENERS, speakers=1, prefix="storm")
    space_id = await load.setup()
    # Half the listeners call the replica that will be killed, half the one that stays.
    load.listeners = [
        RoomClient((first if i % 2 else second).channel, client.user_id)
        for i, client in enumerate(load.listeners)
    ]
    on_first = {c.user_id for i, c in enumerate(load.listeners) if i % 2}
    load.start()
    try:
        await asyncio.sleep(2.0)
        before = load.history.error_codes().total()
        first.kill()
        await asyncio.sleep(1.0)
        await first.restart()
        failed_while_down = load.history.error_codes().total() - before
        await asyncio.sleep(2.0)
        history = await load.finish()
        convergence = await settle(load, private_broker.bootstrap, private_database_url)
    finally:
        await load.close()
    verdict = await judge_stored(history, private_database_url, space_id)
    fold = await room_fold(private_broker.bootstrap, space_id)
    counts = {}
    for name, replica in (("killed", first), ("stayed", second)):
        space = (await RoomClient(replica.channel, "storm-observer").GetSpace(space_id=space_id)).space
        counts[name] = (space.participant_count, space.listener_count)
    joins = [c for c in history.calls if c.kind == "join" and c.outcome == "acknowledged"]
    stored = await stored_events(private_database_url, "room", space_id)
    streams = {stream for stream, _, _ in stored}
    shards = [s for s in streams if not is_space_stream(s, space_id)]
    # The lanes of the shards the replica that stayed joined its callers on: its own only.
    stayed_lanes = {
        shard_number(stream) % lanes
        for stream, _, envelope in stored
        if stream in shards
        and short(envelope.event_type) == "ParticipantJoined"
        and envelope.actor_user_id not in on_first
    }
    record(
        "sigkill-a-room-replica-during-a-join-storm"
        + ("-into-listener-shards" if shard_joins_per_second else "")
        + ("-with-writer-lanes" if lanes > 1 else ""),
        verdict,
        convergence,
        history,
        failed_while_down=failed_while_down,
        joins_acknowledged=len(joins),
        joins_through_the_killed_replica=sum(c.user_id in on_first for c in joins),
        errors=dict(history.error_codes()),
        counts=counts,
        shard_streams=len(shards),
        lanes_the_stayed_replica_wrote=sorted(stayed_lanes),
    )
    assert_sound(verdict, convergence)
    assert failed_while_down > 0, "nothing failed while a replica was down"
    assert any(c.user_id in on_first for c in joins) and any(c.user_id not in on_first for c in joins)
    assert bool(shards) == bool(shard_joins_per_second), sorted(streams)
    if lanes > 1:
        assert len(stayed_lanes) == 1, stayed_lanes
    settled = (len(fold.participants), fold.listener_count)
    assert counts == {"killed": settled, "stayed": settled}, (counts, settled)
