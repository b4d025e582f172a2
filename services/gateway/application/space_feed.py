"""One Subscribe per Space per gateway, fanned out to the gateway's listeners of that Space.

Each relay tick is planned per listener (`domain.mixing`): a single voice is
forwarded as the relay's own Opus frame; several are decoded once per voice,
summed once per distinct set of voices, and encoded once per set, however
many listeners share it. A listener's sink never blocks the feed: it holds a
few frames and drops the oldest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import grpc
import numpy as np

from libs.telemetry.metrics import GATEWAY_FRAME_AGE, GATEWAY_FRAMES
from services.gateway.domain.mixing import Mix, PassThrough, TickFrame, mixed, plan_for, voices

log = logging.getLogger(__name__)

RESUBSCRIBE_SECONDS = 0.5
MAX_MIX_ENCODERS = 64


class Sink(Protocol):
    user_id: str

    def offer(self, opus: bytes) -> None: ...


class Codecs(Protocol):
    def decoder(self): ...
    def encoder(self): ...


class SpaceFeed:
    def __init__(
        self,
        space_id: str,
        subscribe: Callable[[str], AsyncIterator],
        codecs: Codecs,
    ):
        self.space_id = space_id
        self.subscribe = subscribe
        self.codecs = codecs
        self.sinks: set[Sink] = set()
        self._decoders: dict[str, object] = {}
        self._encoders: dict[tuple[str, ...], object] = {}
        self._task: asyncio.Task | None = None
        self.ticks = 0

    def add(self, sink: Sink) -> None:
        self.sinks.add(sink)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"feed-{self.space_id}")

    def remove(self, sink: Sink) -> bool:
        """Drops `sink`; True when the feed has no listener left (and so stops)."""
        self.sinks.discard(sink)
        if not self.sinks and self._task is not None:
            self._task.cancel()
        return not self.sinks

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        """Subscribes while anyone listens; a Space not live yet, or a relay restarting, is retried."""
        while self.sinks:
            try:
                async for tick in self.subscribe(self.space_id):
                    now = time.time()
                    for f in tick.frames:
                        GATEWAY_FRAME_AGE.observe(max(0.0, now - f.captured_at.ToNanoseconds() / 1e9))
                    self.deliver([TickFrame(f.speaker_id, f.opus) for f in tick.frames])
            except grpc.aio.AioRpcError as e:
                log.info("subscribe to %s ended: %s %s", self.space_id, e.code().name, e.details())
            await asyncio.sleep(RESUBSCRIBE_SECONDS)

    def deliver(self, frames: list[TickFrame]) -> None:
        """One tick to every listener."""
        self.ticks += 1
        pcm: dict[str, np.ndarray] = {}
        if len(voices(frames)) > 1:
            # Decoded only when someone may need a mix; each voice keeps its decoder's state, and a
            # voice's frames of one tick are laid end to end.
            for speaker in voices(frames):
                decoder = self._decoders.get(speaker)
                if decoder is None:
                    decoder = self._decoders[speaker] = self.codecs.decoder()
                pcm[speaker] = np.concatenate(
                    [decoder.decode(f.opus) for f in frames if f.speaker_id == speaker]
                )
        encoded: dict[tuple[str, ...], list[bytes]] = {}
        for sink in tuple(self.sinks):
            match plan_for(frames, sink.user_id):
                case PassThrough(packets):
                    for opus in packets:
                        GATEWAY_FRAMES.labels("passthrough").inc()
                        sink.offer(opus)
                case Mix(speaker_ids):
                    if speaker_ids not in encoded:
                        encoded[speaker_ids] = self._encoder(speaker_ids).encode(
                            mixed([pcm[s] for s in speaker_ids])
                        )
                    for packet in encoded[speaker_ids]:
                        GATEWAY_FRAMES.labels("mixed").inc()
                        sink.offer(packet)

    def _encoder(self, key: tuple[str, ...]):
        encoder = self._encoders.get(key)
        if encoder is None:
            if len(self._encoders) >= MAX_MIX_ENCODERS:
                self._encoders.clear()  # sets of voices come and go; a fresh encoder costs one frame
            encoder = self._encoders[key] = self.codecs.encoder()
        return encoder


class Feeds:
    """The gateway's feeds, one per Space someone here listens to."""

    def __init__(self, subscribe: Callable[[str], AsyncIterator], codecs: Codecs):
        self.subscribe = subscribe
        self.codecs = codecs
        self.feeds: dict[str, SpaceFeed] = {}

    def join(self, space_id: str, sink: Sink) -> None:
        feed = self.feeds.get(space_id)
        if feed is None:
            feed = self.feeds[space_id] = SpaceFeed(space_id, self.subscribe, self.codecs)
        feed.add(sink)

    def leave(self, space_id: str, sink: Sink) -> None:
        feed = self.feeds.get(space_id)
        if feed is not None and feed.remove(sink):
            del self.feeds[space_id]

    async def stop(self) -> None:
        for feed in self.feeds.values():
            await feed.stop()
        self.feeds.clear()
