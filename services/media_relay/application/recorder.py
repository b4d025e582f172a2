"""Recording: about one second of each speaker's admitted frames per record, off the hot path.

The fan-out calls `offer` for every admitted frame of a Space whose recording
is on; it only appends to a bounded queue (a full queue drops the frame and
counts it, never blocking forwarding). A background task groups the frames
per speaker and, every `chunk_frames` frames (or when a speaker goes quiet,
the Space ends or the relay stops), writes one `RecordingChunk` to
`podium.media.recording.v1`, keyed by Space id, so one Space's chunks stay in
order on one partition.

`chunk_sequence` counts per Space from the relay process's start time in
microseconds, so (relay_id, chunk_sequence) stays unique and increasing
across restarts of the relay.

A chunk the broker does not acknowledge (an error after the client's own
retries, e.g. a broker that just came back empty) is sent again, the same
bytes under the same sequence, with a growing pause, up to `max_attempts`
times: the replay drops the copies it already has. Only then is it logged as
lost and counted (`chunks_lost`).

The recording topic is made by its owner, like every topic: the recorder waits
at start until it exists with its partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from libs.config.settings import PodiumSettings
from libs.events.kafka import make_producer
from libs.events.kafka_security import kafka_security
from libs.events.topics import MEDIA_RECORDING, wait_for_topics
from services.media_relay.application.fanout import varint

log = logging.getLogger(__name__)

_FLUSH = object()


def _field_bytes(number: int, value: bytes) -> bytes:
    return varint((number << 3) | 2) + varint(len(value)) + value


def encode_chunk(space_id: str, speaker_id: str, relay_id: str, sequence: int, frames: list[bytes]) -> bytes:
    """A serialized RecordingChunk from already-encoded RelayedFrames."""
    head = (
        _field_bytes(1, space_id.encode())
        + _field_bytes(2, speaker_id.encode())
        + _field_bytes(3, relay_id.encode())
        + b"\x20"
        + varint(sequence)
    )
    return head + b"".join(_field_bytes(5, f) for f in frames)


class Recorder:
    def __init__(
        self,
        settings: PodiumSettings,
        relay_id: str,
        *,
        chunk_frames: int = 50,
        queue_frames: int = 20000,
        idle_flush_seconds: float = 1.5,
        max_attempts: int = 8,
    ):
        self.settings = settings
        self.relay_id = relay_id
        self.chunk_frames = chunk_frames
        self.idle_flush_seconds = idle_flush_seconds
        self.queue: asyncio.Queue = asyncio.Queue(queue_frames)
        self.dropped = 0
        self.chunks_written = 0
        self.chunks_resent = 0
        self.chunks_lost = 0
        self.max_attempts = max_attempts
        self._resending: set[asyncio.Task] = set()
        self._buffers: dict[tuple[str, str], tuple[float, list[bytes]]] = {}
        self._sequences: dict[str, int] = {}
        self._recording: set[str] = set()  # Spaces with frames offered since their start here
        self._base_sequence = time.time_ns() // 1000
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task | None = None

    # Called from the hot path: never blocks.

    def offer(self, space_id: str, speaker_id: str, relayed_frame: bytes) -> None:
        self._recording.add(space_id)
        try:
            self.queue.put_nowait((space_id, speaker_id, relayed_frame))
        except asyncio.QueueFull:
            self.dropped += 1

    def end_space(self, space_id: str) -> None:
        """Writes what is left of the Space's recording (it ended)."""
        if space_id not in self._recording:
            return  # nothing recorded here (e.g. an old Space's end, read again at start-up)
        self._recording.discard(space_id)
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait((_FLUSH, space_id, b""))

    async def start(self) -> None:
        await wait_for_topics(
            self.settings.kafka_bootstrap_servers,
            (MEDIA_RECORDING,),
            self.settings.topic_partitions,
            "the media relay's recorder",
            **kafka_security(self.settings),
        )
        self._producer = make_producer(self.settings, client_id="podium-media-relay-recorder")
        await self._producer.start()
        self._task = asyncio.create_task(self._run(), name="recorder")

    async def stop(self) -> None:
        """Writes every remaining frame and waits for the broker's acknowledgements."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is None:
            return
        try:
            while not self.queue.empty():
                await self._take(self.queue.get_nowait())
            for key in list(self._buffers):
                await self._write(key)
            await self._producer.flush()
            while self._resending:  # chunks waiting to be sent again, then their acknowledgements
                await asyncio.wait(set(self._resending), timeout=30)
                await self._producer.flush()
        finally:
            await self._producer.stop()

    async def _run(self) -> None:
        while True:
            try:
                item = await asyncio.wait_for(self.queue.get(), self.idle_flush_seconds / 3)
            except TimeoutError:
                item = None
            try:
                if item is not None:
                    await self._take(item)
                    while not self.queue.empty():
                        await self._take(self.queue.get_nowait())
                await self._flush_idle()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recording failed; the chunk is lost")

    async def _take(self, item) -> None:
        space_id, speaker_id, frame = item
        if space_id is _FLUSH:
            for key in [k for k in self._buffers if k[0] == speaker_id]:
                await self._write(key)
            self._sequences.pop(speaker_id, None)
            return
        key = (space_id, speaker_id)
        buffered = self._buffers.get(key)
        if buffered is None:
            self._buffers[key] = (time.monotonic(), [frame])
        else:
            buffered[1].append(frame)
            if len(buffered[1]) >= self.chunk_frames:
                await self._write(key)

    async def _flush_idle(self) -> None:
        now = time.monotonic()
        for key, (since, _) in list(self._buffers.items()):
            if now - since >= self.idle_flush_seconds:
                await self._write(key)

    async def _write(self, key: tuple[str, str]) -> None:
        _, frames = self._buffers.pop(key)
        space_id, speaker_id = key
        sequence = self._sequences.get(space_id, self._base_sequence)
        self._sequences[space_id] = sequence + 1
        value = encode_chunk(space_id, speaker_id, self.relay_id, sequence, frames)
        await self._send(space_id, value, attempt=1)
        self.chunks_written += 1

    async def _send(self, space_id: str, value: bytes, attempt: int) -> None:
        assert self._producer is not None
        try:
            delivery = await self._producer.send(MEDIA_RECORDING.name, value=value, key=space_id.encode())
        except KafkaError as e:  # no metadata for the topic in time (a broker away)
            self._again(space_id, value, attempt, e)
            return
        delivery.add_done_callback(lambda done: self._on_delivery(done, space_id, value, attempt))

    def _on_delivery(self, delivery: asyncio.Future, space_id: str, value: bytes, attempt: int) -> None:
        if not delivery.cancelled() and delivery.exception() is not None:
            self._again(space_id, value, attempt, delivery.exception())

    def _again(self, space_id: str, value: bytes, attempt: int, error: BaseException) -> None:
        if attempt >= self.max_attempts:
            self.chunks_lost += 1
            log.error(
                "a recording chunk of space %s was lost after %d attempts: %r", space_id, attempt, error
            )
            return
        log.warning(
            "a recording chunk of space %s was not acknowledged (%r); sending it again", space_id, error
        )
        task = asyncio.get_running_loop().create_task(self._resend(space_id, value, attempt + 1))
        self._resending.add(task)
        task.add_done_callback(self._resending.discard)

    async def _resend(self, space_id: str, value: bytes, attempt: int) -> None:
        await asyncio.sleep(min(5.0, 0.1 * 2**attempt))
        self.chunks_resent += 1
        try:
            await self._send(space_id, value, attempt)
        except Exception as e:  # the producer is stopping
            self.chunks_lost += 1
            log.error("a recording chunk of space %s was lost: %r", space_id, e)
