"""Two presence replicas in one consumer group: each owns part of the Spaces, yet either answers
every query, and the survivor answers everything after the other stops."""

from __future__ import annotations

import asyncio

import pytest

from libs.streams.faust_app import partition_of
from podium.presence.v1 import presence_service_pb2 as ps
from podium.presence.v1 import presence_types_pb2 as pt
from tests.integration.clients import PresenceClient, PresenceGateway
from tests.support.room_log import announce_spaces

pytestmark = pytest.mark.integration

# No standby copies: a replica's table holds only the partitions it owns, so an answer about a
# Space owned by the other replica can only come from the other replica.
ENV = {"PODIUM_PRESENCE_STANDBY_REPLICAS": "0"}
PARTITIONS = 6


def _spaces_across_partitions(per_partition: int = 2) -> list[str]:
    spaces, filled = [], dict.fromkeys(range(PARTITIONS), 0)
    i = 0
    while any(n < per_partition for n in filled.values()):
        space_id = f"scaled-{i}"
        p = partition_of(space_id, PARTITIONS)
        if filled[p] < per_partition:
            filled[p] += 1
            spaces.append(space_id)
        i += 1
    return spaces


async def _answers_everything(client: PresenceClient, expected: dict[str, list[str]]) -> bool:
    for space_id, users in expected.items():
        reply = await client.GetSpacePresence(space_id=space_id, page_size=100)
        if reply.present_count != len(users) or reply.counts.current_listeners != len(users):
            return False
        if sorted(u.user_id for u in reply.users) != sorted(users):
            return False
        where = await client.GetUserPresence(user_id=users[-1])
        if not (where.present and where.space_id == space_id and where.user.gateway_id == "gw-scaled"):
            return False
    return True


async def _counts(client: PresenceClient, expected: dict[str, list[str]]) -> dict[str, str]:
    seen = {}
    for space_id, users in expected.items():
        reply = await client.GetSpacePresence(space_id=space_id, page_size=100)
        seen[space_id] = f"{reply.present_count}/{len(users)}"
    return seen


async def _until(predicate, timeout: float, describe) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await predicate():
                await asyncio.sleep(0.25)
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {await describe()}") from None


async def test_either_replica_answers_for_every_space_and_the_survivor_takes_over(
    service_factory, private_broker, private_database_url
):
    first = await service_factory("presence", broker=private_broker, database=private_database_url, env=ENV)
    second = await service_factory("presence", broker=private_broker, database=private_database_url, env=ENV)
    gateway = PresenceGateway(first.channel, "gateway-service")
    spaces = _spaces_across_partitions()
    await announce_spaces(private_broker.bootstrap, spaces, presence=first.channel)
    expected = {s: [f"{s}-user-{n}" for n in range(i % 3 + 1)] for i, s in enumerate(spaces)}
    entries = [pt.PresenceEntry(user_id=u, space_id=s) for s, users in expected.items() for u in users]

    async def beat():
        await gateway.ReportPresence(gateway_id="gw-scaled", entries=entries)

    await beat()
    clients = [PresenceClient(r.channel, "gateway-service") for r in (first, second)]

    async def both_answer():
        await beat()
        return all([await _answers_everything(c, expected) for c in clients])

    # Until the group has settled both replicas may briefly disagree; then both answer for all.
    await _until(both_answer, 60, lambda: asyncio.gather(*(_counts(c, expected) for c in clients)))

    watcher = clients[1]
    for space_id in spaces[:PARTITIONS]:  # a snapshot's counts come from the owner too
        stream = watcher.stub.WatchSpace(ps.WatchSpaceRequest(space_id=space_id), metadata=watcher._md())
        snapshot = (await asyncio.wait_for(stream.__aiter__().__anext__(), 10)).snapshot
        stream.cancel()
        assert snapshot.counts.current_listeners == len(expected[space_id])

    await first.stop()  # the survivor takes every partition and recovers them from the changelog
    gateway = PresenceGateway(second.channel, "gateway-service")

    async def survivor_answers():
        await beat()
        return await _answers_everything(clients[1], expected)

    await _until(survivor_answers, 60, lambda: _counts(clients[1], expected))
    await second.stop()
