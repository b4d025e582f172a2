"""SIGTERM: streams end with UNAVAILABLE at once, acknowledged events still reach the broker, and
the process exits cleanly within its grace period."""

from __future__ import annotations

import asyncio
import signal

import grpc
import pytest

from libs.config.settings import PodiumSettings
from libs.events.tail import space_history
from libs.events.topics import ROOM_EVENTS
from podium.presence.v1 import presence_service_pb2 as ps
from podium.room.v1 import room_events_pb2 as rev
from tests.integration.clients import PresenceClient, RoomClient

pytestmark = pytest.mark.integration


async def _exit_code(service, timeout: float) -> int:
    try:
        return await asyncio.wait_for(asyncio.to_thread(service.process.process.wait), timeout)
    except TimeoutError:
        raise AssertionError(f"{service.process.spec.name} still running {timeout} s after SIGTERM") from None


async def _within(awaitable, timeout: float, what: str, service=None):
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        tail = f"; its output:\n{service.process.output_tail()}" if service is not None else ""
        raise AssertionError(f"no {what} within {timeout} s{tail}") from None


async def test_sigterm_ends_watch_streams_with_unavailable_and_exits_cleanly(
    service_factory, private_broker, private_database_url
):
    # A grace period far longer than the waits below: a stream that ended within them was ended by
    # the shutdown itself, not by the drain running out (no wall-clock bound in the test).
    room, presence = await asyncio.gather(
        service_factory("room", broker=private_broker, database=private_database_url),
        service_factory(
            "presence",
            broker=private_broker,
            database=private_database_url,
            env={"PODIUM_SHUTDOWN_GRACE_SECONDS": "60"},
        ),
    )
    host = RoomClient(room.channel, "drain-host")
    space_id = (await host.CreateSpace(title="draining")).space.space_id
    await host.StartSpace(space_id=space_id)
    watcher = PresenceClient(presence.channel, "gateway-service")
    stream = watcher.stub.WatchSpace(ps.WatchSpaceRequest(space_id=space_id), metadata=watcher._md())
    updates = stream.__aiter__()
    first = await _within(updates.__anext__(), 15, "first WatchSpace snapshot")
    assert first.WhichOneof("update") == "snapshot"

    presence.process.process.send_signal(signal.SIGTERM)

    async def until_the_stream_ends() -> None:
        while True:  # an update already on its way (the Space's start, say) may come first
            await updates.__anext__()

    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await _within(until_the_stream_ends(), 30, "end of the WatchSpace stream after SIGTERM", presence)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in ended.value.details()  # ended by the server, not by the process dying
    assert await _exit_code(presence, 30) == 0
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # and it takes no new calls
        await watcher.GetSpacePresence(space_id=space_id)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    await room.stop()


async def test_sigterm_publishes_every_acknowledged_event_and_refused_calls_retry_once(
    service_factory, private_broker, private_database_url
):
    room = await service_factory("room", broker=private_broker, database=private_database_url)
    host = RoomClient(room.channel, "flush-host")
    space_id = (await host.CreateSpace(title="flushed")).space.space_id
    await host.StartSpace(space_id=space_id)
    listeners = [RoomClient(room.channel, f"flush-{i}") for i in range(40)]

    def join(listener: RoomClient):
        return listener.JoinSpace(space_id=space_id, request_id=f"join-{listener.user_id}")

    joins = [asyncio.create_task(join(listener)) for listener in listeners]
    await asyncio.sleep(0.05)
    room.process.process.send_signal(signal.SIGTERM)  # while joins are in flight
    results = await asyncio.gather(*joins, return_exceptions=True)
    assert await _exit_code(room, 15) == 0
    acknowledged = {
        c.user_id for c, r in zip(listeners, results, strict=True) if not isinstance(r, Exception)
    }
    refused = [c for c, r in zip(listeners, results, strict=True) if isinstance(r, Exception)]
    # Calls the draining server did not take fail as retryable: UNAVAILABLE, or CANCELLED when
    # they arrived as it stopped (gRPC's own code for that); they may or may not have been applied.
    assert {r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)} <= {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
    }
    assert len(acknowledged) + len(refused) == len(listeners)
    settings = PodiumSettings(kafka_bootstrap_servers=private_broker.bootstrap)
    history = await space_history(settings, ROOM_EVENTS.name, space_id)
    joined = {event.user_id for event, _ in history if isinstance(event, rev.ParticipantJoined)}
    assert acknowledged and acknowledged <= joined  # nothing acknowledged is missing from the log

    # The gateway retries what was refused, with the same request ids, once the room is back:
    # every user ends up joined exactly once.
    await room.restart()
    for listener in refused:
        await join(listener)
    async with asyncio.timeout(15):
        while True:
            history = await space_history(settings, ROOM_EVENTS.name, space_id)
            joins_seen = [e.user_id for e, _ in history if isinstance(e, rev.ParticipantJoined)]
            if set(joins_seen) >= {c.user_id for c in listeners}:
                break
            await asyncio.sleep(0.2)
    everyone = {c.user_id for c in listeners}
    assert sorted(u for u in joins_seen if u in everyone) == sorted(everyone)  # each exactly once
    await room.stop()
