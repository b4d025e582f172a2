"""A Space's presence split into parts (PODIUM_PRESENCE_PARTS_PER_SPACE, ADR 0015), through two
presence replicas on a broker of their own: the parts land on both replicas, either replica
answers for the whole Space, a time-out is decided in its part, the room's leaves and the Space's
end reach the parts they concern."""

from __future__ import annotations

import asyncio

import pytest

from libs.config.settings import PodiumSettings
from libs.events.envelope import decode
from libs.events.kafka import make_reader, partitions_of
from libs.events.topics import PRESENCE_APP, PRESENCE_EVENTS, PRESENCE_TABLES
from libs.streams.faust_app import partition_of
from podium.presence.v1 import presence_events_pb2 as pev
from podium.presence.v1 import presence_types_pb2 as pt
from podium.room.v1 import room_events_pb2 as rev
from services.presence.domain.parts import events_stream, part_keys, part_of, user_key
from tests.integration.clients import PresenceClient, PresenceGateway
from tests.support.room_log import announce_spaces, write_space_events

pytestmark = pytest.mark.integration

PARTS, PARTITIONS = 4, 6
ENV = {
    "PODIUM_PRESENCE_PARTS_PER_SPACE": str(PARTS),
    # No standby copies: a replica's table holds only the parts it owns, so a whole answer from
    # either replica can only be gathered from both.
    "PODIUM_PRESENCE_STANDBY_REPLICAS": "0",
    "PODIUM_PRESENCE_TIMEOUT_SECONDS": "3",
    "PODIUM_PRESENCE_TICK_SECONDS": "0.2",
    "PODIUM_PRESENCE_FORGET_ENDED_AFTER_SECONDS": "1",
}


def _space_on_both_replicas() -> str:
    """A Space whose parts fall on four different partitions of six: two replicas own three each,
    so each owns at least one of the parts."""
    n = 0
    while len({partition_of(key, PARTITIONS) for key in part_keys(f"split-{n}", PARTS)}) < PARTS:
        n += 1
    return f"split-{n}"


async def _everyone(client: PresenceClient, space_id: str, page_size: int) -> list[str]:
    """Every present user of the Space, page by page, in the order the pages give them."""
    users, token = [], ""
    while True:
        reply = await client.GetSpacePresence(space_id=space_id, page_size=page_size, page_token=token)
        users += [u.user_id for u in reply.users]
        token = reply.next_page_token
        if not token:
            return users


async def _events(bootstrap: str, space_id: str) -> list:
    reader = make_reader(PodiumSettings(kafka_bootstrap_servers=bootstrap), "test-presence-parts")
    await reader.start()
    try:
        parts = await partitions_of(reader, PRESENCE_EVENTS.name)
        reader.assign(parts)
        await reader.seek_to_beginning(*parts)
        end = await reader.end_offsets(parts)
        found = []
        while [p for p in parts if await reader.position(p) < end[p]]:
            for records in (await reader.getmany(timeout_ms=200)).values():
                found += [decode(r.value) for r in records]
        return [(e, p) for e, p in found if e.space_id == space_id]
    finally:
        await reader.stop()


async def _until(predicate, timeout: float, describe) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await predicate():
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {await describe()}") from None


async def test_a_split_space_is_answered_whole_by_either_replica_and_its_parts_follow_the_room(
    service_factory, private_broker, private_database_url
):
    replicas = [
        await service_factory("presence", broker=private_broker, database=private_database_url, env=ENV)
        for _ in range(2)
    ]
    gateway = PresenceGateway(replicas[0].channel, "gateway-service")
    clients = [PresenceClient(r.channel, "gateway-service") for r in replicas]
    space = _space_on_both_replicas()
    await announce_spaces(private_broker.bootstrap, [space], presence=replicas[0].channel)
    users = [f"listener-{n}" for n in range(40)]
    fader, leaver = users[0], next(u for u in users if part_of(u, PARTS) != part_of(users[0], PARTS))
    staying = [u for u in users if u not in (fader, leaver)]
    assert {part_of(u, PARTS) for u in staying} == set(range(PARTS))  # every part has users

    reported = list(users)

    async def report():
        entries = [pt.PresenceEntry(user_id=u, space_id=space) for u in reported]
        await gateway.ReportPresence(gateway_id="gw-split", entries=entries)

    async def whole_on_both():
        await report()
        for client in clients:
            reply = await client.GetSpacePresence(space_id=space, page_size=1000)
            counts = reply.counts
            if (reply.present_count, counts.current_listeners, counts.unique_listeners) != (40, 40, 40):
                return False
        return True

    async def seen():
        return [(await c.GetSpacePresence(space_id=space)).present_count for c in clients]

    # Until the group settles the replicas may disagree; then each gathers all four parts.
    await _until(whole_on_both, 60, seen)
    for client in clients:
        everyone = await client.GetSpacePresence(space_id=space, page_size=1000)
        assert sorted(u.user_id for u in everyone.users) == sorted(users)
        assert everyone.counts.peak_listeners == 40
        # Pages of 7 gathered from the parts' owners walk the same order, each user once.
        assert await _everyone(client, space, 7) == [u.user_id for u in everyone.users]
        where = await client.GetUserPresence(user_id=leaver)
        assert where.present and where.space_id == space and where.user.gateway_id == "gw-split"

    # Both stop being reported: the fader times out in its part; the room says the leaver left.
    reported = staying
    await write_space_events(
        private_broker.bootstrap, [(space, 2, rev.ParticipantLeft(space_id=space, user_id=leaver))]
    )

    async def both_gone():
        await report()
        present = await _everyone(clients[1], space, 1000)
        return fader not in present and leaver not in present

    await _until(both_gone, 30, seen)
    reply = await clients[0].GetSpacePresence(space_id=space, page_size=1000)
    assert (reply.counts.current_listeners, reply.counts.peak_listeners, reply.counts.unique_listeners) == (
        38,
        40,
        40,
    )

    events = await _events(private_broker.bootstrap, space)
    streams = {e.stream_id for e, _ in events}
    assert streams == {events_stream(key) for key in part_keys(space, PARTS)}  # each part decides its own
    for stream in streams:  # and numbers them gaplessly
        assert [e.stream_version for e, _ in events if e.stream_id == stream] == list(
            range(1, sum(e.stream_id == stream for e, _ in events) + 1)
        )
    timed_out = [(e.stream_id, p.user_id) for e, p in events if isinstance(p, pev.ParticipantTimedOut)]
    # The leaver was dropped by the room's word (forwarded to their part), not timed out.
    assert timed_out == [(events_stream(user_key(space, fader, PARTS)), fader)]

    # The Space ends: every part empties, then is forgotten.
    await write_space_events(private_broker.bootstrap, [(space, 3, rev.SpaceEnded(space_id=space))])

    async def emptied():
        reply = await clients[1].GetSpacePresence(space_id=space)
        return reply.present_count == 0 and reply.counts.unique_listeners == 0

    await _until(emptied, 30, seen)


