"""The security tests' shared stack: every gRPC service on a broker and database of their own."""

from __future__ import annotations

import asyncio
import contextlib
import threading

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
        running = {
            name: await start_service(name, bootstrap=broker.bootstrap, database_url=db, log_dir=run_dir)
            for name in SERVICES
        }
        host = RoomClient(running["room"].channel, "fuzz-host")
        space_id = (await host.CreateSpace(title="fuzzed")).space.space_id
        await host.StartSpace(space_id=space_id)
        await RoomClient(running["room"].channel, "fuzz-listener").JoinSpace(space_id=space_id)
        counter = await asyncio.to_thread(EventCounter, db)
        try:
            yield {name: s.address for name, s in running.items()}, counter, (space_id, *USERS)
        finally:
            await asyncio.to_thread(counter.close)
            for service in running.values():
                await service.stop()


@pytest.fixture(scope="package")
async def stack(run_dir, database_server):
    """The stack the authorization tests share."""
    async with every_service(run_dir, database_server) as running:
        yield running
