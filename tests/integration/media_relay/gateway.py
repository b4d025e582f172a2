"""Test gateways for the media relay: a speaker's publisher and a listener gateway's subscriber."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from libs.config.settings import PodiumSettings
from libs.events.kafka import make_reader, partitions_of
from podium.media.v1 import media_service_pb2 as pb
from podium.media.v1 import media_service_pb2_grpc
from podium.media.v1 import media_types_pb2 as mt
from tests.support.auth import bearer, gateway_bearer

FRAME_SECONDS = 0.02
# The relay's view lags the log by milliseconds: a new Space may be unknown, not yet live, or the
# speaker not yet a speaker there.
RETRY_CODES = (
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
)


def now_stamp() -> Timestamp:
    ns = time.time_ns()
    return Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


def stamp_seconds(t: Timestamp) -> float:
    return t.seconds + t.nanos / 1e9


def frame(space_id: str, speaker_id: str, sequence: int, opus: bytes, level: int = -10) -> pb.PublishRequest:
    return pb.PublishRequest(
        frame=mt.AudioFrame(
            space_id=space_id,
            speaker_id=speaker_id,
            sequence=sequence,
            captured_at=now_stamp(),
            audio_level_dbov=level,
            opus=opus,
        )
    )


@dataclass
class Publisher:
    """Sends `frames` for one speaker, paced at 20 ms (open loop), on one Publish stream."""

    channel: grpc.aio.Channel
    space_id: str
    speaker_id: str
    frames: list[bytes]
    level: int = -10
    sent: int = 0
    started: float = 0.0
    finished: float = 0.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> pb.PublishResponse:
        """Writes the frames on schedule; returns the relay's answer or raises its status."""
        stub = media_service_pb2_grpc.MediaRelayServiceStub(self.channel)
        call = stub.Publish(metadata=bearer(self.speaker_id), timeout=60)
        start = time.monotonic()
        self.started = time.time()
        try:
            for i, opus in enumerate(self.frames):
                delay = start + i * FRAME_SECONDS - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                # Check right before writing: a write after the relay closed the call turns its
                # status into a client-side INTERNAL error (grpc aio behaviour).
                if self.stop.is_set() or call.done():
                    break
                await call.write(frame(self.space_id, self.speaker_id, i, opus, self.level))
                self.sent = i + 1
            await call.done_writing()
        except Exception:
            pass  # the relay ended the call: its status is below
        self.finished = time.time()
        return await call


async def publish_when_admitted(publisher: Publisher, timeout: float = 15.0) -> asyncio.Task:
    """Starts `publisher` once the relay's view lets the speaker publish (it lags the log by milliseconds).

    Probes with one frame per attempt until the relay accepts it, then runs the publisher.
    """
    stub = media_service_pb2_grpc.MediaRelayServiceStub(publisher.channel)
    async with asyncio.timeout(timeout):
        while True:
            try:
                call = stub.Publish(metadata=bearer(publisher.speaker_id), timeout=10)
                await call.write(
                    frame(publisher.space_id, publisher.speaker_id, 0, publisher.frames[0], -127)
                )
                await call.done_writing()
                reply = await call
                if reply.frames_forwarded == 1:
                    break
            except grpc.aio.AioRpcError as e:
                if e.code() not in RETRY_CODES:
                    raise
            await asyncio.sleep(0.05)
    return asyncio.create_task(publisher.run())


@dataclass
class Received:
    speaker_id: str
    sequence: int
    opus: bytes
    captured_at: float
    relayed_at: float
    received_at: float


