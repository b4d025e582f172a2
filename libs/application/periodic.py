"""A background job that runs `sweep()` every `interval` seconds until stopped.

Subclasses implement `sweep`. A failing sweep is logged and the next one runs
on schedule; stopping cancels the loop. It has the shape ServiceShell's
background tasks need (`start`, `stop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class PeriodicSweep:
    name = "periodic-sweep"

    def __init__(self, interval_seconds: float):
        self.interval = interval_seconds
        self._task: asyncio.Task | None = None

    async def sweep(self) -> list[str]:
        raise NotImplementedError

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("%s failed", self.name)
