"""Audio in the fault load: the host speaks real Opus through the media relay and a gateway listens.

Both sides reconnect on any stream error, as a production gateway would. The
checks: after a fault the audio flows again within `RESUME_SECONDS` of the
failed part serving again, and at the end it is flowing at its full rate.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import grpc

from tests.faults.support import cancel_all
from tests.integration.media_relay.gateway import ReconnectingGateway
from tests.support.audio import tone_frames

RESUME_SECONDS = 2.0  # the relay issue's bound for a relay failover
FRAMES_PER_SECOND = 50  # 20 ms Opus frames


class LiveAudio:
    def __init__(self, relay: grpc.aio.Channel, space_id: str, speaker_id: str):
        self.speaker = ReconnectingGateway(relay, space_id, speaker_id, tone_frames(440, 1.0))
        self.listener = ReconnectingGateway(relay, space_id, "gw-faults-audio", None)
        self._tasks: list[asyncio.Task] = []

    async def start(self, timeout: float = 20.0) -> None:
        """Starts speaking and listening; returns once audio reaches the listener."""
        self._tasks = [
            asyncio.create_task(self.listener.subscribe_forever()),
            asyncio.create_task(self.speaker.publish_forever()),
        ]
        await self.flowing(timeout)

    async def flowing(self, timeout: float = 10.0) -> None:
        """Waits until the listener got at least half a second's frames in the last second."""
        async with asyncio.timeout(timeout):
            while self.received_within(1.0) < FRAMES_PER_SECOND // 2:
                await asyncio.sleep(0.05)

    def received_within(self, seconds: float) -> int:
        since = time.time() - seconds
        return sum(1 for t in reversed(self.listener.received[-200:]) if t >= since)

    async def resumed_after(self, moment: float, timeout: float = 10.0) -> float:
        """Seconds from `moment` (time.time()) to the first frame the listener got after it."""
        async with asyncio.timeout(timeout):
            while not self.listener.received or self.listener.received[-1] < moment:
                await asyncio.sleep(0.02)
        return next(t for t in self.listener.received if t >= moment) - moment

    def longest_gap(self, start: float, end: float) -> float:
        times = [t for t in self.listener.received if start <= t <= end]
        if not times:
            return end - start
        edges = [start, *times, end]
        return max(b - a for a, b in itertools.pairwise(edges))

    def summary(self) -> dict:
        return {
            "frames_received": len(self.listener.received),
            "speaker_reconnects": self.speaker.reconnects,
            "listener_reconnects": self.listener.reconnects,
        }

    async def close(self) -> None:
        self.speaker.stop.set()
        self.listener.stop.set()
        await cancel_all(self._tasks)
