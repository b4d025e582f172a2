"""Fixtures for the room service's integration tests."""

from __future__ import annotations

import asyncio

import pytest

from libs.config.settings import PodiumSettings
from libs.events.envelope import EventEnvelope
from libs.events.kafka import make_reader, partitions_of
from libs.events.topics import ROOM_EVENTS
from tests.integration.clients import RoomClient


@pytest.fixture
def start_room(service_factory):
    """Starts another room process (a replica, or one against another broker)."""

    async def start(broker=None, database=None, env=None):
        kwargs = {"env": env}
        if broker is not None:
            kwargs["broker"] = broker
        if database is not None:
            kwargs["database"] = database
        return await service_factory("room", **kwargs)

    return start


@pytest.fixture
def users(room):
    def make(*user_ids: str) -> list[RoomClient]:
        return [RoomClient(room.channel, user_id) for user_id in user_ids]

    return make


@pytest.fixture
def room_topic_events(broker):
    """Reads the room topic from the beginning until `count` envelopes of one Space have arrived."""

    async def read(space_id: str, count: int, timeout: float = 20.0) -> list[EventEnvelope]:
        settings = PodiumSettings(kafka_bootstrap_servers=broker.bootstrap)
        reader = make_reader(settings, "test-room-topic")
        await reader.start()
        found: list[EventEnvelope] = []
        try:
            parts = await partitions_of(reader, ROOM_EVENTS.name)
            reader.assign(parts)
            await reader.seek_to_beginning(*parts)
            async with asyncio.timeout(timeout):
                while len(found) < count:
                    batch = await reader.getmany(timeout_ms=200)
                    for records in batch.values():
                        for record in records:
                            envelope = EventEnvelope.FromString(record.value)
                            if envelope.space_id == space_id:
                                assert record.key.decode() == space_id
                                found.append(envelope)
        finally:
            await reader.stop()
        return found

    return read
