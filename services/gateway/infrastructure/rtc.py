"""WebRTC with aiortc: a listener's outgoing track, a speaker's incoming one, and the offer/answer.

A listener's track hands aiortc Opus packets (PyAV `Packet`s), which aiortc
sends as they are: the relay's frame reaches the browser without being decoded
or encoded again. The track follows the relay's 20 ms ticks as they arrive,
so it adds no delay of its own, and numbers them contiguously while they
come about on time: the ticks jitter, and the browser's jitter buffer evens
that out. A stall longer than three frames is numbered as the time it took. When no frame comes
for a listener for three frames' time (nobody they hear is talking) it sends
silence frames on its own clock, so the browser hears silence, not a
concealment of the last voice, and the stream never stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from libs.telemetry.metrics import GATEWAY_FRAMES
from services.gateway.domain.ice import IceServer
from services.gateway.infrastructure.opus import FRAME_SAMPLES, RATE, pcm_of, silence_packet

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, RATE)
FRAME_SECONDS = FRAME_SAMPLES / RATE
SILENCE = silence_packet()
IDLE_FRAMES = 3  # no frame for this long: the voices stopped, silence follows
LATE_FRAMES = 3  # later than this behind the 20 ms clock: a stall, not jitter
RESYNC_FRAMES = 10


class ListenerTrack(MediaStreamTrack):
    """What one listener hears: the frames their Space's feed offers, as they come."""

    kind = "audio"

    def __init__(self, user_id: str, buffer_frames: int):
        super().__init__()
        self.user_id = user_id
        self.frames: deque[bytes] = deque(maxlen=buffer_frames)  # full: the oldest drops
        self._arrived = asyncio.Event()
        self._start: float | None = None
        self._slot = -1
        self._talking = False

    def _next_slot_time(self) -> float:
        assert self._start is not None
        return self._start + (self._slot + 1) * FRAME_SECONDS

    def offer(self, opus: bytes) -> None:
        if len(self.frames) == self.frames.maxlen:
            GATEWAY_FRAMES.labels("dropped_listener").inc()
        self.frames.append(opus)
        self._arrived.set()

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        if not self.frames:
            self._arrived.clear()
            # While voices come, wait for the next as long as a late tick may be; in silence, keep
            # the 20 ms clock.
            wait = IDLE_FRAMES * FRAME_SECONDS if self._talking else self._next_slot_time() - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), max(0.0, wait))
        self._talking = bool(self.frames)
        opus = self.frames.popleft() if self.frames else SILENCE
        if opus is SILENCE:
            GATEWAY_FRAMES.labels("silence").inc()
        self._slot += 1
        wall = (time.monotonic() - self._start) / FRAME_SECONDS
        if wall - self._slot > LATE_FRAMES:
            # Frames stalled on the way (a busy machine, a relay's burst): number this one for now
            # and leave a gap the browser conceals. Numbered on from before, the browser would take
            # the stall for network delay and keep that much more audio buffered from then on.
            self._slot = round(wall)
        elif self._slot - wall > RESYNC_FRAMES:  # running ahead of the clock for long: follow it
            self._start = time.monotonic() - self._slot * FRAME_SECONDS
        packet = av.Packet(opus)
        packet.pts = self._slot * FRAME_SAMPLES
        packet.time_base = TIME_BASE
        return packet


class MicrophoneReader:
    """A speaker's incoming track as mono float PCM (aiortc decodes the browser's Opus)."""

    def __init__(self, track: MediaStreamTrack):
        self.track = track

    async def read(self) -> np.ndarray:
        frame = await self.track.recv()
        pcm = pcm_of([frame])
        if frame.sample_rate != RATE:  # browsers send 48 kHz Opus; anything else is resampled crudely
            pcm = np.interp(
                np.arange(0, len(pcm), frame.sample_rate / RATE), np.arange(len(pcm)), pcm
            ).astype(np.float32)
        return pcm


class Peer:
    """One browser's peer connection, and what to do when it goes away."""

    def __init__(self, on_closed: Callable[[], None], ice_servers: list[IceServer] = ()):
        # The same servers the browser was given: behind NAT the pair that works may be a relayed one.
        configuration = RTCConfiguration(
            iceServers=[
                RTCIceServer(urls=list(s.urls), username=s.username or None, credential=s.credential or None)
                for s in ice_servers
            ]
        )
        self.pc = RTCPeerConnection(configuration)
        self._on_closed = on_closed
        self._closed = False
        self.remote_track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

        @self.pc.on("connectionstatechange")
        async def _state() -> None:
            if self.pc.connectionState in ("failed", "closed"):
                await self.close()

        @self.pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and not self.remote_track.done():
                self.remote_track.set_result(track)

    async def answer(
        self, sdp: str, kind: str, send: MediaStreamTrack | None = None
    ) -> RTCSessionDescription:
        """Takes the browser's offer (with its ICE candidates) and answers with the gateway's."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        if send is not None:
            self.pc.addTrack(send)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.pc.close()
        self._on_closed()
