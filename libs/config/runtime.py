"""Running a service's main coroutine on the configured event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine


def run(main: Coroutine, event_loop: str = "asyncio"):
    if event_loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
