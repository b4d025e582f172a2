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
from libs.events.topics import ROOM_EVENTS, create_topics
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types

SERVICES = ("room", "moderation", "media-relay", "replay")


@dataclass
class ServiceResult:
    first_start_seconds: float  # its views built from the whole history
    restart_seconds: float
    rss_empty: int
    rss_after_first_start: int
    rss_after_restart: int


@dataclass
class RestartResult:
    events: int
    spaces: int
    write_seconds: float
    services: dict[str, ServiceResult]


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


async def _started(stack: BenchStack, name: str, timeout: float = 1800) -> tuple:
    started = time.perf_counter()
    process = await stack.start(name, timeout=timeout)
    took = time.perf_counter() - started
    await asyncio.sleep(1)  # let allocations from start-up settle before reading RSS
    return process, took, rss_bytes(process.process.pid)


async def measure(events: int, services: tuple[str, ...] = SERVICES) -> RestartResult:
    async with BenchStack() as stack:
        await create_topics(stack.bootstrap, (ROOM_EVENTS,), 6, 1)
        empty_rss = {}
        for name in services:
            process, _, empty_rss[name] = await _started(stack, name)
            await process.stop()
            stack.services.remove(process)

        started = time.perf_counter()
        settings = PodiumSettings(kafka_bootstrap_servers=stack.bootstrap)
        written, spaces = await write_events(settings, ROOM_EVENTS, events, per_space=6, story=ended_space)
        wrote = time.perf_counter() - started

        results = {}
        for name in services:  # one at a time: each start measured alone
            process, first, rss_first = await _started(stack, name)
            await process.stop()
            started = time.perf_counter()
            await process.start(timeout=1800)
            restart = time.perf_counter() - started
            await asyncio.sleep(1)
            rss = rss_bytes(process.process.pid)
            results[name] = ServiceResult(first, restart, empty_rss[name], rss_first, rss)
        return RestartResult(written, spaces, wrote, results)


async def main(small: int, large: int, services: tuple[str, ...] = SERVICES) -> dict:
    s, big = await measure(small, services), await measure(large, services)
    return {
        "small": {"events": s.events, "spaces": s.spaces, **{n: r.__dict__ for n, r in s.services.items()}},
        "large": {
            "events": big.events,
            "spaces": big.spaces,
            **{n: r.__dict__ for n, r in big.services.items()},
        },
        "restart_ratio": {
            n: round(big.services[n].restart_seconds / s.services[n].restart_seconds, 2) for n in services
        },
        "rss_ratio": {n: round(r.rss_after_restart / r.rss_empty, 2) for n, r in big.services.items()},
    }
