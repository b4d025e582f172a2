"""Presence's board is a durable view: a restart resumes from its stored positions, the board is
filled from the live Spaces' rows, and an ended Space leaves memory while its rows still answer."""

from __future__ import annotations

import asyncio
import urllib.request

import asyncpg
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from libs.config.settings import PodiumSettings
from libs.devstack.broker import free_port
from libs.events.kafka import make_reader, partitions_of
from podium.presence.v1 import presence_service_pb2 as ps
from podium.presence.v1 import presence_types_pb2 as pt
from podium.room.v1 import room_types_pb2 as rt
from services.presence.projections.space_board_rows import SpaceBoardRows
from tests.integration.clients import PresenceGateway, RoomClient

pytestmark = pytest.mark.integration

VIEW, CACHE = "presence-space-board", "presence-space-board-cache"
JOINED, LEFT = pt.MEMBER_CHANGE_KIND_JOINED, pt.MEMBER_CHANGE_KIND_LEFT


def caught_up_lines(service, view: str) -> list[str]:
    return [
        line
        for line in service.process.log_path.read_text(errors="replace").splitlines()
        if f"projection {view} caught up" in line
    ]


def cached_spaces(port: int) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "podium_view_cached_spaces" and sample.labels.get("view") == CACHE:
                return sample.value
    return None


async def log_ends(bootstrap: str) -> int:
    """Records in the topics the board reads, as of now."""
    reader = make_reader(PodiumSettings(kafka_bootstrap_servers=bootstrap), "test-presence-ends")
    await reader.start()
    try:
        parts = [tp for spec in SpaceBoardRows.topics for tp in await partitions_of(reader, spec.name)]
        return sum((await reader.end_offsets(parts)).values())
    finally:
        await reader.stop()


