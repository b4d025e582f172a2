"""The replay service under test, and a way to put recorded audio and talking events on the log."""

from __future__ import annotations

import asyncio
from datetime import datetime

import grpc
import pytest
from aiokafka import AIOKafkaProducer

from libs.events.envelope import Causation, wrap
from libs.events.ids import new_id
from libs.events.topics import MEDIA_EVENTS, MEDIA_RECORDING
from podium.replay.v1 import replay_service_pb2, replay_service_pb2_grpc
from tests.integration.clients import ServiceClient

FAST_FINALIZE = {
    "PODIUM_REPLAY_FINALIZE_DELAY_SECONDS": "0.3",
    "PODIUM_REPLAY_FINALIZE_POLL_SECONDS": "0.2",
}


class ReplayClient(ServiceClient):
    stub_class = replay_service_pb2_grpc.ReplayServiceStub
    messages = replay_service_pb2

    def stream(self, method: str, **fields):
        rpc = getattr(self.stub, method)
        request = getattr(self.messages, f"{method}Request")(**fields)
        return rpc(request, metadata=self._md(), timeout=60)


@pytest.fixture(scope="session")
def blob_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("replays")


@pytest.fixture(scope="session")
async def replay(service_factory, blob_dir, room, moderation):
    return await service_factory("replay", env={"PODIUM_REPLAY_BLOB_DIR": str(blob_dir), **FAST_FINALIZE})


class MediaLog:
    """Writes what the media relay would: RecordingChunks and talking events, keyed by Space id."""

    def __init__(self, producer: AIOKafkaProducer):
        self.producer = producer
        self.versions: dict[str, int] = {}

    async def chunks(self, chunks) -> None:
        for chunk in chunks:
            await self.producer.send_and_wait(
                MEDIA_RECORDING.name, key=chunk.space_id.encode(), value=chunk.SerializeToString()
            )

    async def event(self, payload, at: datetime) -> None:
        stream = f"talk-{payload.space_id}"
        self.versions[stream] = self.versions.get(stream, 0) + 1
        envelope = wrap(
            payload,
            producer="media-relay",
            stream_id=stream,
            version=self.versions[stream],
            space_id=payload.space_id,
            occurred_at=at,
            causation=Causation("system:media-relay", new_id(), new_id()),
        )
        await self.producer.send_and_wait(
            MEDIA_EVENTS.name, key=payload.space_id.encode(), value=envelope.SerializeToString()
        )


@pytest.fixture(scope="session")
async def media_log(broker):
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    yield MediaLog(producer)
    await producer.stop()


async def until_ready(client: ReplayClient, space_id: str, timeout: float = 30.0, seen: list | None = None):
    """Polls GetReplay until READY; returns the replay. `seen` collects the states and progress on the way."""
    from podium.replay.v1 import replay_types_pb2 as rt

    async with asyncio.timeout(timeout):
        while True:
            try:
                replay = (await client.GetReplay(space_id=space_id)).replay
            except grpc.aio.AioRpcError as e:
                if e.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                    raise
                if seen is not None:
                    seen.append(e.details())
                await asyncio.sleep(0.1)
                continue
            if seen is not None:
                seen.append((replay.state, replay.progress))
            if replay.state == rt.REPLAY_STATE_READY:
                return replay
            await asyncio.sleep(0.05)
