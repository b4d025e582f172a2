"""Who this gateway holds, reported to presence in one batched ReportPresence per interval.

A connection counts from its first report: the gateway reports at once when
someone connects, then on its interval. On shutdown one GatewayDisconnected
drops everyone it held, instead of each timing out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Connections:
    """(user, Space) pairs this gateway holds; a user may hold several streams of one Space."""

    def __init__(self) -> None:
        self._held: Counter[tuple[str, str]] = Counter()
        self.changed = asyncio.Event()

    def add(self, user_id: str, space_id: str) -> None:
        self._held[(user_id, space_id)] += 1
        self.changed.set()

    def remove(self, user_id: str, space_id: str) -> None:
        self._held[(user_id, space_id)] -= 1
        if self._held[(user_id, space_id)] <= 0:
            del self._held[(user_id, space_id)]

    def entries(self) -> list[tuple[str, str]]:
        return sorted(self._held)


class PresenceReporter:
    def __init__(
        self,
        connections: Connections,
        report: Callable[[list[tuple[str, str]]], Awaitable[None]],
        disconnect: Callable[[], Awaitable[None]],
        interval_seconds: float,
    ):
        self.connections = connections
        self.report = report
        self.disconnect = disconnect
        self.interval = interval_seconds
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="presence-reporter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.disconnect()
        except Exception as e:  # presence down at shutdown: its timeout drops them instead
            log.warning("GatewayDisconnected failed: %s", e)

    async def _run(self) -> None:
        while True:
            entries = self.connections.entries()
            if entries:
                try:
                    await self.report(entries)
                except Exception as e:
                    log.warning("ReportPresence failed (%d entries): %s", len(entries), e)
            self.connections.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.connections.changed.wait(), self.interval)
