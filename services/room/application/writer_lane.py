"""The writer lane this room replica holds (ADR 0018): which listener shards it joins users on.

A Space's listener shards are dealt to `lanes` writer lanes, and a replica that holds lane l
joins users on lane l's shards only, so two replicas in one join storm write different shards and
never take turns on one (ADR 0013). A lane is held as a PostgreSQL advisory lock on a session of
the replica's own (ADR 0011): the first free of `lanes` when the replica starts, let go when the
replica stops or dies (its session ends), then free for the next replica. Replicas need no
identity of their own, so a Deployment scales as it likes.

Holding no lane costs speed, never correctness: with more replicas than lanes, or while the
database is away, a replica joins each user on the shard their id picks (every lane's writers
may then share a shard, and take turns on it), and every replica still finds a user's membership
wherever it was written (`streams_of` lists every lane's shard). For the same reason a lane held
twice for a moment (a session that broke while its replica still believed in it) is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

log = logging.getLogger(__name__)


class WriterLane:
    def __init__(self, database_url: str, schema: str, lanes: int, check_seconds: float = 5.0):
        self.database_url = database_url
        self.schema = schema
        self.lanes = lanes
        self.check_seconds = check_seconds
        self._conn: asyncpg.Connection | None = None
        self._lane: int | None = None
        self._task: asyncio.Task | None = None

    def __call__(self) -> int | None:
        """The lane held now, or None."""
        return self._lane

    def lock_key(self, lane: int) -> str:
        return f"podium-writer-lane:{self.schema}:{lane}"

    async def start(self) -> None:
        if self.lanes < 2:  # one lane: every replica writes it, nothing to hold
            return
        await self._claim()
        self._task = asyncio.create_task(self._keep(), name="writer-lane")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._let_go()

    async def _claim(self) -> None:
        """Takes the first free lane, if any, on a session of its own."""
        try:
            if self._conn is None:
                self._conn = await asyncpg.connect(self.database_url)
            for lane in range(self.lanes):
                if await self._conn.fetchval(
                    "SELECT pg_try_advisory_lock(hashtext($1))", self.lock_key(lane)
                ):
                    self._lane = lane
                    log.info("holding writer lane %d of %d", lane, self.lanes)
                    return
            log.warning(
                "all %d writer lanes are held: joining users on the shards their ids pick", self.lanes
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            log.warning("could not claim a writer lane (%s); trying again in %.0f s", e, self.check_seconds)
            await self._let_go()

    async def _keep(self) -> None:
        """Checks the lane's session now and then; a lost one loses the lane, and claims again."""
        while True:
            await asyncio.sleep(self.check_seconds)
            if self._lane is not None:
                try:
                    assert self._conn is not None
                    await self._conn.fetchval("SELECT 1", timeout=self.check_seconds)
                    continue
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    log.warning("lost the session that held writer lane %d; claiming again", self._lane)
                    await self._let_go()
            await self._claim()

    async def _let_go(self) -> None:
        self._lane = None
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)  # closing the session releases the lock
            if not conn.is_closed():
                conn.terminate()
