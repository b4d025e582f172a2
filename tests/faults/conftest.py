"""Fault scenarios: each runs on a broker and a database of its own, since faults wipe or stop them."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.faults.support import awaiting

#: Presence forgets a user 3 s after their last heartbeat, so it settles quickly after a load.
PRESENCE_ENV = {
    "PODIUM_PRESENCE_TIMEOUT_SECONDS": "3",
    "PODIUM_PRESENCE_RECONNECT_GRACE_SECONDS": "30",
    "PODIUM_PRESENCE_TICK_SECONDS": "0.3",
}

#: The load is the point here, not the per-user rate limits.
NO_RATE_LIMITS = {
    "PODIUM_RATE_LIMIT_JOINS_PER_MINUTE": "0",
    "PODIUM_RATE_LIMIT_SPEAK_REQUESTS_PER_MINUTE": "0",
}


@pytest.fixture
def stack(service_factory, private_broker, private_database_url):
    """`await stack("room", "moderation", ...)` -> {name: RunningService} on this test's broker and database."""

    async def start_one(name: str, env: dict[str, str] | None):
        extra = {**NO_RATE_LIMITS, **(PRESENCE_ENV if name == "presence" else {}), **(env or {})}
        return await service_factory(name, broker=private_broker, database=private_database_url, env=extra)

    async def start(*names: str, env: dict[str, str] | None = None):
        # All at once, as `podium up` starts them: each rebuilds its view from the log on its own.
        started = await asyncio.gather(*(start_one(name, env) for name in names))
        return dict(zip(names, started, strict=True))

    return start


@pytest.fixture(autouse=True)
async def dump_tasks_before_the_timeout(request):
    """A fault scenario that hangs is stopped by pytest's timeout, whose thread dump shows only an
    idle event loop. Shortly before it, this prints where every pending task of the loop waits,
    so the report says which await never returned."""
    # pytest-timeout's own order: the test's mark, then --timeout, then the ini setting.
    mark = request.node.get_closest_marker("timeout")
    timeout = float(
        (mark.args[0] if mark and mark.args else None)
        or request.config.getoption("timeout", None)
        or request.config.getini("timeout")
        or 0
    )
    if timeout <= 30:
        yield
        return

    async def watch():
        await asyncio.sleep(timeout - 20)
        me = asyncio.current_task()
        print(
            f"--- {request.node.nodeid} still running after {timeout - 20:.0f} s; pending tasks:",
            file=sys.stderr,
        )
        for task in asyncio.all_tasks():
            if task is not me:
                print(f"{task.get_name()}:", *awaiting(task.get_coro()), sep="\n  ", file=sys.stderr)

    watcher = asyncio.create_task(watch())
    yield
    watcher.cancel()
