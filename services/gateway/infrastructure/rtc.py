"""WebRTC with aiortc: a listener's outgoing track, a speaker's incoming one, and the offer/answer.

A listener's track hands aiortc Opus packets (PyAV `Packet`s), which aiortc
sends as they are: the relay's frame reaches the browser without being decoded
or encoded again. The track keeps its own 20 ms clock: a slot with no frame
for this listener carries a silence frame, so the browser's jitter buffer sees
a steady stream and a voice that stops is silent at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from services.gateway.infrastructure.opus import FRAME_SAMPLES, RATE, pcm_of, silence_packet

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, RATE)
FRAME_SECONDS = FRAME_SAMPLES / RATE
SILENCE = silence_packet()


class ListenerTrack(MediaStreamTrack):
    """What one listener hears: the frames their Space's feed offers, paced at 20 ms."""

    kind = "audio"

    def __init__(self, user_id: str, buffer_frames: int):
        super().__init__()
        self.user_id = user_id
        self.frames: deque[bytes] = deque(maxlen=buffer_frames)  # full: the oldest drops
        self._start: float | None = None
        self._slot = 0

    def offer(self, opus: bytes) -> None:
        self.frames.append(opus)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._slot += 1
            wait = self._start + self._slot * FRAME_SECONDS - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -1.0:  # the loop stalled for over a second: do not burst to catch up
                self._start, self._slot = time.monotonic(), 0
        packet = av.Packet(self.frames.popleft() if self.frames else SILENCE)
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

    def __init__(self, on_closed: Callable[[], None]):
        self.pc = RTCPeerConnection()
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
