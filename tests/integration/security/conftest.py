"""The security tests' shared stack: every gRPC service on a broker and database of their own."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

import asyncpg
import pytest

from tests.integration.clients import RoomClient
from tests.support.infrastructure import fresh_database, running_broker

SERVICES = ("room", "moderation", "presence", "replay", "media-relay", "webhooks")
USERS = ("fuzz-host", "fuzz-listener", "fuzz-stranger", "fuzz-safety", "fuzz-gateway")


class EventCounter:
    """Counts a table's rows from a thread of its own (the test body is synchronous)."""

    def __init__(self, database_url: str):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.conn = self._run(asyncpg.connect(database_url))

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def count(self, table: str) -> int:
        """Rows of `table` (`room.events`, say): what a rejected request must not change."""
        return self._run(self.conn.fetchval(f"SELECT count(*) FROM {table}"))

    def close(self) -> None:
        self._run(self.conn.close())
        self.loop.call_soon_threadsafe(self.loop.stop)


@contextlib.asynccontextmanager
async def every_service(run_dir, database_server):
    """Every gRPC service on a broker and database of their own, and a live Space to aim at."""
    from tests.support.services import start_service

    async with (
        running_broker(run_dir, external_ok=False) as broker,
        fresh_database(database_server.url) as db,
    ):
        started = await asyncio.gather(
            *(
                start_service(
                    name, bootstrap=broker.bootstrap, database_url=db, log_dir=run_dir, env=broker.service_env
                )
                for name in SERVICES
            )
        )
        running = dict(zip(SERVICES, started, strict=True))
        host = RoomClient(running["room"].channel, "fuzz-host")
        space_id = (await host.CreateSpace(title="fuzzed")).space.space_id
        await host.StartSpace(space_id=space_id)
        await RoomClient(running["room"].channel, "fuzz-listener").JoinSpace(space_id=space_id)
        counter = await asyncio.to_thread(EventCounter, db)
        try:
            yield {name: s.address for name, s in running.items()}, counter, (space_id, *USERS)
        finally:
            await asyncio.to_thread(counter.close)
            await asyncio.gather(*(service.stop() for service in running.values()))


@pytest.fixture(scope="package")
async def stack(run_dir, database_server):
    """The stack the security tests share (those that need no settings of their own)."""
    async with every_service(run_dir, database_server) as running:
        yield running


FUZZING = Path(__file__).with_name("test_fuzzing.py")


def pytest_collection_modifyitems(items):
    """The fuzzer runs first on the shared stack. It asserts a rejected request leaves a service's
    event count unchanged, and the other tests leave work behind that writes events later (presence
    timing out their users, the room reacting): run before them, nothing else writes meanwhile."""
    mine = [i for i, item in enumerate(items) if item.path.parent == FUZZING.parent]
    if not mine:
        return
    ordered = sorted((items[i] for i in mine), key=lambda item: item.path != FUZZING)
    for i, item in zip(mine, ordered, strict=True):
        items[i] = item
