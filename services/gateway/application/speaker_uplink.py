"""A speaker's microphone, from the browser's WebRTC track to the relay's Publish.

The browser's Opus is decoded by the WebRTC stack (aiortc hands out PCM only),
so the gateway encodes it again as the relay's 20 ms frames: one encode per
speaker, never per listener. The track is read all the time, so WebRTC's
buffers never fill; frames go to a Publish stream while one is open. The relay
refuses a Publish while the user may not speak (a listener, a Space not live
yet): the gateway tries again shortly, so being invited to speak needs no new
connection. A hard mute keeps the stream open and the relay drops the frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from libs.telemetry.metrics import GATEWAY_FRAMES
from podium.media.v1 import media_service_pb2 as pb
from podium.media.v1 import media_types_pb2 as mt
from services.gateway.domain.mixing import level_dbov

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.3
QUEUE_FRAMES = 5  # 100 ms: older microphone audio is not worth sending late


def _now() -> Timestamp:
    ns = time.time_ns()
    return Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


class SpeakerUplink:
    def __init__(
        self,
        space_id: str,
        user_id: str,
        read_pcm: Callable[[], Awaitable[np.ndarray]],
        encoder,
        open_publish: Callable[[], Awaitable[grpc.aio.StreamUnaryCall]],
    ):
        self.space_id = space_id
        self.user_id = user_id
        self.read_pcm = read_pcm
        self.encoder = encoder
        self.open_publish = open_publish
        self.queue: asyncio.Queue[mt.AudioFrame] = asyncio.Queue(QUEUE_FRAMES)
        self.sequence = 0
        self.published = 0
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._publish())]

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def stop(self) -> None:
        self.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _read(self) -> None:
        while True:
            pcm = await self.read_pcm()
            for opus in self.encoder.encode(pcm):
                GATEWAY_FRAMES.labels("encoded").inc()
                frame = mt.AudioFrame(
                    space_id=self.space_id,
                    speaker_id=self.user_id,
                    sequence=self.sequence,
                    captured_at=_now(),
                    audio_level_dbov=level_dbov(pcm),
                    opus=opus,
                )
                self.sequence += 1
                if self.queue.full():
                    GATEWAY_FRAMES.labels("dropped_uplink").inc()
                    self.queue.get_nowait()  # the oldest goes: late audio is worse than lost audio
                self.queue.put_nowait(frame)

    async def _publish(self) -> None:
        while True:
            call = None
            try:
                call = await self.open_publish()
                while True:
                    frame = await self.queue.get()
                    # A write after the relay closed the call would hide its status (grpc aio).
                    if call.done():
                        break
                    await call.write(pb.PublishRequest(frame=frame))
                    self.published += 1
                await call
            except grpc.aio.AioRpcError as e:
                log.debug(
                    "publish for %s in %s: %s %s", self.user_id, self.space_id, e.code().name, e.details()
                )
            finally:
                if call is not None and not call.done():
                    call.cancel()
            await asyncio.sleep(RETRY_SECONDS)
            while not self.queue.empty():  # what queued while refused is stale now
                self.queue.get_nowait()