@dataclass
class Subscriber:
    """A listener gateway: reads the Space's stream, optionally slowly."""

    channel: grpc.aio.Channel
    space_id: str
    gateway_id: str
    delay: float = 0.0
    frames: list[Received] = field(default_factory=list)
    messages: int = 0
    dropped_total: int = 0
    status: grpc.StatusCode | None = None
    details: str = ""
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        stub = media_service_pb2_grpc.MediaRelayServiceStub(self.channel)
        call = stub.Subscribe(
            pb.SubscribeRequest(space_id=self.space_id, gateway_id=self.gateway_id),
            metadata=gateway_bearer(self.gateway_id),
        )
        try:
            await call.initial_metadata()
            self.connected.set()
            async for message in call:
                received_at = time.time()
                self.messages += 1
                self.dropped_total = message.dropped_total
                for f in message.frames:
                    self.frames.append(
                        Received(
                            f.speaker_id,
                            f.sequence,
                            f.opus,
                            stamp_seconds(f.captured_at),
                            stamp_seconds(f.relayed_at),
                            received_at,
                        )
                    )
                if self.delay:
                    await asyncio.sleep(self.delay)
            self.status = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as e:
            self.status, self.details = e.code(), e.details() or ""
        finally:
            self.connected.set()

    def of(self, speaker_id: str) -> list[Received]:
        return [f for f in self.frames if f.speaker_id == speaker_id]


async def subscribe_when_known(subscriber: Subscriber, timeout: float = 15.0) -> asyncio.Task:
    """Starts `subscriber` once the relay knows the Space (its view lags the log by milliseconds)."""
    async with asyncio.timeout(timeout):
        while True:
            attempt = Subscriber(subscriber.channel, subscriber.space_id, subscriber.gateway_id)
            task = asyncio.create_task(attempt.run())
            await attempt.connected.wait()
            await asyncio.sleep(0.05)
            if attempt.status is None:
                task.cancel()
                break
            if attempt.status != grpc.StatusCode.NOT_FOUND:
                raise AssertionError(f"subscribe failed: {attempt.status} {attempt.details}")
    task = asyncio.create_task(subscriber.run())
    await subscriber.connected.wait()
    return task


async def read_topic(bootstrap: str, topic: str, until, timeout: float = 15.0) -> list:
    """Records of `topic` from the beginning, until `until(records)` is true (or the timeout)."""
    reader = make_reader(PodiumSettings(kafka_bootstrap_servers=bootstrap), f"test-{topic}-{time.time_ns()}")
    await reader.start()
    records: list = []
    try:
        parts = await partitions_of(reader, topic)
        reader.assign(parts)
        await reader.seek_to_beginning(*parts)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(records):
            batch = await reader.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
    finally:
        await reader.stop()
    return records


class ReconnectingGateway:
    """A gateway as production would write one: on any stream error, reconnect and resume at the live edge."""

    def __init__(self, channel: grpc.aio.Channel, space_id: str, user_id: str, publish: list[bytes] | None):
        self.channel, self.space_id, self.user_id, self.publish = channel, space_id, user_id, publish
        self.received: list[float] = []  # receive times of frames
        self.reconnects = 0
        self.stop = asyncio.Event()

    async def subscribe_forever(self) -> None:
        stub = media_service_pb2_grpc.MediaRelayServiceStub(self.channel)
        while not self.stop.is_set():
            try:
                call = stub.Subscribe(
                    pb.SubscribeRequest(space_id=self.space_id, gateway_id="gw-failover"),
                    metadata=gateway_bearer("gw-failover"),
                )
                async for message in call:
                    now = time.time()
                    self.received.extend(now for _ in message.frames)
            except grpc.aio.AioRpcError:
                self.reconnects += 1
                await asyncio.sleep(0.1)

    async def publish_forever(self) -> None:
        stub = media_service_pb2_grpc.MediaRelayServiceStub(self.channel)
        sequence = 0
        while not self.stop.is_set():
            call = stub.Publish(metadata=bearer(self.user_id))
            start = time.monotonic()
            try:
                for i in range(10**6):
                    if self.stop.is_set() or call.done():
                        break
                    delay = start + i * 0.02 - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    opus = self.publish[sequence % len(self.publish)]
                    await call.write(frame(self.space_id, self.user_id, sequence, opus))
                    sequence += 1
                await call.done_writing()
                await call
            except Exception:
                self.reconnects += 1
                await asyncio.sleep(0.1)
