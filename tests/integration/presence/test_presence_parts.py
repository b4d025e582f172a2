"""A Space's presence split into parts as it grows (PODIUM_PRESENCE_USERS_PER_PART, ADR 0015),
through presence replicas on a broker of their own: the split hands users over with no event, the
parts land on both replicas, either replica answers for the whole Space, a time-out is decided in
its part, the room's leaves and the Space's end reach the parts they concern, a restart keeps the
split, and a report written on an older split reaches the parts."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from libs.config.settings import PodiumSettings
from libs.events.envelope import decode
from libs.events.kafka import make_producer, make_reader, partitions_of
from libs.events.topics import PRESENCE_EVENTS, PRESENCE_HEARTBEATS
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
    # 40 users in part 0 split the Space in four at once (40 > 8, 20 > 8, 10 > 8; four at most).
    "PODIUM_PRESENCE_USERS_PER_PART": "8",
    "PODIUM_PRESENCE_MAX_PARTS": str(PARTS),
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
    # Both in parts other than 0, on other partitions than the room's records for the Space.
    fader = next(u for u in users if part_of(u, PARTS) != 0)
    leaver = next(u for u in users if part_of(u, PARTS) not in (0, part_of(fader, PARTS)))
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
    # Everyone connected once, in part 0, which then split the Space and handed three quarters of
    # them over to their parts, with no event.
    connected = [(e.stream_id, p.user_id) for e, p in events if isinstance(p, pev.ParticipantConnected)]
    assert sorted(connected) == sorted((events_stream(space), u) for u in users)
    splits = [p.parts for _, p in events if isinstance(p, pev.PresenceSplit)]
    assert splits[:1] == [PARTS] and set(splits) == {PARTS}
    streams = {e.stream_id for e, _ in events}
    # Each part decides its own: part 0 the connections and the split, the fader's its time-out.
    assert streams == {events_stream(space), events_stream(user_key(space, fader, PARTS))}
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


async def test_a_split_outlives_a_restart_and_a_report_on_the_older_split_reaches_the_parts(
    service_factory, private_broker, private_database_url
):
    presence = await service_factory(
        "presence", broker=private_broker, database=private_database_url, env=ENV
    )
    space = "resplit"
    await announce_spaces(private_broker.bootstrap, [space], presence=presence.channel)
    users = [f"resplit-{n}" for n in range(40)]
    entries = [pt.PresenceEntry(user_id=u, space_id=space) for u in users]

    async def present() -> int:
        gateway = PresenceGateway(presence.channel, "gateway-service")
        await gateway.ReportPresence(gateway_id="gw-resplit", entries=entries)
        return (await gateway.GetSpacePresence(space_id=space)).present_count

    async def said() -> list[int]:
        events = await _events(private_broker.bootstrap, space)
        return [p.parts for _, p in events if isinstance(p, pev.PresenceSplit)]

    await _until(lambda: _is(present(), 40), 30, present)
    await _until(lambda: _is(_set(said()), {PARTS}), 30, said)
    # Killed and started again: the board comes back from its rows, split as it was, so reports go
    # to the parts straight away and queries gather them all; for twice the timeout nobody is timed
    # out, connected twice, or missing from the count once the table has recovered.
    await presence.restart()
    await _until(lambda: _is(present(), 40), 30, present)
    before = len(await said())
    deadline = asyncio.get_running_loop().time() + 6
    while asyncio.get_running_loop().time() < deadline:
        assert await present() == 40
        await asyncio.sleep(0.3)
    assert len(await said()) == before  # nothing reported on the older split: nothing to say again
    # A report written on the older split (by a replica whose board has not read the split yet):
    # part 0 passes each user's heartbeat on to their part and says the split again.
    stale = pt.HeartbeatBatch(gateway_id="gw-resplit", space_id=space, user_ids=users)
    await _write_heartbeat(private_broker.bootstrap, space, stale)
    await _until(lambda: _is(_len(said()), before + 1), 30, said)
    assert await present() == 40
    events = await _events(private_broker.bootstrap, space)
    assert not [p.user_id for _, p in events if isinstance(p, pev.ParticipantTimedOut)]
    connected = [p.user_id for _, p in events if isinstance(p, pev.ParticipantConnected)]
    assert sorted(connected) == sorted(users)


async def test_a_replica_killed_in_the_middle_of_a_split_announces_everyone_once_after_its_restart(
    service_factory, private_broker, private_database_url
):
    space = "killed-split"
    presence, gateway = await _presence_for(service_factory, private_broker, private_database_url, space)
    users = [f"killed-split-{n}" for n in range(40)]
    entries = [pt.PresenceEntry(user_id=u, space_id=space) for u in users]
    # 40 users at once split part 0 in four. SIGKILL as soon as the report is taken: the processor
    # is splitting and handing the users over, its offsets and changelog not yet committed.
    await gateway.ReportPresence(gateway_id="gw-killed", entries=entries)
    presence.kill()
    await presence.restart()
    await _all_stay_present(gateway, "gw-killed", space, users, timeout=60)
    events = await _events(private_broker.bootstrap, space)
    assert max(p.parts for _, p in events if isinstance(p, pev.PresenceSplit)) == PARTS
    # A record processed again after the kill may say an event again; it says it under the same
    # stream version, which consumers drop. Each user is connected once per (stream, version),
    # and no user under two.
    connected = {
        (e.stream_id, e.stream_version): p.user_id
        for e, p in events
        if isinstance(p, pev.ParticipantConnected)
    }
    assert sorted(connected.values()) == sorted(users)
    assert not [p.user_id for _, p in events if isinstance(p, pev.ParticipantTimedOut)]


async def _presence_for(service_factory, broker, database_url: str, space: str):
    """A presence replica (ENV) that knows `space` as live, and a gateway's client of it."""
    presence = await service_factory("presence", broker=broker, database=database_url, env=ENV)
    await announce_spaces(broker.bootstrap, [space], presence=presence.channel)
    return presence, PresenceGateway(presence.channel, "gateway-service")


