"""The room service across process deaths, fresh replicas and a broker that lost its log."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest

from podium.room.v1 import room_types_pb2 as types
from tests.integration.clients import RoomClient

pytestmark = pytest.mark.integration


async def _all_spaces(client: RoomClient) -> list:
    spaces, token = [], ""
    while True:
        page = await client.ListSpaces(page_size=1000, page_token=token)
        spaces.extend(page.spaces)
        token = page.next_page_token
        if not token:
            return sorted(spaces, key=lambda s: s.space_id)


async def _converged(a: RoomClient, b: RoomClient, expected: set[str], timeout: float = 30.0) -> list:
    """Both views, once they hold every expected Space and agree on everything."""
    async with asyncio.timeout(timeout):
        while True:
            left, right = await _all_spaces(a), await _all_spaces(b)
            if left == right and expected <= {s.space_id for s in left}:
                return left
            await asyncio.sleep(0.1)


async def test_a_fresh_process_rebuilds_an_identical_view(room, start_room, users):
    host, ann, ben = users("host", "ann", "ben")
    ids = set()
    for i in range(5):
        created = await host.CreateSpace(title=f"rebuild {i}")
        space_id = created.space.space_id
        ids.add(space_id)
        if i % 2 == 0:
            await host.StartSpace(space_id=space_id)
            await ann.JoinSpace(space_id=space_id)
            await ben.JoinSpace(space_id=space_id)
            await ben.RequestToSpeak(space_id=space_id)
    replica = await start_room()
    try:
        spaces = await _converged(RoomClient(room.channel, "host"), RoomClient(replica.channel, "host"), ids)
        mine = {s.space_id: s for s in spaces if s.space_id in ids}
        assert sum(s.participant_count == 3 for s in mine.values()) == 3
    finally:
        await replica.stop()


async def test_sigkill_mid_burst_keeps_every_acknowledged_command_exactly_once(
    start_room, database_url, users
):
    service = await start_room()
    host = RoomClient(service.channel, "burst-host")
    created = await host.CreateSpace(title="burst")
    space_id = created.space.space_id
    await host.StartSpace(space_id=space_id)

    acknowledged: set[str] = set()
    failed: set[str] = set()

    async def join(user_id: str) -> None:
        client = RoomClient(service.channel, user_id)
        try:
            await client.JoinSpace(space_id=space_id, request_id=f"burst-{user_id}")
            acknowledged.add(user_id)
        except grpc.aio.AioRpcError:
            failed.add(user_id)

    users_ = [f"b{i}" for i in range(400)]
    burst = [asyncio.create_task(join(u)) for u in users_]
    async with asyncio.timeout(10):  # mid-burst: once the first joins are acknowledged
        while len(acknowledged) < 5:
            await asyncio.sleep(0.005)
    service.kill()  # SIGKILL
    await asyncio.gather(*burst)
    assert acknowledged, "some commands should have been acknowledged before the kill"

    await service.restart()
    for user_id in failed:  # the gateway retries what it never got an answer for, same request_id
        await RoomClient(service.channel, user_id).JoinSpace(space_id=space_id, request_id=f"burst-{user_id}")
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT event_type, envelope FROM room.events WHERE space_id = $1 AND event_type = $2",
            space_id,
            "podium.room.v1.ParticipantJoined",
        )
    finally:
        await conn.close()
    from libs.events.envelope import decode

    joined = [decode(bytes(r["envelope"]))[1].user_id for r in rows]
    assert sorted(u for u in joined if u != "burst-host") == sorted(users_)  # each exactly once
    space = (await RoomClient(service.channel, "burst-host").GetSpace(space_id=space_id)).space
    assert space.participant_count == len(users_) + 1
    await service.stop()


async def test_a_room_whose_broker_lost_its_log_reports_it_and_stops_serving(
    start_room, private_broker, private_database_url
):
    """The room heals nothing itself: its views' stored positions lie past the end of the new,
    empty log, so it reports a lost log (one line, podium_log_lost) and says NOT_SERVING until an
    operator recovers the log (test_log_recovery, tests/faults/test_broker_restart.py)."""
    service = await start_room(broker=private_broker, database=private_database_url)
    host = RoomClient(service.channel, "wipe-host")
    for i in range(4):
        created = await host.CreateSpace(title=f"before wipe {i}")
        await host.StartSpace(space_id=created.space.space_id)
    await private_broker.restart()  # empty: every topic and record is gone
    async with asyncio.timeout(60):
        while await service.process.health() != "NOT_SERVING":
            await asyncio.sleep(0.2)
    log = service.process.log_path.read_text(errors="replace")
    assert "LOG LOST" in log, service.process.output_tail()
    assert "stopped reading podium." in log[log.index("LOG LOST") :].splitlines()[0]
    await service.stop()


async def test_a_space_left_without_host_or_co_host_ends_itself(start_room):
    service = await start_room(
        env={"PODIUM_ROOM_ABANDONED_GRACE_SECONDS": "1", "PODIUM_ROOM_SWEEP_INTERVAL_SECONDS": "0.2"}
    )
    host, ann = RoomClient(service.channel, "quitter"), RoomClient(service.channel, "ann")
    created = await host.CreateSpace(title="left alone")
    space_id = created.space.space_id
    await host.StartSpace(space_id=space_id)
    await ann.JoinSpace(space_id=space_id)
    await host.LeaveSpace(space_id=space_id)
    async with asyncio.timeout(20):
        while (await ann.GetSpace(space_id=space_id)).space.state != types.SPACE_STATE_ENDED:
            await asyncio.sleep(0.2)
    await service.stop()


async def test_health_is_not_serving_until_the_directory_has_caught_up(
    start_room, private_broker, private_database_url
):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from bench.rebuild import write_events
    from libs.config.settings import PodiumSettings
    from libs.devstack.catalogue import service
    from libs.devstack.supervisor import ServiceProcess
    from libs.events.topics import ROOM_EVENTS

    settings = PodiumSettings(kafka_bootstrap_servers=private_broker.bootstrap)
    await write_events(settings, ROOM_EVENTS, 60_000)  # a backlog the new process must read first
    from libs.devstack.broker import free_port

    process = ServiceProcess(
        service("room"),
        free_port(),
        {
            "DATABASE_URL": private_database_url,
            "KAFKA_BOOTSTRAP_SERVERS": private_broker.bootstrap,
            "PODIUM_METRICS_PORT": "0",  # not the default port, which another process may hold
        },
    )
    process.launch()
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not seen or seen[-1] != "SERVING":
                # A fresh channel per check: a channel that failed to connect backs off for a
                # second or more, long enough to miss the whole catch-up.
                async with grpc.aio.insecure_channel(process.address) as channel:
                    try:
                        reply = await health_pb2_grpc.HealthStub(channel).Check(
                            health_pb2.HealthCheckRequest(service=""), timeout=1
                        )
                        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                        if not seen or seen[-1] != status:
                            seen.append(status)
                    except grpc.aio.AioRpcError:
                        pass
                await asyncio.sleep(0.02)
    finally:
        await process.stop()
    assert seen == ["NOT_SERVING", "SERVING"]


async def test_a_restart_resumes_the_views_from_their_stored_positions(
    start_room, private_broker, private_database_url
):
    """Nothing is read again from offset 0: the directory applies nothing it had already applied,
    and the reactions issue no command again, yet every Space is listed as before."""
    service = await start_room(broker=private_broker, database=private_database_url)
    host = RoomClient(service.channel, "resume-host")
    ids = set()
    for i in range(12):
        space_id = (await host.CreateSpace(title=f"resume {i}")).space.space_id
        ids.add(space_id)
        await host.StartSpace(space_id=space_id)
        await RoomClient(service.channel, f"resume-guest-{i}").JoinSpace(space_id=space_id)
    async with asyncio.timeout(30):  # the directory has applied all four events of every Space
        while True:
            before = await _all_spaces(host)
            if {s.space_id for s in before if s.version == 4} >= ids:
                break
            await asyncio.sleep(0.1)
    await service.terminate()
    await service.restart()
    after = await _converged(RoomClient(service.channel, "resume-host"), host, ids)
    assert after == before
    caught_up = [
        line
        for line in service.process.log_path.read_text().splitlines()
        if "room-space-directory caught up" in line
    ]
    assert len(caught_up) == 2, caught_up
    # The 48 events (created, started, host and guest joined, for each of the 12) came after the first start's
    # catch-up. A restart that read the log again from offset 0 would apply all 48 before SERVING.
    assert "caught up: 0 events" in caught_up[1], caught_up[1]
    conn = await asyncpg.connect(private_database_url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM room.space_directory_v2")
        positions = await conn.fetchval(
            "SELECT sum(next_offset) FROM room.view_positions WHERE view = 'room-space-directory'"
        )
    finally:
        await conn.close()
    assert rows == 12 and positions == 48  # 4 events a Space: created, started, host and guest joined
    await service.stop()