CHANGELOG = PRESENCE_TABLES[0].changelog(PRESENCE_APP).name


async def _changelog_keys_of(bootstrap: str, space_id: str) -> dict[str, bool]:
    """Each table key of the Space in the changelog: whether its last record holds a value (False:
    deleted)."""
    reader = make_reader(PodiumSettings(kafka_bootstrap_servers=bootstrap), "test-presence-changelog")
    await reader.start()
    try:
        parts = await partitions_of(reader, CHANGELOG)
        reader.assign(parts)
        await reader.seek_to_beginning(*parts)
        end = await reader.end_offsets(parts)
        last: dict[str, bool] = {}
        while [p for p in parts if await reader.position(p) < end[p]]:
            for records in (await reader.getmany(timeout_ms=200)).values():
                for r in records:
                    key = r.key.decode().strip('"')  # faust writes a str key as JSON
                    if key == space_id or key.startswith(f"{space_id}/"):
                        last[key] = r.value is not None
        return last
    finally:
        await reader.stop()


async def test_splitting_live_spaces_anew_hands_their_users_over_without_a_time_out(
    service_factory, private_broker, private_database_url
):
    whole = await service_factory(
        "presence",
        broker=private_broker,
        database=private_database_url,
        env=ENV | {"PODIUM_PRESENCE_PARTS_PER_SPACE": "1"},
    )
    space = "resplit"
    await announce_spaces(private_broker.bootstrap, [space], presence=whole.channel)
    users = [f"resplit-{n}" for n in range(20)]
    entries = [pt.PresenceEntry(user_id=u, space_id=space) for u in users]

    async def present(service) -> int:
        gateway = PresenceGateway(service.channel, "gateway-service")
        await gateway.ReportPresence(gateway_id="gw-resplit", entries=entries)
        return (await gateway.GetSpacePresence(space_id=space)).present_count

    await _until(lambda: _is(present(whole), 20), 30, lambda: present(whole))
    await whole.stop()
    # The same deployment, now splitting each Space in four; the gateway goes on reporting everyone.
    split = await service_factory("presence", broker=private_broker, database=private_database_url, env=ENV)
    await _until(lambda: _is(present(split), 20), 30, lambda: present(split))
    # The value under the Space's own key goes unheard of: past the timeout its users are handed over
    # to their parts (which have them already) instead of timing out, and the emptied value goes.
    settled = {user_key(space, u, PARTS): True for u in users} | {space: False}

    async def handed_over() -> bool:
        await present(split)  # the gateway goes on reporting: the evidence time-outs rest on
        return await _changelog_keys_of(private_broker.bootstrap, space) == settled

    await _until(handed_over, 30, lambda: _changelog_keys_of(private_broker.bootstrap, space))
    assert await present(split) == 20
    events = await _events(private_broker.bootstrap, space)
    assert not [p.user_id for _, p in events if isinstance(p, pev.ParticipantTimedOut)]
    # Each user connected once under the Space's key, and once more in their part.
    connected = [(e.stream_id, p.user_id) for e, p in events if isinstance(p, pev.ParticipantConnected)]
    assert sorted(connected) == sorted(
        [(events_stream(space), u) for u in users]
        + [(events_stream(user_key(space, u, PARTS)), u) for u in users]
    )


async def _is(awaitable, expected) -> bool:
    return await awaitable == expected
