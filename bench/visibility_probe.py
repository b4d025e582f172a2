"""A second process that watches the room topic and notes when each join becomes visible.

It is the "other service" of the command-to-visible benchmark: a separate
process with its own ProjectionRunner over `podium.room.events.v1`. For every
ParticipantJoined it records the wall-clock time it was applied. It prints
`ready` once caught up, and on SIGTERM/stdin EOF writes `user_id time` lines.

    python -m bench.visibility_probe OUT_FILE
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

from libs.config.runtime import run
from libs.config.settings import PodiumSettings
from libs.events.topics import ROOM_EVENTS
from libs.projection.runner import ConsumedEvent, ProjectionRunner
from podium.room.v1 import room_events_pb2


class JoinTimes:
    name = "bench-visibility-probe"
    topics = (ROOM_EVENTS,)

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def apply(self, event: ConsumedEvent) -> None:
        if isinstance(event.payload, room_events_pb2.ParticipantJoined):
            self.seen.setdefault(event.payload.user_id, time.time())


async def watch() -> dict[str, float]:
    view = JoinTimes()
    runner = ProjectionRunner(PodiumSettings(), view)
    await runner.start()
    await runner.caught_up.wait()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.readline() else None)
    await stop.wait()
    await runner.stop()
    return view.seen


if __name__ == "__main__":
    seen = run(watch(), "uvloop")
    Path(sys.argv[1]).write_text("".join(f"{user_id} {seen_at}\n" for user_id, seen_at in seen.items()))
