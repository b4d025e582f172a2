"""Spaces written straight into the room's topic, for tests of services that only read it.

Presence refuses heartbeats for Spaces the room never created. A presence test that needs many
Spaces, or runs on a broker of its own without a room service, announces them here instead of
starting a room and calling CreateSpace for each: the same `SpaceCreated` envelope the room
writes, as the first event of the Space's stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime

import grpc

from libs.config.settings import PodiumSettings
from libs.events.envelope import Causation, wrap
from libs.events.kafka import make_producer
from libs.events.topics import ROOM_EVENTS
from podium.presence.v1 import presence_service_pb2 as ps
from podium.presence.v1 import presence_service_pb2_grpc
from podium.room.v1 import room_events_pb2 as rev
from services.room.application.space_commands import stream_of
from tests.support.auth import bearer


async def announce_spaces(
    bootstrap: str,
    space_ids: Iterable[str],
    host_user_id: str = "announced-host",
    *,
    presence: grpc.aio.Channel | None = None,
    timeout: float = 30.0,
):
    """Writes a `SpaceCreated` (stream version 1) for each Space to the room topic; with `presence`,
    returns once that presence service knows every one of them (it refuses heartbeats for a Space
    it has not seen created, and its view lags the topic)."""
    space_ids = list(space_ids)
    await write_space_events(
        bootstrap,
        [(s, 1, rev.SpaceCreated(space_id=s, host_user_id=host_user_id, title=s[:70])) for s in space_ids],
    )
    if presence is None:
        return
    stub = presence_service_pb2_grpc.PresenceServiceStub(presence)
    metadata = bearer("announcer")
    async with asyncio.timeout(timeout):
        for space_id in space_ids:
            while True:
                try:
                    await stub.GetSpacePresence(
                        ps.GetSpacePresenceRequest(space_id=space_id, page_size=1), metadata=metadata
                    )
                    break
                except grpc.aio.AioRpcError as e:
                    if e.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                await asyncio.sleep(0.05)


async def end_announced_spaces(bootstrap: str, space_ids: Iterable[str]):
    """Writes a `SpaceEnded` (stream version 2) for each Space `announce_spaces` wrote."""
    await write_space_events(bootstrap, [(s, 2, rev.SpaceEnded(space_id=s)) for s in space_ids])


async def write_space_events(bootstrap: str, events) -> None:
    """Writes each `(space_id, version, event)` to the room topic, on the Space's own stream."""
    producer = make_producer(PodiumSettings(kafka_bootstrap_servers=bootstrap), "test-room-log")
    await producer.start()
    try:
        causation = Causation(actor_user_id="announced-host", correlation_id="test", causation_id="test")
        sent = []
        for space_id, version, event in events:
            envelope = wrap(
                event,
                producer="room",
                stream_id=stream_of(space_id),
                version=version,
                space_id=space_id,
                occurred_at=datetime.now(UTC),
                causation=causation,
            )
            sent.append(
                await producer.send(ROOM_EVENTS.name, envelope.SerializeToString(), key=space_id.encode())
            )
        for future in sent:
            await future
    finally:
        await producer.stop()