async def stored_position(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(
        "SELECT coalesce(sum(next_offset), 0) FROM presence.view_positions WHERE view = $1", VIEW
    )


async def snapshot(client: PresenceGateway, space_id: str) -> list[tuple[str, int, bool, bool]]:
    stream = client.stub.WatchSpace(ps.WatchSpaceRequest(space_id=space_id), metadata=client._md())
    try:
        reply = await asyncio.wait_for(stream.read(), 15)
    finally:
        stream.cancel()
    return [(m.user_id, m.role, m.hand_raised, m.connected) for m in reply.snapshot.members]


async def until(predicate, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.1)


async def test_a_restarted_presence_resumes_its_board_and_forgets_ended_spaces_it_still_answers_for(
    service_factory, private_broker, private_database_url
):
    metrics = free_port()

    async def start(name: str, env=None):
        return await service_factory(name, broker=private_broker, database=private_database_url, env=env)

    room, presence = await asyncio.gather(
        start("room"),
        start(
            "presence",
            {
                "PODIUM_PRESENCE_TIMEOUT_SECONDS": "600",
                "PODIUM_PRESENCE_FORGET_ENDED_AFTER_SECONDS": "1",
                "PODIUM_METRICS_PORT": str(metrics),
            },
        ),
    )
    gateway = PresenceGateway(presence.channel, "gateway-service")
    host, ann = RoomClient(room.channel, "pr-host"), RoomClient(room.channel, "pr-ann")

    # History: Spaces that came and went, then one live Space with a listener asking to speak.
    over = []
    for i in range(8):
        space_id = (await host.CreateSpace(title=f"gone {i}")).space.space_id
        await host.StartSpace(space_id=space_id)
        await ann.JoinSpace(space_id=space_id)
        await host.EndSpace(space_id=space_id)
        over.append(space_id)
    talk = (await host.CreateSpace(title="live")).space.space_id
    await host.StartSpace(space_id=talk)
    await ann.JoinSpace(space_id=talk)
    await ann.RequestToSpeak(space_id=talk)
    await gateway.ReportPresence(
        gateway_id="gw", entries=[pt.PresenceEntry(user_id=u, space_id=talk) for u in ("pr-host", "pr-ann")]
    )
    listener, speaker = rt.ROLE_LISTENER, rt.ROLE_SPEAKER
    before = [("pr-host", rt.ROLE_HOST, False, True), ("pr-ann", listener, True, True)]
    await until(lambda: _equals(snapshot(gateway, talk), before))

    conn = await asyncpg.connect(private_database_url)
    try:
        # The board's writer has stored everything the log holds: nothing is left but what comes.
        # The board's writer has stored everything the log holds (the embedded broker may report
        # an end short of a batch of several records: at least there).
        ends = await log_ends(private_broker.bootstrap)
        await until(lambda: _at_least(stored_position(conn), ends))
        await presence.terminate()
        history = await stored_position(conn)

        # While presence is down, one command: the host makes the listener a speaker.
        await host.ApproveSpeakRequest(space_id=talk, user_id="pr-ann")
        await presence.restart()
        after = [("pr-host", rt.ROLE_HOST, False, True), ("pr-ann", speaker, False, True)]
        await until(lambda: _equals(snapshot(gateway, talk), after))

        # Resumed: the writer applied what was written while it was down, not the history, and
        # the board started from the live Spaces' rows.
        lines = caught_up_lines(presence, VIEW)
        assert len(lines) == 2 and 0 < applied(lines[1]) <= 3 and history > 40, (history, lines)
        cache = caught_up_lines(presence, CACHE)
        assert len(cache) == 2 and applied(cache[1]) <= 3, cache
        assert history < await stored_position(conn) <= history + 3
        assert cached_spaces(metrics) == 1  # only the live Space was loaded

        # And it answers as before: members, roles, raised hand and connections from the rows
        # (above: with the promotion made while it was down), and who is present from its table.
        answer = await gateway.GetSpacePresence(space_id=talk)
        assert answer.present_count == 2 and {u.user_id for u in answer.users} == {"pr-host", "pr-ann"}
        # An ended Space it never loaded is answered from its row.
        refused = await gateway.ReportPresence(
            gateway_id="gw", entries=[pt.PresenceEntry(user_id="pr-ann", space_id=over[0])]
        )
        assert [r.reason for r in refused.rejected] == ["SPACE_ENDED"]
        assert (await gateway.GetSpacePresence(space_id=over[0])).present_count == 0

        # Changes after the restart reach a watcher.
        stream = gateway.stub.WatchSpace(ps.WatchSpaceRequest(space_id=talk), metadata=gateway._md())
        first = await asyncio.wait_for(stream.read(), 15)
        assert first.WhichOneof("update") == "snapshot"
        # The Space's own details came back with the board, from its rows.
        assert (first.snapshot.space.title, first.snapshot.space.state) == ("live", rt.SPACE_STATE_LIVE)
        await ann.LeaveSpace(space_id=talk)
        change = (await asyncio.wait_for(stream.read(), 15)).change
        assert (change.kind, change.member.user_id) == (LEFT, "pr-ann")
        stream.cancel()

        # The live Space ends: it leaves memory once its time is up (any later event sweeps it
        # out; each new Space is one), and its row answers for it from then on.
        await host.EndSpace(space_id=talk)
        fresh: list[str] = []

        async def forgotten() -> bool:
            fresh.append((await host.CreateSpace(title="sweeper")).space.space_id)
            await until(lambda: _knows(gateway, fresh[-1]))
            return cached_spaces(metrics) == len(fresh)  # the new ones only

        await until(forgotten, timeout=30)
        refused = await gateway.ReportPresence(
            gateway_id="gw", entries=[pt.PresenceEntry(user_id="pr-host", space_id=talk)]
        )
        assert [r.reason for r in refused.rejected] == ["SPACE_ENDED"]
        assert await snapshot(gateway, talk) == []
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await gateway.GetSpacePresence(space_id="no-such-space")
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        state = await conn.fetchval("SELECT state FROM presence.space_boards_v2 WHERE space_id = $1", talk)
        assert state == rt.SPACE_STATE_ENDED
        members = await conn.fetchval(
            "SELECT count(*) FROM presence.space_board_members_v2 WHERE space_id = $1", talk
        )
        assert members == 0  # an ended Space keeps its row, not its entries
    finally:
        await conn.close()


def applied(caught_up_line: str) -> int:
    return int(caught_up_line.split("caught up: ")[1].split()[0])


async def _at_least(value, expected) -> bool:
    return await value >= expected


async def _equals(value, expected) -> bool:
    return await value == expected


async def _knows(gateway: PresenceGateway, space_id: str) -> bool:
    try:
        await gateway.GetSpacePresence(space_id=space_id)
    except grpc.aio.AioRpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return False
    return True
