"""A Space that grows listener shards (ADR 0012), through the room's gRPC API and the room topic.

A room process that grows a Space's shards after a handful of joins a second: a rush of listeners
spreads over shard streams, and everything a gateway does with them still works as on one stream:
counts and lists, promotions and requests to speak, a speaker's leave releasing the slot, a switch
to invite-only evicting them, and the directory's counts agreeing.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest

from libs.config.settings import PodiumSettings
from libs.domain.streams import is_space_stream
from libs.events.tail import space_history
from libs.events.topics import ROOM_EVENTS
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as types
from tests.integration.clients import RoomClient, error_reason

pytestmark = pytest.mark.integration

LISTENERS = [f"fan-{n}" for n in range(120)]


async def _until(check, timeout: float = 20.0):
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def test_a_rush_into_one_space_spreads_over_shards_and_the_space_still_behaves_as_one(
    start_room, room_topic_events, broker
):
    service = await start_room(env={"PODIUM_ROOM_LISTENER_SHARD_JOINS_PER_SECOND": "5"})
    host = RoomClient(service.channel, "star")
    space_id = (await host.CreateSpace(title="celebrity")).space.space_id
    await host.StartSpace(space_id=space_id)
    fans = {user: RoomClient(service.channel, user) for user in LISTENERS}

    def join(users):
        return asyncio.gather(*(fans[u].JoinSpace(space_id=space_id, request_id=f"j-{u}") for u in users))

    # The first of the rush makes the Space grow; the rest come once it has (on a busy machine all
    # 120 at once could be answered before the growth lands, and none would be on a shard).
    joined = list(await join(LISTENERS[:20]))
    settings = PodiumSettings(kafka_bootstrap_servers=broker.bootstrap)

    async def grown() -> bool:
        events = await space_history(settings, ROOM_EVENTS.name, space_id)
        return any(isinstance(payload, rev.ListenerShardsGrown) for payload, _ in events)

    await _until(grown)
    joined += await join(LISTENERS[20:])
    assert {j.role for j in joined} == {types.ROLE_LISTENER}
    again = await fans[LISTENERS[-1]].JoinSpace(space_id=space_id, request_id=f"j-{LISTENERS[-1]}")
    assert again.role == types.ROLE_LISTENER  # a retry: answered, nothing twice

    space = (await host.GetSpace(space_id=space_id)).space
    assert (space.participant_count, space.listener_count) == (121, 120)
    listed = await host.ListParticipants(space_id=space_id, page_size=500)
    assert listed.total_size == 121
    assert Counter(p.role for p in listed.participants) == {types.ROLE_HOST: 1, types.ROLE_LISTENER: 120}
    paged, token = [], ""  # page by page, the same people in the same order
    while True:
        page = await host.ListParticipants(space_id=space_id, page_size=50, page_token=token)
        paged += [p.user_id for p in page.participants]
        if not (token := page.next_page_token):
            break
    assert paged == [p.user_id for p in listed.participants]
    first = (await host.GetParticipant(space_id=space_id, user_id=LISTENERS[0])).participant
    assert first == next(p for p in listed.participants if p.user_id == LISTENERS[0])

    # Voices come from the shards' listeners, by invitation and by request. Which joins landed on
    # a shard depends on when the Space grew (the first few are on its own stream): their tokens say.
    on_shards = [u for u, j in zip(LISTENERS, joined, strict=True) if ";l" in j.space.room_token]
    late, asker = on_shards[-1], on_shards[-2]
    await host.InviteToSpeak(space_id=space_id, user_id=late)
    assert (await host.GetParticipant(space_id=space_id, user_id=late)).participant.role == types.ROLE_SPEAKER
    await fans[asker].RequestToSpeak(space_id=space_id)
    await host.ApproveSpeakRequest(space_id=space_id, user_id=asker)
    space = (await host.GetSpace(space_id=space_id)).space
    assert sorted(space.speaker_user_ids) == sorted([late, asker])
    assert (space.participant_count, space.listener_count) == (121, 118)

    # A speaker who leaves gives the slot back; the others are still there.
    left = await fans[late].LeaveSpace(space_id=space_id)
    # Its read-your-writes token names the shard the leave is on, past the join's version there.
    own, shard_part = left.space.room_token.split(";")
    (join_token,) = [j.space.room_token for u, j in zip(LISTENERS, joined, strict=True) if u == late]
    assert int(own) == left.space.version and shard_part.startswith("l")
    if ";" + shard_part.split("=")[0] + "=" in join_token:  # joined on the same shard's stream
        assert int(shard_part.split("=")[1]) > int(join_token.rsplit("=", 1)[1])
    space = (await host.GetSpace(space_id=space_id)).space
    assert list(space.speaker_user_ids) == [asker]
    assert (space.participant_count, space.listener_count) == (120, 118)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await host.GetParticipant(space_id=space_id, user_id=late)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    back = await fans[late].JoinSpace(space_id=space_id)
    assert back.role == types.ROLE_LISTENER

    # The room topic: the growths on the Space's own stream, the joins spread over its shards,
    # every record keyed by the Space (the reader checks the key).
    envelopes = await room_topic_events(space_id, 2 + 1 + 120 + 1)
    grown = [e for e in envelopes if e.event_type.endswith("ListenerShardsGrown")]
    assert grown and all(is_space_stream(e.stream_id, space_id) for e in grown)
    fan_joins = Counter(
        e.stream_id
        for e in envelopes
        if e.event_type.endswith("ParticipantJoined") and e.actor_user_id != "star"
    )
    assert sum(fan_joins.values()) >= 120
    assert len([s for s in fan_joins if not is_space_stream(s, space_id)]) >= 2

    # Invite-only: everyone without an invitation goes, wherever they joined; a voice stays.
    await host.UpdateSpace(
        space_id=space_id, join_policy=types.JOIN_POLICY_INVITED_ONLY, update_mask={"paths": ["join_policy"]}
    )

    async def emptied():
        space = (await host.GetSpace(space_id=space_id)).space
        return (space.participant_count, space.listener_count) == (2, 0)

    await _until(emptied)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await fans[LISTENERS[0]].JoinSpace(space_id=space_id)
    assert error_reason(refused.value) == "NOT_INVITED"

    # The directory, folded from the topic, counts the same.
    async def directory_agrees():
        found = await host.ListSpaces(host_user_id="star")
        return [(s.participant_count, s.listener_count) for s in found.spaces] == [(2, 0)]

    await _until(directory_agrees)
    await service.stop()