async def _all_stay_present(gateway, gateway_id: str, space: str, users: list[str], timeout: float) -> None:
    """Reports `users` until the Space counts them all, then for twice the time-out more: nobody is
    timed out or missing meanwhile."""
    entries = [pt.PresenceEntry(user_id=u, space_id=space) for u in users]

    async def everyone():
        await gateway.ReportPresence(gateway_id=gateway_id, entries=entries)
        reply = await gateway.GetSpacePresence(space_id=space, page_size=100)
        return reply.present_count, reply.counts.unique_listeners

    whole = (len(users), len(users))
    await _until(lambda: _is(everyone(), whole), timeout, everyone)
    for _ in range(10):
        assert await everyone() == whole
        await asyncio.sleep(0.6)


async def _write_heartbeat(bootstrap: str, key: str, batch: pt.HeartbeatBatch) -> None:
    producer = make_producer(PodiumSettings(kafka_bootstrap_servers=bootstrap), "test-stale-report")
    await producer.start()
    try:
        await producer.send_and_wait(PRESENCE_HEARTBEATS.name, batch.SerializeToString(), key=key.encode())
    finally:
        await producer.stop()


async def _len(awaitable) -> int:
    return len(await awaitable)


async def _set(awaitable) -> set:
    return set(await awaitable)


async def _is(awaitable, expected) -> bool:
    return await awaitable == expected


async def test_a_space_growing_report_by_report_splits_step_by_step_announcing_everyone_once(
    service_factory, private_broker, private_database_url
):
    space = "growing"
    _, gateway = await _presence_for(service_factory, private_broker, private_database_url, space)
    users = [f"growing-{n}" for n in range(40)]
    # Five more users a report: part 0 splits at 9 (two parts), then again at 9 of its own (four).
    for joined in range(5, 45, 5):
        entries = [pt.PresenceEntry(user_id=u, space_id=space) for u in users[:joined]]
        await gateway.ReportPresence(gateway_id="gw-growing", entries=entries)
        await asyncio.sleep(0.3)
    await _all_stay_present(gateway, "gw-growing", space, users, timeout=30)  # across the splits
    events = await _events(private_broker.bootstrap, space)
    splits = [p.parts for _, p in events if isinstance(p, pev.PresenceSplit)]
    assert list(dict.fromkeys(splits)) == [2, 4]  # (each said again to a report on the older split)
    connected = sorted(p.user_id for _, p in events if isinstance(p, pev.ParticipantConnected))
    assert connected == sorted(users)  # each once, whichever part heard of them first
    assert not [p.user_id for _, p in events if isinstance(p, pev.ParticipantTimedOut)]


async def test_a_space_larger_than_one_changelog_record_can_hold_splits_and_presence_keeps_up(
    service_factory, private_broker, private_database_url
):
    """30,000 listeners with UUID ids in one value are about 5 MB, past the producer's 1 MB record:
    unsplit, the first changelog write of it stopped presence. At the default 2,000 users a part
    the Space is in 16 parts, each well under it. They come in one report, whose users (1.2 MB of
    ids) are more than one heartbeat record can hold either: it goes as several."""
    presence = await service_factory(
        "presence",
        broker=private_broker,
        database=private_database_url,
        env={"PODIUM_PRESENCE_TICK_SECONDS": "0.2", "PODIUM_PRESENCE_STANDBY_REPLICAS": "0"},
    )
    gateway = PresenceGateway(presence.channel, "gateway-service")
    space = "celebrity"
    await announce_spaces(private_broker.bootstrap, [space], presence=presence.channel)
    users = [str(uuid.UUID(int=n)) for n in range(30_000)]
    entries = [pt.PresenceEntry(user_id=u, space_id=space) for u in users]
    reply = await gateway.ReportPresence(gateway_id="gw-celebrity", entries=entries)
    assert (reply.accepted, list(reply.rejected)) == (30_000, [])

    async def everyone():
        counts = (await gateway.GetSpacePresence(space_id=space, page_size=1)).counts
        return counts.current_listeners, counts.unique_listeners

    await _until(lambda: _is(everyone(), (30_000, 30_000)), 60, everyone)
    events = await _events(private_broker.bootstrap, space)
    assert max(p.parts for _, p in events if isinstance(p, pev.PresenceSplit)) == 16
    assert len([p for _, p in events if isinstance(p, pev.ParticipantConnected)]) == 30_000
