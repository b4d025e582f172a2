"""Restart time and memory against the length of history (issue 16's benchmarks).

For each history size, on a fresh broker and database:

1. write the history to the room topic: Spaces created, started, joined by
   their host and listeners, and ended (a busy deployment's past);
2. start the room service and wait for SERVING (its views are built from the
   log: the first start of a new deployment, or a rebuild);
3. stop it (SIGTERM) and start it again: the time from start to SERVING is
   the restart time, and the process's RSS once SERVING is its memory.

A service whose views resume from their stored positions restarts in about
the same time, with about the same memory, whatever the history; one that
rebuilds from offset 0 grows with it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.rebuild import write_events
from bench.stack import BenchStack, rss_bytes
from libs.config.settings import PodiumSettings
from libs.events.topics import ROOM_EVENTS, ensure_topics
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types


@dataclass
class RestartResult:
    events: int
    spaces: int
    write_seconds: float
    first_start_seconds: float
    restart_seconds: float
    rss_after_first_start: int
    rss_after_restart: int
    rss_empty: int


def ended_space(space_id: str, listeners: int) -> list:
    host = f"host-{space_id[:8]}"
    events = [
        ev.SpaceCreated(
            space_id=space_id, host_user_id=host, title="past", join_policy=types.JOIN_POLICY_ANYONE
        ),
        ev.SpaceStarted(space_id=space_id, host_user_id=host),
        ev.ParticipantJoined(space_id=space_id, user_id=host, role=types.ROLE_HOST),
    ]
    events += [
        ev.ParticipantJoined(space_id=space_id, user_id=f"l{i}", role=types.ROLE_LISTENER)
        for i in range(listeners)
    ]
    events.append(ev.SpaceEnded(space_id=space_id))
    return events


async def measure(events: int) -> RestartResult:
    async with BenchStack() as stack:
        await ensure_topics(stack.bootstrap, (ROOM_EVENTS,), 6, 1)
        empty = await stack.start("room")
        rss_empty = rss_bytes(empty.process.pid)
        await empty.stop()
        stack.services.remove(empty)

        started = time.perf_counter()
        settings = PodiumSettings(kafka_bootstrap_servers=stack.bootstrap)
        written, spaces = await write_events(settings, ROOM_EVENTS, events, per_space=6, story=ended_space)
        wrote = time.perf_counter() - started

        started = time.perf_counter()
        room = await stack.start("room", timeout=1800)  # builds its views from the whole history
        first = time.perf_counter() - started
        await asyncio.sleep(1)
        rss_first = rss_bytes(room.process.pid)
        await room.stop()
        started = time.perf_counter()
        await room.start(timeout=600)
        restart = time.perf_counter() - started
        await asyncio.sleep(1)  # let allocations from start-up settle before reading RSS
        rss = rss_bytes(room.process.pid)
        return RestartResult(written, spaces, wrote, first, restart, rss_first, rss, rss_empty)


async def main(small: int, large: int) -> dict:
    results = {}
    for size in (small, large):
        r = await measure(size)
        results[size] = r
    s, big = results[small], results[large]
    return {
        "small": s.__dict__,
        "large": big.__dict__,
        "restart_ratio": round(big.restart_seconds / s.restart_seconds, 2),
        "rss_ratio": round(big.rss_after_restart / big.rss_empty, 2),
    }
